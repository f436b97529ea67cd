"""`mask`: the face region filled with a constant (mid grey); `mask-noise`: with uniform noise
drawn from the per-image seed."""
import numpy as np

from kpdp.method import Anonymizer, paste_in_mask


class MaskConstant(Anonymizer):
    name = "mask"
    deterministic = True

    def __init__(self, value: int = 128, **kw):
        super().__init__(value=value, **kw)
        self.value = value

    def anonymize_face(self, image, face, mask, seed):
        fill = np.full_like(image, self.value)
        return paste_in_mask(image, fill, mask), None, {}


class MaskNoise(Anonymizer):
    name = "mask-noise"

    def anonymize_face(self, image, face, mask, seed):
        noise = np.random.default_rng(seed).integers(0, 256, image.shape, dtype=np.uint8)
        return paste_in_mask(image, noise, mask), None, {}
