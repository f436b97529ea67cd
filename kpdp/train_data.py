"""The generator's training set: aligned 128 px crops, their landmarks and face masks, packed in
one ``.npz`` (JPEG bytes + offsets, no pickle) that a GPU machine can load in seconds."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .datasets import ImageLoadError, load_image
from .faces import geometry as geo


def pack(landmarks: dict[str, np.ndarray], paths: dict[str, Path], out: Path, size: int = 128,
         quality: int = 85) -> dict[str, int]:
    """Align every face of a landmark cache (see :mod:`kpdp.landmark_cache`) and store it."""
    blobs, lms, masks, ids, idents = [], [], [], [], []
    for i, image_id in enumerate(tqdm(landmarks["image_id"], desc="pack crops", mininterval=5)):
        try:
            image = load_image(paths[str(image_id)])
        except ImageLoadError:
            continue
        lm = landmarks["landmarks"][i]
        m = geo.alignment_matrix(lm, size)
        crop = geo.align_crop(image, m, size)
        lm_crop = geo.apply_affine(m, lm)
        buf = io.BytesIO()
        Image.fromarray(crop).save(buf, format="JPEG", quality=quality)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        lms.append(lm_crop.astype(np.float32))
        masks.append(np.packbits(geo.landmark_mask(lm_crop, (size, size))))
        ids.append(str(image_id))
        idents.append(str(landmarks["identity"][i]))
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, jpeg=np.concatenate(blobs), offsets=offsets, landmarks=np.stack(lms), masks=np.stack(masks),
             image_id=np.array(ids), identity=np.array(idents), size=np.array(size))
    return {"n": len(ids), "bytes": int(offsets[-1])}


def load(path: Path) -> dict[str, np.ndarray]:
    """Decoded arrays: ``images`` (N, size, size, 3) uint8, ``landmarks`` (N, 68, 2), ``masks`` (N, size, size)."""
    with np.load(path, allow_pickle=False) as z:
        size = int(z["size"])
        jpeg, off = z["jpeg"], z["offsets"]
        images = np.stack([np.asarray(Image.open(io.BytesIO(jpeg[off[i]:off[i + 1]].tobytes())).convert("RGB"))
                           for i in range(len(off) - 1)])
        masks = np.unpackbits(z["masks"], axis=1)[:, : size * size].reshape(-1, size, size)
        return {"images": images, "landmarks": z["landmarks"], "masks": masks, "image_id": z["image_id"],
                "identity": z["identity"], "size": size}
