"""The one small interface every data set adapter implements, and the image loader they share.

A data set is a list of :class:`Sample` (image id, identity, path) for one split. Adapters read
the official on-disk layouts and never copy or resize images: decoding happens once, in
:func:`load_image`, which turns every odd file into either a plain RGB ``uint8`` array or an
:class:`ImageLoadError` that names the file and the reason.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".webp", ".tif", ".tiff")

#: Images above this many pixels are refused rather than decoded: a 20000 x 20000 face photo is
#: almost certainly a mistake and would cost 1.2 GB of memory per copy.
MAX_PIXELS = 40_000_000
#: Below this size no detector finds a face and the metrics are meaningless.
MIN_SIDE = 32


class DatasetError(ValueError):
    """A data set cannot be opened (missing root, wrong layout, empty split)."""


class ImageLoadError(ValueError):
    """One image cannot be used; the message names the file and says why."""

    def __init__(self, path: Path | str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Sample:
    image_id: str
    identity: str
    path: Path


def load_image(path: Path | str) -> np.ndarray:
    """Decode any common image file to an ``H x W x 3`` RGB ``uint8`` array.

    Grayscale is replicated to three channels, alpha is
    dropped (faces are opaque; compositing would change the pixels the background metrics
    compare), CMYK is converted by PIL, 16-bit images are scaled to 8 bits.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ImageLoadError(path, f"image too large ({w}x{h} > {MAX_PIXELS} pixels)")
                if min(w, h) < MIN_SIDE:
                    raise ImageLoadError(path, f"image too small ({w}x{h}, minimum side {MIN_SIDE})")
                im.load()
                arr = _to_rgb8(im)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(path, f"image too large (over PIL's decompression-bomb limit; max {MAX_PIXELS} pixels)") from None
    except UnidentifiedImageError as exc:
        raise ImageLoadError(path, f"not a readable image ({type(exc).__name__})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(path, f"corrupt or truncated image ({exc})") from None
    return arr


def _to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode == "RGBA" or im.mode == "LA" or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA").convert("RGB")
    elif im.mode != "RGB":
        im = im.convert("RGB")
    arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"unexpected decoded shape {arr.shape}")
    return np.ascontiguousarray(arr)


class FaceDataset:
    """Base class: subclasses fill ``self._samples`` for the requested split in ``__init__``."""

    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("all",)
    default_root: ClassVar[str | None] = None

    def __init__(self, root: str | Path | None = None, split: str = "all"):
        if root is None:
            if self.default_root is None:
                raise DatasetError(f"data set '{self.name}' needs --root (the folder holding its files)")
            root = self.default_root
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"data set '{self.name}': root {self.root} does not exist or is not a folder")
        if split not in self.splits:
            raise DatasetError(f"data set '{self.name}' has no split '{split}'; valid: {', '.join(self.splits)}")
        self.split = split
        self._samples: list[Sample] = self._scan()
        if not self._samples:
            raise DatasetError(f"data set '{self.name}' split '{split}' under {self.root} holds no images")

    def _scan(self) -> list[Sample]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def __getitem__(self, i: int) -> Sample:
        return self._samples[i]

    @property
    def samples(self) -> Sequence[Sample]:
        return self._samples

    def identities(self) -> list[str]:
        return sorted({s.identity for s in self._samples})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
