"""The interface every anonymisation method implements (KPDP, the baselines, third-party plugins),
and the face-region definition all the baselines share.

A method gets an RGB ``uint8`` image and the faces found on it (:class:`kpdp.faces.Face`, with
68 landmarks), and a per-image ``seed`` (``None`` = operating-system randomness); it returns the
anonymised image and what it did. Methods never run detectors themselves inside the benchmark:
the harness finds faces once on the original and hands them over, so every method works on the
same faces.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .faces import geometry as geo
from .faces.geometry import Face
from .mechanism import check_eps

# The face region of the baselines: the box around the 68 landmarks, its top raised by 10 % of the
# face height to include the forehead band, grown by REGION_MARGIN of its size on every side.
# ``region="landmarks"`` uses the jaw+brow hull mask of kpdp.faces.geometry.landmark_mask instead.
REGION_MARGIN = 0.10
REGIONS = ("box", "landmarks")


def face_box(face: Face, shape: tuple[int, int], margin: float = REGION_MARGIN) -> np.ndarray:
    if face.landmarks is None:
        return geo.expand_box(face.box, margin, shape)
    x0, y0, x1, y1 = geo.landmark_box(face.landmarks)
    y0 -= 0.10 * (y1 - y0)
    return geo.expand_box(np.array([x0, y0, x1, y1]), margin, shape)


def face_region(face: Face, shape: tuple[int, int], region: str = "box") -> np.ndarray:
    """Binary ``uint8`` mask (H, W) of the pixels a baseline may change for this face."""
    if region == "box":
        return geo.box_mask(face_box(face, shape, 0.0), shape, REGION_MARGIN)
    if region == "landmarks":
        if face.landmarks is None:
            raise ValueError("region='landmarks' needs the face's 68 landmarks")
        return geo.landmark_mask(face.landmarks, shape)
    raise ValueError(f"unknown face region '{region}'; valid: {', '.join(REGIONS)}")


@dataclass
class MethodOutput:
    image: np.ndarray
    region: np.ndarray  # union of the pixels the method was allowed to change
    target_landmarks: list[np.ndarray] | None = None  # per face, for methods that draw a geometry
    info: dict = field(default_factory=dict)


class Anonymizer:
    """Base class. Subclasses set ``name``, ``uses_eps`` and implement ``anonymize_face``."""

    name: ClassVar[str] = ""
    uses_eps: ClassVar[bool] = False
    region_kind: ClassVar[str] = "box"
    #: True when the output does not depend on the seed (two releases of one photo are equal); an
    #: attacker who runs the method then needs no second release. Unknown methods are assumed random.
    deterministic: ClassVar[bool] = False

    def __init__(self, eps: float | None = None, device: str = "cpu", region: str | None = None, **params):
        if self.uses_eps:

            if eps is None:
                raise ValueError(f"method '{self.name}' needs eps")
            eps = check_eps(eps)
        self.eps = eps if self.uses_eps else None
        self.device = device
        self.region = region or self.region_kind
        if self.region not in REGIONS:
            raise ValueError(f"unknown face region '{self.region}'; valid: {', '.join(REGIONS)}")
        self.params = params

    @property
    def version(self) -> str:
        return "1"

    def describe(self) -> dict:
        return {"method": self.name, "eps": self.eps, "region": self.region, **self.params}

    def anonymize(self, image: np.ndarray, faces: list[Face], seed: int | None = None) -> MethodOutput:
        out = image.copy()
        region = np.zeros(image.shape[:2], np.uint8)
        rng_seeds = np.random.SeedSequence(seed).spawn(len(faces)) if seed is not None else [None] * len(faces)
        targets, info = [], {}
        for face, ss in zip(faces, rng_seeds):
            face_seed = int(ss.generate_state(1)[0]) if ss is not None else None
            mask = face_region(face, image.shape, self.region)
            out, target, face_info = self.anonymize_face(out, face, mask, face_seed)
            region |= face_info.pop("changed", mask)
            targets.append(target)
            for k, v in face_info.items():
                info.setdefault(k, []).append(v)
        return MethodOutput(out, region, targets if any(t is not None for t in targets) else None, info)

    def anonymize_face(self, image, face, mask, seed):  # pragma: no cover - abstract
        """Returns (image, target landmarks or None, info dict)."""
        raise NotImplementedError


def paste_in_mask(image: np.ndarray, replaced: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pixels inside ``mask`` from ``replaced``; every other pixel stays bit-identical."""
    return np.where(mask[..., None] > 0, replaced, image).astype(np.uint8)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
