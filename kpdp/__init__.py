"""KPDP: keypoint differential privacy for face images."""
__version__ = "0.1.0"
