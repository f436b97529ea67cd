"""`blur`: Gaussian blur of the face region. Default as DeepPrivacy2's baseline: σ = 7, kernel
``min(21, face size)`` (made odd); `blur-strong`: σ = 15, kernel ``min(61, face size)``."""
import cv2

from kpdp.method import Anonymizer, mask_bbox, paste_in_mask


class GaussianBlur(Anonymizer):
    name = "blur"
    deterministic = True

    def __init__(self, sigma: float = 7.0, max_kernel: int = 21, **kw):
        super().__init__(sigma=sigma, max_kernel=max_kernel, **kw)
        self.sigma, self.max_kernel = sigma, max_kernel

    def anonymize_face(self, image, face, mask, seed):
        x0, y0, x1, y1 = mask_bbox(mask)
        k = min(self.max_kernel, max(x1 - x0, y1 - y0))
        k = max(1, k if k % 2 else k - 1)
        # blur a padded window so the kernel sees real pixels at the region's edge
        p = k // 2
        wx0, wy0 = max(0, x0 - p), max(0, y0 - p)
        window = image[wy0:y1 + p, wx0:x1 + p]
        blurred = image.copy()
        blurred[wy0:y1 + p, wx0:x1 + p] = cv2.GaussianBlur(window, (k, k), self.sigma)
        return paste_in_mask(image, blurred, mask), None, {"kernel": k}


class GaussianBlurStrong(GaussianBlur):
    name = "blur-strong"

    def __init__(self, sigma: float = 15.0, max_kernel: int = 61, **kw):
        super().__init__(sigma=sigma, max_kernel=max_kernel, **kw)
