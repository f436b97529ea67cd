"""The KPDP anonymiser: landmarks -> ε-DP identity coordinates -> generator -> paste back.

Per face (faces come with their 68 landmarks): privatise the landmarks with
:func:`kpdp.mechanism.privatize`, align the original face to the 128 px template, mask the union
of the original and the target face regions, draw a face with the *target* geometry, paste it back
through the inverse alignment over a feathered mask. Pixels outside the warped mask are the
input's, bit for bit.
"""
from __future__ import annotations

import numpy as np

from kpdp.faces.analyze import NoFaceError
from kpdp.faces.hands import HandFinder
from kpdp.faces.mouth import GROW as MOUTH_GROW
from kpdp.failclosed import anonymize_faces, find_faces, obscure
from kpdp.inpaint import FaceInpainter
from kpdp.mechanism import POSTPROCESS, default_residual_basis, default_space, privatize
from kpdp.residual import MODES
from kpdp.space import IdentitySpace

from .method import Anonymizer

#: what a hand in front of the face gets: drawn over (as every face before), or kept
HANDS = ("paint", "keep")

#: generator version -> its landmark condition (kpdp.inpaint.WEIGHTS names the weights of each)
GENERATORS = {"v2": "dense68", "v3": "sparse7+dense68"}


class KPDPAnonymizer(Anonymizer):
    name = "kpdp"
    uses_eps = True
    region_kind = "landmarks"

    def __init__(self, eps=None, split: str = "uniform", weights=None, space=None, postprocess: str = "sample",
                 residual: str = "expression", mask: str = "ellipse", mask_dilate: float = 0.25,
                 mask_forehead: float = 0.45, generator: str = "v2", blend: str = "feather", tone: str = "none",
                 mouth: str = "drawn", mouth_grow: float = MOUTH_GROW, hands: str = "paint", **kw):
        super().__init__(eps=eps, split=split, postprocess=postprocess, residual=residual, mask=mask,
                         mask_dilate=mask_dilate, mask_forehead=mask_forehead, generator=generator, blend=blend,
                         tone=tone, mouth=mouth, mouth_grow=mouth_grow, hands=hands, **kw)

        if postprocess not in POSTPROCESS:
            raise ValueError(f"unknown postprocess '{postprocess}'; valid: {', '.join(POSTPROCESS)}")
        if residual not in MODES:
            raise ValueError(f"unknown residual '{residual}'; valid: {', '.join(MODES)}")
        if generator not in GENERATORS:
            raise ValueError(f"unknown generator '{generator}'; valid: {', '.join(GENERATORS)}")
        if hands not in HANDS:
            raise ValueError(f"unknown hands '{hands}'; valid: {', '.join(HANDS)}")
        # hands="keep": a hand in front of the face (kpdp.faces.hands) is taken out of the mask, so the
        # face is drawn behind it instead of through it; "paint" (default) draws over it, as before
        self.hands = HandFinder() if hands == "keep" else None
        self.split, self.postprocess, self.residual, self.blend, self.tone = split, postprocess, residual, blend, tone
        self.space = IdentitySpace.load(space) if space else default_space()
        # A mask to the hairline and past the cheeks: with the landmark hull alone (dilation 0.08,
        # forehead 0.10) the generator continued the kept skin, brows and hairline so faithfully that
        # 24 % of faces were still re-identified on LFW devtest (docs/method.md). `ellipse` (default)
        # is as large but smooth (mask_dilate and mask_forehead shape the `landmarks` mask only);
        # `landmarks` (the hull of both faces, dilated) traces the jaw.
        # v3 (sparse7+dense68) starts from the DeepPrivacy-style weights and is fine-tuned on this
        # ellipse mask with foreign geometry (docs/method.md); blend="poisson" matches the drawn face
        # to the skin around it at the mask's edge; mouth="original" moves the original's mouth onto
        # the drawn one (kpdp.faces.mouth: outside the ε guarantee, its privacy cost measured)
        self.inpainter = FaceInpainter(GENERATORS[generator], weights, self.device, mask_kind=mask,
                                       mask_dilate=mask_dilate, mask_forehead=mask_forehead, blend=blend, tone=tone,
                                       mouth=mouth, mouth_grow=mouth_grow)

    @property
    def version(self) -> str:
        v = f"g:{self.inpainter.meta.get('sha256', '?')[:12]}|s:{self.space.meta.get('sha256_arrays', '?')[:12]}"
        if self.residual == "expression":

            v += f"|r:{default_residual_basis().meta.get('sha256_arrays', '?')[:12]}"
        if self.blend != "feather":
            v += f"|b:{self.blend}"
        if self.tone != "none":  # with the Poisson paste the shift is made after the paste (kpdp.inpaint)
            v += f"|t:{self.tone}" + ("@pasted" if self.blend == "poisson" else "")
        if self.hands is not None:
            v += "|h:keep"
        if self.inpainter.mouth != "drawn":
            grow = self.inpainter.mouth_grow
            v += f"|m:{self.inpainter.mouth}" + (f"@{grow:g}" if grow != MOUTH_GROW else "")
        return v + self.inpainter.engine_tag

    def anonymize_face(self, image, face, mask, seed):
        if face.landmarks is None:
            raise ValueError("kpdp needs the face's 68 landmarks")
        res = privatize(face.landmarks, self.eps, seed=seed, space=self.space, split=self.split,
                        postprocess=self.postprocess, residual=self.residual)
        target = res.landmarks[0]
        noise_seed = None if seed is None else (seed * 7919 + 1) % (2 ** 63)
        keep = self.hands.mask(image, face.landmarks) if self.hands is not None else None
        out, changed = self.inpainter.inpaint(image, face.landmarks, target, noise_seed, keep)
        return out, target, {"eps_spent": res.eps_spent, "noise_mode": res.mode, "changed": changed}


def anonymize(image: np.ndarray, eps: float = 1.0, seed: int | None = None, device: str = "cpu",
              faces=None, no_face: str = "raise", hands: str = "paint") -> np.ndarray:
    """Anonymise every face of an RGB ``uint8`` image, failing closed.

    ``seed=None`` (the default) draws the noise from the operating system through OpenDP (the
    ``secure`` mode: an actual ε-DP release of each face's identity coordinates); a seed makes the
    output reproducible and is meant for benchmarks only. Faces are found by the union of the
    offline detectors (:mod:`kpdp.failclosed`); a face the method fails on is pixelated. When no
    face is found, ``no_face`` decides: ``raise`` (:class:`kpdp.faces.analyze.NoFaceError`, the
    default), ``blur-all`` (the whole image pixelated and blurred) or ``copy`` (unchanged: only
    when you know there is no face). ``hands="keep"`` keeps a hand in front of a face and draws the
    face behind it (:mod:`kpdp.faces.hands`); ``"paint"`` (the default) draws the face over it.
    """

    if no_face not in ("raise", "blur-all", "copy"):
        raise ValueError(f"no_face must be raise, blur-all or copy, got {no_face!r}")
    faces = faces if faces is not None else find_faces(image, device)
    if not faces:
        if no_face == "raise":
            raise NoFaceError("no face found by the union of detectors: nothing anonymised "
                              "(no_face='blur-all' blurs the whole image, 'copy' returns it unchanged)")
        return obscure(image) if no_face == "blur-all" else image.copy()
    return anonymize_faces(_anonymizer(eps, device, hands), image, faces, seed)[0]


_CACHE: dict = {}


def _anonymizer(eps, device, hands="paint"):
    key = (float(eps), device, hands)
    if key not in _CACHE:
        _CACHE[key] = KPDPAnonymizer(eps=eps, device=device, hands=hands)
    return _CACHE[key]
