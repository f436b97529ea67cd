"""Failing closed: what the anonymiser does when a face is missed or a method fails on one.

For a privacy tool, releasing a face in the clear is the worst failure. Faces are found by the
union of offline detectors (recall first, :class:`kpdp.faces.detectors.RecallFirstDetector`); a face
the method fails on, or leaves mostly untouched, is pixelated; an image where no face is found is
handled by an explicit policy, never silently copied. The CLI (``python -m kpdp anonymize``) and
the API (:func:`kpdp.anonymizer.anonymize`) share this module.
"""
from __future__ import annotations

from kpdp.faces import get_landmarker
from kpdp.faces.detectors import RecallFirstDetector

NO_FACE = ("skip", "blur-all", "copy")  # the CLI's --no-face; the API raises instead of skipping


def obscure(image, box=None, cells: int = 8):
    """Pixelate ``box`` (x0, y0, x1, y1, widened by 20 %) or the whole image to ``cells`` blocks on
    its long side, then blur: what stays cannot identify anyone."""
    import cv2
    import numpy as np

    out = image.copy()
    h, w = image.shape[:2]
    if box is None:
        x0, y0, x1, y1 = 0, 0, w, h
    else:
        bw, bh = box[2] - box[0], box[3] - box[1]
        x0, y0 = max(0, int(box[0] - 0.2 * bw)), max(0, int(box[1] - 0.3 * bh))
        x1, y1 = min(w, int(np.ceil(box[2] + 0.2 * bw))), min(h, int(np.ceil(box[3] + 0.2 * bh)))
    patch = out[y0:y1, x0:x1]
    ph, pw = patch.shape[:2]
    if ph < 1 or pw < 1:
        return out
    k = cells / max(ph, pw)
    small = cv2.resize(patch, (max(1, round(pw * k)), max(1, round(ph * k))), interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (pw, ph), interpolation=cv2.INTER_NEAREST)
    sigma = max(1.0, max(ph, pw) / cells / 2)
    out[y0:y1, x0:x1] = cv2.GaussianBlur(big, (0, 0), sigma)
    return out


def anonymize_faces(method, image, faces, seed):
    """Every face anonymised by ``method``; a face it fails on, or leaves mostly unchanged, is
    pixelated instead (fail closed). Returns (image, notes)."""
    import numpy as np

    notes = []
    try:
        res = method.anonymize(image, faces, seed=seed)
        out, region = res.image, res.region
    except Exception as exc:  # noqa: BLE001  one face's failure must not release the others
        notes.append(f"{type(exc).__name__}: {exc}")
        out, region = image.copy(), np.zeros(image.shape[:2], np.uint8)
        for i, f in enumerate(faces):
            try:
                r = method.anonymize(out, [f], seed=None if seed is None else seed + i)
                out, region = r.image, region | r.region
            except Exception:  # noqa: BLE001
                pass
    h, w = image.shape[:2]
    for i, f in enumerate(faces):
        x0, y0 = max(0, int(f.box[0])), max(0, int(f.box[1]))
        x1, y1 = min(w, int(np.ceil(f.box[2]))), min(h, int(np.ceil(f.box[3])))
        covered = region[y0:y1, x0:x1].mean() if x1 > x0 and y1 > y0 else 1.0
        if covered < 0.3:
            out = obscure(out, f.box)
            notes.append(f"face {i + 1} pixelated (the method covered {covered:.0%} of its box)")
    return out, notes


def find_faces(image, device: str = "cpu", members: tuple[str, ...] | None = None):
    """Every face the union of detectors finds, each with its 68 landmarks."""

    key = (device, members)
    if key not in _FINDERS:
        finder = RecallFirstDetector(device, members=members) if members else RecallFirstDetector(device)
        _FINDERS[key] = (finder, get_landmarker("dlib68", device))
    finder, landmarker = _FINDERS[key]
    faces = finder.detect(image)
    for f in faces:
        f.landmarks = landmarker.landmarks(image, f)
    return faces


_FINDERS: dict = {}
