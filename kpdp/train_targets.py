"""What the generator is asked to draw during training, beside the face's own geometry.

At anonymisation time the condition is a *privatised* geometry and the mask a smooth ellipse
that covers both faces; a generator trained only to redraw each face with its own landmarks under
its own hull mask has never seen that. Here a fraction of each batch is conditioned on a geometry
that is not the face's own: a posterior sample of its identity coordinates at a random ε, with
the residual KPDP keeps (exactly what :func:`kpdp.mechanism.privatize` releases), and every mask
is the ellipse of :func:`kpdp.faces.geometry.ellipse_mask` covering the face and its target.
Those samples have no ground truth: the training loop scores them by the discriminator (which
also learns that a real face under a foreign geometry is wrong: landmark consistency) and by an
identity term, never by reconstruction.
"""
from __future__ import annotations

import numpy as np
import torch

from kpdp.mechanism import privatize

from .faces import geometry as geo

FOREIGN_EPS = (0.5, 1.0, 4.0, 16.0)


def foreign_targets(lm: np.ndarray, foreign: np.ndarray, rng: np.random.Generator,
                    eps_choices=FOREIGN_EPS) -> np.ndarray:
    """(B, 68, 2) crop landmarks -> targets: the rows flagged ``foreign`` replaced by a KPDP release
    (posterior sample, kept residual) at an ε drawn from ``eps_choices``; the others unchanged."""

    out = np.array(lm, np.float64)
    for i in np.flatnonzero(foreign):
        eps = float(rng.choice(eps_choices))
        out[i] = privatize(lm[i], eps, seed=int(rng.integers(2 ** 62)), residual="expression").landmarks[0]
    return out


class EllipseMasks:
    """The ellipse masks of every scale as tensors, and the choice of scale per sample."""

    def __init__(self, size: int, device):
        self.size = size
        self.masks = torch.stack([torch.from_numpy(geo.ellipse_mask((size, size), s, size)).float()
                                  for s in geo.ELLIPSE_SCALES])[:, None].to(device)

    def __call__(self, own: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                 p_larger: float = 0.25) -> torch.Tensor:
        """(B, 1, size, size): per sample the scale inference would use for (own, target), one
        step larger with probability ``p_larger`` (inference meets larger ones when faces differ)."""
        idx = []
        for a, b in zip(own, target):
            s = geo.ellipse_scale(np.vstack([geo.mask_points(a), geo.mask_points(b)]), self.size)
            i = geo.ELLIPSE_SCALES.index(s)
            if rng.random() < p_larger:
                i = min(i + 1, len(geo.ELLIPSE_SCALES) - 1)
            idx.append(i)
        return self.masks[torch.tensor(idx)]
