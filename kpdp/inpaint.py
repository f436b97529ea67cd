"""Draw a face with given landmarks into the masked original, with a trained generator, and paste
it back (spec section 4). Shared by `kpdp` (68 privatised landmarks) and the DeepPrivacy-style
baseline (7 keypoints, box mask)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from .faces import geometry as geo
from .faces.registry import file_sha256
from .generator import CONDITIONS, Generator, box_masks, render_condition
from .faces.onnx_cpu import OrtModule, engine_tag, wanted
from .faces.mouth import GROW as MOUTH_GROW, MOUTHS, transfer_mouth
from .faces.tone import TONES, match_skin_tone

ASSETS = Path(__file__).parent / "assets"
SIZE = 128
WEIGHTS = {"dense68": ASSETS / "generator_kpdp.safetensors", "sparse7": ASSETS / "generator_deepprivacy.safetensors",
           "sparse7+dense68": ASSETS / "generator_kpdp_v3.safetensors"}


def load_generator(condition: str, path: Path | None = None, device: str = "cpu") -> tuple[Generator, dict]:
    """Generator weights (safetensors: no pickled code runs) and their recorded metadata."""
    from safetensors.torch import load_file

    path = Path(path) if path else WEIGHTS[condition]
    if not path.is_file():
        raise FileNotFoundError(f"generator weights {path} not found (train with `python -m kpdp train`)")
    meta_file = path.with_suffix(".json")
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    g = Generator(condition, base=state["stem.0.weight"].shape[0]).eval()
    g.load_state_dict(state)
    return g.to(device), meta


MASK_KINDS = ("ellipse", "landmarks", "box")


class FaceInpainter:
    def __init__(self, condition: str = "dense68", weights: Path | None = None, device: str = "cpu",
                 mask_kind: str = "landmarks", mask_dilate: float = 0.08, mask_forehead: float = 0.10,
                 blend: str = "feather", tone: str = "none", mouth: str = "drawn",
                 mouth_grow: float = MOUTH_GROW):
        if mask_kind not in MASK_KINDS:
            raise ValueError(f"unknown mask '{mask_kind}'; valid: {', '.join(MASK_KINDS)}")
        self.condition, self.device, self.mask_kind = condition, torch.device(device), mask_kind
        if blend not in geo.BLENDS:
            raise ValueError(f"unknown blend '{blend}'; valid: {', '.join(geo.BLENDS)}")
        if tone not in TONES:
            raise ValueError(f"unknown tone '{tone}'; valid: {', '.join(TONES)}")
        if mouth not in MOUTHS:
            raise ValueError(f"unknown mouth '{mouth}'; valid: {', '.join(MOUTHS)}")
        self.mask_dilate, self.mask_forehead, self.blend, self.tone = mask_dilate, mask_forehead, blend, tone
        self.mouth, self.mouth_grow = mouth, float(mouth_grow)
        self.G, self.meta = load_generator(condition, weights, device)
        # channels-last convolutions: ~16 % faster on these CPUs (oneDNN), also the layout CUDA prefers
        self.G = self.G.to(memory_format=torch.channels_last)
        self._run = self.G
        if wanted(device):  # ~1.6x faster on a CPU than torch, the same outputs to ~1e-6 (kpdp.faces.onnx_cpu)
            sha = file_sha256(Path(weights) if weights else WEIGHTS[condition])
            example = (torch.zeros(1, 3, SIZE, SIZE), torch.zeros(1, 1, SIZE, SIZE),
                       torch.zeros(1, CONDITIONS[condition], SIZE, SIZE), torch.zeros(1, 1, SIZE, SIZE))
            self._run = OrtModule(self.G, example, key=f"generator-{condition}-{sha[:16]}")

    @property
    def engine_tag(self) -> str:
        """Appended to a method's version: which engine drew the faces (outputs agree to ~1e-6
        before rounding to pixels, so an image may differ by one level between the two)."""
        return engine_tag(self._run, sep="|")

    def crop_mask(self, lm_src: np.ndarray, lm_tgt: np.ndarray) -> np.ndarray:
        """Mask in crop coordinates: must hide the original face *and* make room for the new one."""
        if self.mask_kind == "box":
            both = torch.from_numpy(np.stack([lm_src])).float()
            return box_masks(both, SIZE)[0, 0].numpy().astype(np.uint8)
        if self.mask_kind == "ellipse":  # smooth: its outline does not trace the original jaw
            pts = np.vstack([geo.mask_points(lm_src), geo.mask_points(lm_tgt)])
            return geo.ellipse_mask((SIZE, SIZE), geo.ellipse_scale(pts, SIZE), SIZE)
        kw = {"dilate": self.mask_dilate, "forehead": self.mask_forehead}
        return geo.landmark_mask(lm_src, (SIZE, SIZE), **kw) | geo.landmark_mask(lm_tgt, (SIZE, SIZE), **kw)

    def generator_inputs(self, image: np.ndarray, lm_src: np.ndarray, lm_tgt: np.ndarray, seed: int | None,
                         keep: np.ndarray | None = None):
        """(alignment matrix, crop mask, the generator's four input tensors) of one face. ``keep``
        (image-sized, 1 = keep) is taken out of the mask: pixels in front of the face, e.g. a hand
        (kpdp.faces.hands), stay the photo's and are context the generator draws around."""
        m = geo.alignment_matrix(lm_src, SIZE)
        crop = geo.align_crop(image, m, SIZE)
        src_c, tgt_c = geo.apply_affine(m, lm_src), geo.apply_affine(m, lm_tgt)
        mask = self.crop_mask(src_c, tgt_c)
        if keep is not None and keep.any():
            kept = cv2.warpAffine(keep.astype(np.uint8), m, (SIZE, SIZE), flags=cv2.INTER_NEAREST, borderValue=0)
            # Caveat: the paste's feather fades over a ring of the original face round the kept hand
            # (3 crop pixels). Tried instead: eroding the hole by the feather (thin fingers vanished at
            # 128 px) and drawing the whole face then laying the hand back (the generator smeared the
            # fingers it saw at the mask's edge into the face); on 6 photos both looked worse. The ring's
            # cost was measured with it (reports/kpdp-v3-progress/, "Hands").
            mask = mask * (kept == 0).astype(mask.dtype)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        noise = torch.randn((1, 1, SIZE, SIZE), generator=gen)
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        mt = torch.from_numpy(mask)[None, None].float()
        cond = render_condition(torch.from_numpy(tgt_c)[None].float(), SIZE, self.condition)
        return m, mask, tuple(t.to(self.device).contiguous(memory_format=torch.channels_last)
                              for t in (x, mt, cond, noise))

    @torch.no_grad()
    def inpaint(self, image: np.ndarray, lm_src: np.ndarray, lm_tgt: np.ndarray, seed: int | None,
                keep: np.ndarray | None = None):
        """Returns (new image, mask of changed pixels in image coordinates); ``keep``: see
        :meth:`generator_inputs`."""
        m, mask, inputs = self.generator_inputs(image, lm_src, lm_tgt, seed, keep)
        y = self._run(*inputs)[0].float().cpu()
        out_crop = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        tone_on_crop = self.tone == "skin" and self.blend == "feather"
        if self.mouth == "original" or tone_on_crop:  # both read the original crop, in crop coordinates
            crop = ((inputs[0][0].float().cpu() + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            tgt_c, src_c = geo.apply_affine(m, lm_tgt), geo.apply_affine(m, lm_src)
        if self.mouth == "original":  # before the tone shift and the paste: both then treat it as drawn skin
            out_crop = transfer_mouth(out_crop, crop, tgt_c, src_c, mask, self.mouth_grow)
        if tone_on_crop:  # the drawn face in the skin tone of the face it replaces
            out_crop = match_skin_tone(out_crop, crop, mask, tgt_c, src_c)
        new = geo.paste_back(image, out_crop, m, mask, feather=3, blend=self.blend)
        h, w = image.shape[:2]
        changed = cv2.warpAffine(mask, geo.invert_affine(m), (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
        if self.tone == "skin" and self.blend == "poisson":
            # After the paste, not before: the gradient-domain paste re-levels the whole drawn face
            # from the mask's edge (hair, background), so a shift made on the crop came out at about
            # half its size (LFW devtest, 60 faces, v3: |dITA| 16.8 untoned, 9.4 shifted before the
            # paste, 7.0 after). The shift fades out well inside the mask (face_weight): no new seam.
            new = match_skin_tone(new, image, changed, lm_tgt, lm_src)
        return new, changed
