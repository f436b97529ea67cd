"""`deepprivacy`: a DeepPrivacy-style generator (Hukkelås et al. 2019): the same generator class
as `kpdp`, conditioned on 7 sparse keypoints (eye centres, nose tip, mouth corners, jaw 0 and 16)
of the original face, with the face box masked, and no privacy mechanism on the keypoints."""
from kpdp.inpaint import FaceInpainter
from kpdp.method import Anonymizer


class DeepPrivacyStyle(Anonymizer):
    name = "deepprivacy"

    def __init__(self, weights=None, **kw):
        super().__init__(**kw)

        self.inpainter = FaceInpainter("sparse7", weights, self.device, mask_kind="box")

    @property
    def version(self) -> str:
        return f"g:{self.inpainter.meta.get('sha256', '?')[:12]}{self.inpainter.engine_tag}"

    def anonymize_face(self, image, face, mask, seed):
        if face.landmarks is None:
            raise ValueError("deepprivacy needs the face's landmarks for its keypoints")
        out, changed = self.inpainter.inpaint(image, face.landmarks, face.landmarks, seed)
        return out, None, {"changed": changed}
