"""Face analysis shared by the anonymisers and the benchmark: backends (detectors, 68-point
landmarks, recognizers) behind registries, and face geometry (alignment, masks, paste-back)."""
from .geometry import Face
from .registry import DETECTORS, LANDMARKERS, RECOGNIZERS, BackendUnavailable


def get_detector(name: str, device: str = "cpu"):
    from . import detectors  # noqa: F401  (registers)
    return DETECTORS.get(name, device)


def get_landmarker(name: str, device: str = "cpu"):
    from . import landmarks  # noqa: F401
    return LANDMARKERS.get(name, device)


def get_recognizer(name: str, device: str = "cpu"):
    from . import recognizers  # noqa: F401
    return RECOGNIZERS.get(name, device)


def backend_names(kind: str, offline_only: bool = False) -> list[str]:
    from . import detectors, landmarks, recognizers  # noqa: F401
    return {"detector": DETECTORS, "landmarks": LANDMARKERS, "recognizer": RECOGNIZERS}[kind].names(offline_only)


__all__ = ["Face", "BackendUnavailable", "get_detector", "get_landmarker", "get_recognizer", "backend_names"]
