"""`pixelate[blocks=b]`, and its presets `pixelate-8`, `pixelate-16`: the face region's bounding box
down-sampled to ``b x b`` blocks (area average) and up-sampled (nearest), as DeepPrivacy2's
pixelation baselines."""
import cv2

from kpdp.method import Anonymizer, mask_bbox, paste_in_mask


class Pixelate(Anonymizer):
    name = "pixelate"
    deterministic = True

    def __init__(self, blocks: int = 8, **kw):
        super().__init__(blocks=blocks, **kw)
        if blocks < 1:
            raise ValueError("pixelate: blocks must be >= 1")
        self.blocks = blocks

    def anonymize_face(self, image, face, mask, seed):
        x0, y0, x1, y1 = mask_bbox(mask)
        crop = image[y0:y1, x0:x1]
        small = cv2.resize(crop, (self.blocks, self.blocks), interpolation=cv2.INTER_AREA)
        out = image.copy()
        out[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        return paste_in_mask(image, out, mask), None, {}


class Pixelate8(Pixelate):
    name = "pixelate-8"
    fixed_params = ("blocks",)  # the preset's name says how many: `pixelate[blocks=4]` for others

    def __init__(self, **kw):
        super().__init__(blocks=8, **kw)


class Pixelate16(Pixelate):
    name = "pixelate-16"
    fixed_params = ("blocks",)

    def __init__(self, **kw):
        super().__init__(blocks=16, **kw)
