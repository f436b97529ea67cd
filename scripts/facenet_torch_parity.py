"""Parity and speed of the torch FaceNet (``facenet-casia-torch``) against the OpenCV graph
(``facenet-casia``) on LFW devtest faces, found as ``bench lfw-verify`` finds them (MTCNN box,
else the project's FaceFinder). Prints the min/mean cosine and images/s, one thread each.

    OMP_NUM_THREADS=1 python scripts/facenet_torch_parity.py --root ../shared/data/lfw --n 200
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch


def images_per_second(embed, images, faces, rounds: int) -> float:
    """Best of ``rounds`` (the least disturbed by other processes on a shared machine)."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        embed(images, faces)
        best = min(best, time.perf_counter() - t)
    return len(images) / best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="LFW root (pairs.txt, peopleDevTest.txt, lfw-deepfunneled/)")
    p.add_argument("--n", type=int, default=200, help="devtest images compared")
    p.add_argument("--seed", type=int, default=0, help="seed of the image choice")
    p.add_argument("--batch", type=int, default=32, help="torch batch size of the batched timing")
    p.add_argument("--timing-images", type=int, default=64, help="images per timing round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)

    from bench.measure.verify import locate
    from kpdp.datasets import LFW, load_image
    from kpdp.faces import get_recognizer
    from kpdp.faces.analyze import FaceFinder

    samples = list(LFW(a.root, "devtest"))
    pick = np.random.default_rng(a.seed).choice(len(samples), size=min(a.n, len(samples)), replace=False)
    reference, ours = get_recognizer("facenet-casia"), get_recognizer("facenet-casia-torch")
    finder = FaceFinder()
    images, faces, fallbacks = [], [], 0
    for i in sorted(pick):
        image = load_image(samples[i].path)
        face, fb = locate(image, ours, finder)
        images.append(image), faces.append(face)
        fallbacks += int(fb)
    e_ours, e_ref = ours.embed_batch(images, faces), reference.embed_batch(images, faces)
    cos = np.einsum("ij,ij->i", e_ours, e_ref)
    worst = samples[sorted(pick)[int(cos.argmin())]].image_id
    print(f"faces={len(images)} (devtest, seed {a.seed}; fallback boxes {fallbacks})")
    print(f"cosine torch vs opencv: min={cos.min():.9f} mean={cos.mean():.9f} "
          f"(1 - min = {1 - cos.min():.2e}, worst {worst}); max |difference| of an embedding "
          f"coordinate {np.abs(e_ours - e_ref).max():.2e}")

    t_images, t_faces = images[:a.timing_images], faces[:a.timing_images]
    ours.batch_size = a.batch
    one_by_one = lambda ims, fs: [ours.embed_batch([im], [f]) for im, f in zip(ims, fs)]  # noqa: E731
    ours.embed_batch(t_images[:a.batch], t_faces[:a.batch])  # warm-up (oneDNN primitive creation)
    reference.embed_batch(t_images[:2], t_faces[:2])
    speed = {"torch batch %d" % a.batch: images_per_second(ours.embed_batch, t_images, t_faces, a.rounds),
             "torch one at a time": images_per_second(one_by_one, t_images, t_faces, a.rounds),
             "opencv one at a time": images_per_second(reference.embed_batch, t_images, t_faces, a.rounds)}
    print(f"speed ({a.threads} thread(s), {len(t_images)} images, best of {a.rounds}; torch {torch.__version__}, "
          f"opencv {cv2.__version__}):")
    for name, ips in speed.items():
        print(f"  {name:<22} {ips:7.2f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
