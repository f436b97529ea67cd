"""Does a generator use its noise input? Two draws of one face with the same geometry and other
generator noise: the mean absolute difference inside the crop mask (grey levels, 0-255) and the
cosine similarity of the two drawn crops in the torch FaceNet that training's identity terms use.

v3 step 2452 gives ~2.6 levels and a cosine of 0.98 on LFW devtest faces: nearly one face per geometry,
hence the same-photo linkage; see reports/kpdp-v3-progress/README.md, chunk 8.

    python scripts/noise_draws.py --root ../shared/data/lfw --split devtest --every 450 --n 8 \\
        --weights shipped /path/to/other.safetensors
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def draw_difference(inpainter, image: np.ndarray, landmarks: np.ndarray, seeds=(1, 2), identity=None):
    """(mean |difference| in grey levels inside the mask, FaceNet cosine or None) of the generator's
    two crops of ``image``'s face drawn with its own geometry and noise ``seeds``."""
    outs = []
    for seed in seeds:
        _, mask, inputs = inpainter.generator_inputs(image, landmarks, landmarks, seed)
        with torch.no_grad():
            outs.append(inpainter.G(*inputs).float().clamp(-1, 1))  # as inpaint releases it
    inside = torch.from_numpy(mask).bool()
    level = float(((outs[0] - outs[1]).abs() * 127.5)[0][:, inside].mean())
    if identity is None:
        return level, None
    with torch.no_grad():
        a, b = (identity.embed(o) for o in outs)
    return level, float((a * b).sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="lfw"), p.add_argument("--root"), p.add_argument("--split", default="devtest")
    p.add_argument("--every", type=int, default=450), p.add_argument("--n", type=int, default=8)
    p.add_argument("--weights", nargs="+", default=["shipped"], help="v3 safetensors files; 'shipped': the packaged ones")
    a = p.parse_args(argv)
    from kpdp.datasets import get_dataset, load_image
    from kpdp.faces.analyze import FaceFinder
    from kpdp.inpaint import FaceInpainter
    from kpdp.train import IdentityDistance

    samples = list(get_dataset(a.dataset, a.root, a.split).samples)[:: a.every][: a.n]
    finder, identity = FaceFinder(), IdentityDistance("cpu", 0.3)
    faces = []
    for s in samples:
        img = load_image(s.path)
        face = finder.primary(img)
        if face is None:
            print(f"note: {s.path}: no face found, left out")
            continue
        faces.append((img, face.landmarks))
    for w in a.weights:
        inpainter = FaceInpainter("sparse7+dense68", None if w == "shipped" else w, "cpu", mask_kind="ellipse")
        res = [draw_difference(inpainter, img, lm, identity=identity) for img, lm in faces]
        levels, cosines = zip(*res)
        print(f"{w}: mean |draw 1 - draw 2| inside the mask {np.mean(levels):.2f} grey levels "
              f"({', '.join(f'{x:.1f}' for x in levels)}); FaceNet cosine of the two draws {np.mean(cosines):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
