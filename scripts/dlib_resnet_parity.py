"""Parity and speed of the torch port of dlib's face-recognition ResNet
(:mod:`kpdp.faces.dlib_resnet_torch`) against dlib's own ``compute_face_descriptor``, and of the
port exported to ONNX Runtime, on LFW devtest faces (the project's FaceFinder, the ``dlib``
recognizer's 150 px chips). Prints the largest descriptor and pairwise-cosine differences and the
seconds per face of each engine (best of ``--rounds``: the least disturbed by other processes).

    nice -n 10 python scripts/dlib_resnet_parity.py --root /work/shared/data/lfw --n 200
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch


def seconds_per_face(run, chips, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        run(chips)
        best = min(best, time.perf_counter() - t)
    return best / len(chips)


def cosines(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="LFW root (peopleDevTest.txt, lfw-deepfunneled/)")
    p.add_argument("--n", type=int, default=200, help="devtest faces compared")
    p.add_argument("--seed", type=int, default=0, help="seed of the image choice")
    p.add_argument("--batch", type=int, default=16, help="batch size of torch and ONNX Runtime (dlib's own is 16)")
    p.add_argument("--rounds", type=int, default=2, help="timing rounds over all faces, per engine")
    a = p.parse_args(argv)

    from kpdp.datasets import LFW, load_image
    from kpdp.faces.analyze import FaceFinder, NoFaceError
    from kpdp.faces.dlib_resnet_torch import default_path, load_dlib_resnet_torch
    from kpdp.faces.onnx_cpu import OrtModule
    from kpdp.faces.recognizers import DlibResNetCpp
    from kpdp.faces.registry import file_sha256

    samples = list(LFW(a.root, "devtest"))
    order = np.random.default_rng(a.seed).permutation(len(samples))
    finder, recognizer = FaceFinder(), DlibResNetCpp()  # dlib's own forward: the reference
    chips, ids, missed = [], [], 0
    for i in order:
        if len(chips) == a.n:
            break
        image = load_image(samples[i].path)
        try:
            face = finder.primary(image)
        except NoFaceError:
            missed += 1
            continue
        chips.append(recognizer.chip(image, face)), ids.append(samples[i].identity)
    print(f"faces={len(chips)} of LFW devtest (seed {a.seed}; {missed} images without a face skipped), "
          f"{len(set(ids))} people")

    net = load_dlib_resnet_torch()
    key = f"dlib-resnet-{file_sha256(default_path())[:16]}"

    def batched(fn):
        def run(cs):
            with torch.inference_mode():
                return np.concatenate([fn(net.chips_to_tensor(cs[i:i + a.batch])).numpy()
                                       for i in range(0, len(cs), a.batch)]).astype(np.float64)
        return run

    def run_dlib(cs):
        return np.array([np.array(d) for d in recognizer.model.compute_face_descriptor(cs)], np.float64)

    engines = {"dlib": (run_dlib, None)}
    for threads in (1, 2):
        engines[f"torch {threads} thread(s)"] = (batched(net), threads)
    with tempfile.TemporaryDirectory(prefix="dlib-resnet-onnx-") as onnx_dir:  # sessions keep the graph in memory
        for threads in (1, 2):  # ONNX Runtime takes torch's thread count when its session is made
            torch.set_num_threads(threads)
            ort = OrtModule(net, (torch.zeros(1, 3, 150, 150),), key=key, directory=onnx_dir)
            ort.session()
            engines[f"onnxruntime {threads} thread(s)"] = (batched(ort), threads)

    results, reference = {}, None
    for name, (run, threads) in engines.items():
        if threads:
            torch.set_num_threads(threads)
        desc = run(chips)  # also the warm-up (oneDNN primitives, ORT's first run)
        if reference is None:
            reference = desc
        results[name] = (desc, seconds_per_face(run, chips, a.rounds))

    c_ref = cosines(reference)
    upper = np.triu_indices(len(chips), 1)
    same = (np.array(ids)[:, None] == np.array(ids)[None, :])[upper]
    print(f"dlib {__import__('dlib').__version__}, torch {torch.__version__}, onnxruntime "
          f"{__import__('onnxruntime').__version__}; descriptor norms {np.linalg.norm(reference, axis=1).min():.3f}"
          f"..{np.linalg.norm(reference, axis=1).max():.3f}; {same.sum()} same-person pairs of {same.size}")
    print(f"{'engine':<26} {'max|desc - dlib|':>17} {'max|cos - dlib cos|':>20} {'s/face':>8}")
    for name, (desc, spf) in results.items():
        d_desc = np.abs(desc - reference).max()
        d_cos = np.abs(cosines(desc)[upper] - c_ref[upper]).max()
        print(f"{name:<26} {d_desc:17.2e} {d_cos:20.2e} {spf:8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
