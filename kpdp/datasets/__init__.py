"""Face data sets behind one interface: :func:`get_dataset` and :class:`Sample`."""
from .adapters import DATASETS, LFW, ORL, CelebA, CelebAHQ, Folder, LFWSample, VGGFace2, get_dataset
from .base import IMAGE_SUFFIXES, DatasetError, FaceDataset, ImageLoadError, Sample, load_image

__all__ = ["DATASETS", "LFW", "ORL", "CelebA", "CelebAHQ", "Folder", "LFWSample", "VGGFace2",
           "get_dataset", "DatasetError", "FaceDataset", "IMAGE_SUFFIXES", "ImageLoadError", "Sample", "load_image"]
