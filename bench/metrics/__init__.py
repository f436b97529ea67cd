"""Every metric of ``../shared/docs/metrics.md``: a class (update / compute / reset) and a
functional twin each. Names are the public result names of ``metrics.csv``."""
from .background import BackgroundPreservation, background_psnr_ssim
from .base import Metric, MetricResult
from .detection import DetectionRate, detection_rate, iou
from .fid import BACKEND as FID_BACKEND, InceptionDistance, frechet_distance, inception_features
from .landmarks import LandmarkError, landmark_nme, nme
from .reid import (ReIdentification, fit_threshold, impostor_scores, intrusion_rate, reid_rank1,
                   similarity_matrix, tar_at_far)

METRIC_NAMES = ("reid_rank1", "reid_rank1_same", "reid_tar_far1e-3", "intrusion_rate", "detection_rate", "fid",
                "kid", "landmark_nme", "landmark_fail_rate", "landmark_nme_target", "bg_psnr", "bg_ssim",
                "sec_per_image", "skipped")
#: groups the user selects with --metrics; each computes the names beside it
METRIC_GROUPS = {
    "reid": ("reid_rank1", "reid_rank1_same", "reid_tar_far1e-3", "intrusion_rate"),
    "detection": ("detection_rate",),
    "fid": ("fid", "kid"),
    "landmarks": ("landmark_nme", "landmark_fail_rate", "landmark_nme_target"),
    "background": ("bg_psnr", "bg_ssim"),
}

__all__ = ["BackgroundPreservation", "background_psnr_ssim", "Metric", "MetricResult", "DetectionRate",
           "detection_rate", "iou", "FID_BACKEND", "InceptionDistance", "frechet_distance", "inception_features",
           "LandmarkError", "landmark_nme", "nme", "ReIdentification", "fit_threshold", "impostor_scores",
           "intrusion_rate", "reid_rank1", "similarity_matrix", "tar_at_far", "METRIC_NAMES", "METRIC_GROUPS"]
