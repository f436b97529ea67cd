"""Face analysis shared by the anonymisers and the benchmark: backends (detectors, 68-point
landmarks, recognizers) behind registries, and face geometry (alignment, masks, paste-back)."""
from .geometry import Face
from .registry import DETECTORS, LANDMARKERS, RECOGNIZERS, BackendUnavailable


def get_detector(name: str, device: str = "cpu"):
    return DETECTORS.get(name, device)


def get_landmarker(name: str, device: str = "cpu"):
    return LANDMARKERS.get(name, device)


def get_recognizer(name: str, device: str = "cpu"):
    return RECOGNIZERS.get(name, device)


def backend_names(kind: str, offline_only: bool = False) -> list[str]:
    return {"detector": DETECTORS, "landmarks": LANDMARKERS, "recognizer": RECOGNIZERS}[kind].names(offline_only)


__all__ = ["Face", "BackendUnavailable", "get_detector", "get_landmarker", "get_recognizer", "backend_names"]
