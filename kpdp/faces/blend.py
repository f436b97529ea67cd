"""Gradient-domain (Poisson) paste: the drawn face keeps its own gradients inside the mask and
takes the original's colours at the mask's edge, so that no ring or halo marks where it was pasted
(a face drawn a shade lighter than the skin around it is brought to that skin's shade).

OpenCV's ``seamlessClone`` (Pérez et al., SIGGRAPH 2003) solves it on the mask's bounding box.
Two of its habits are handled here: it places the source box by a *centre* computed from the
mask's extreme pixels as ``min + (max - min) // 2`` (any other rounding shifts the face by a
pixel), and it fails on a mask that touches the image border (the image is padded first).
"""
from __future__ import annotations

import cv2
import numpy as np

PAD = 2  # seamlessClone needs the mask's box one pixel inside the image at least


def poisson_composite(image: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``generated`` pasted over ``image`` where ``mask`` is non-zero, in the gradient domain;
    pixels outside the mask are ``image``'s, bit for bit.

    Example:
        >>> y, x = np.mgrid[:64, :64]
        >>> image = np.dstack([60 + x, 80 + y, 100 + (x + y) // 2]).astype(np.uint8)  # smooth "skin"
        >>> mask = np.zeros((64, 64), np.uint8); _ = cv2.ellipse(mask, (32, 32), (18, 24), 0, 0, 360, 1, -1)
        >>> same = poisson_composite(image, image, mask)  # pasting the image onto itself changes nothing
        >>> int(np.abs(same.astype(int) - image).max()) <= 1
        True
        >>> lighter = poisson_composite(image, image + 40, mask)  # a face drawn 40 levels lighter
        >>> float(np.abs(lighter.astype(int) - image)[mask > 0].mean()) < 2  # brought to the skin's shade
        True
    """
    inside = np.asarray(mask) > 0
    if not inside.any():
        return image.copy()
    pad = lambda a, kind: cv2.copyMakeBorder(a, PAD, PAD, PAD, PAD, kind)  # noqa: E731
    dst, src = pad(image, cv2.BORDER_REFLECT101), pad(generated, cv2.BORDER_REFLECT101)
    m = pad(inside.astype(np.uint8) * 255, cv2.BORDER_CONSTANT)
    ys, xs = np.nonzero(m)
    centre = (int(xs.min() + (xs.max() - xs.min()) // 2), int(ys.min() + (ys.max() - ys.min()) // 2))
    out = cv2.seamlessClone(src, dst, m, centre, cv2.NORMAL_CLONE)[PAD:-PAD, PAD:-PAD]
    return np.where(inside[..., None], out, image)
