"""The accelerated CPU path against its reference, in one run: for each network the project runs
through ONNX Runtime (kpdp.faces.onnx_cpu), the largest difference from torch on real faces and
the seconds per image of both engines, measured alternately on the same images (issue #36).

    python -m tests.benchmarks.parity [--n 200] [--threads 1]

Faces: the first ``--n`` images of LFW devtest (``../shared/data/lfw``), or of the embedded sample
when LFW is absent. Networks: the kpdp generator (raw outputs in [-1, 1], then the pasted image in
pixel levels), the FID Inception (pool features and the two maps the attribute probes read) and
the FaceNet port (L2-normalised embeddings), MTCNN's three networks (boxes, points and scores of
the whole detector); dlib's recognizer, whose reference is not torch but
dlib's own C++ forward (``dlib-cpp``; the port is :mod:`kpdp.faces.dlib_resnet_torch`).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from kpdp.faces.onnx_cpu import ENV


GFLOP = "GFLOP per image"


def _built_with(engine: str, make):
    """``make()`` under ``KPDP_INFERENCE=engine`` (``onnx`` or ``torch``), the variable restored after."""
    old = os.environ.get(ENV)
    try:
        os.environ[ENV] = engine
        return make()
    finally:
        os.environ.pop(ENV, None) if old is None else os.environ.__setitem__(ENV, old)


def _engines(make):
    """(onnx object, torch object) built by ``make()`` under each setting of KPDP_INFERENCE."""
    return _built_with("onnx", make), _built_with("torch", make)


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def _gflop(module, *inputs) -> float:
    """Floating-point operations of one forward (a multiply-add counts 2), in 1e9: with the seconds
    per image, how close an engine runs to the core's arithmetic peak."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops() / 1e9


def faces(n: int):
    from kpdp.datasets import get_dataset, load_image
    from kpdp.faces.analyze import FaceFinder, NoFaceError
    from tests.conftest import LFW_ROOT

    ds = get_dataset("lfw", LFW_ROOT, "devtest") if (LFW_ROOT / "pairs.txt").is_file() else get_dataset("lfw-sample")
    finder, out = FaceFinder(), []
    for s in ds.samples:
        image = load_image(s.path)
        try:
            out.append((image, finder.primary(image)))
        except NoFaceError:
            continue
        if len(out) == n:
            break
    return ds.name, out


def generator(items):
    from kpdp.inpaint import FaceInpainter

    fast, ref = _engines(lambda: FaceInpainter("dense68", mask_kind="ellipse"))
    raw, pix, sec = 0.0, 0, [0.0, 0.0]
    with torch.no_grad():
        for k, (image, face) in enumerate(items):
            target = face.landmarks + np.random.default_rng(k).normal(0, 1.5, face.landmarks.shape)
            _, _, inputs = fast.generator_inputs(image, face.landmarks, target, k)
            a, ta = _timed(fast._run, *inputs)
            b, tb = _timed(ref._run, *inputs)
            raw = max(raw, float((a - b).abs().max()))
            pix = max(pix, int(np.abs(fast.inpaint(image, face.landmarks, target, k)[0].astype(int)
                                      - ref.inpaint(image, face.landmarks, target, k)[0].astype(int)).max()))
            sec[0] += ta
            sec[1] += tb
    gflop = _gflop(ref.G, *inputs)
    return {"generator output [-1, 1]": raw, "anonymised image, levels": pix, GFLOP: gflop}, sec


def inception(items):
    import bench.metrics.fid as fid

    fast, ref = _engines(lambda: fid.InceptionFeatures("cpu"))
    diff, sec = {}, [0.0, 0.0]
    for image, _ in items:
        x = torch.from_numpy(np.array(fast.resize(image))).permute(2, 0, 1)[None]
        a, ta = _timed(fast.maps, x)
        b, tb = _timed(ref.maps, x)
        for k in a:
            rel = float((a[k] - b[k]).abs().max() / b[k].abs().max())
            diff[f"{k} (relative to its largest value)"] = max(diff.get(f"{k} (relative to its largest value)", 0), rel)
        sec[0] += ta
        sec[1] += tb
    diff[GFLOP] = _gflop(ref._layers, ref._input(x))
    return diff, sec


def _embeddings(fast, ref, items, label):
    diff, sec = 0.0, [0.0, 0.0]
    for image, face in items:
        a, ta = _timed(fast.embed_batch, [image], [face])
        b, tb = _timed(ref.embed_batch, [image], [face])
        diff = max(diff, float(np.abs(a - b).max()))
        sec[0] += ta
        sec[1] += tb
    return {label: diff}, sec


def facenet(items):
    from kpdp.faces.recognizers import FaceNetCasia

    fast, ref = _engines(lambda: FaceNetCasia("cpu"))
    diff, sec = _embeddings(fast, ref, items, "embedding (unit norm)")
    return {**diff, GFLOP: _gflop(ref.model, torch.zeros(1, 3, 160, 160))}, sec


def dlib_resnet(items):
    from kpdp.faces import get_recognizer

    fast = _built_with("onnx", lambda: get_recognizer("dlib"))  # the port through ONNX Runtime
    diff, sec = _embeddings(fast, get_recognizer("dlib-cpp"), items, "embedding (unit norm), against dlib's C++ forward")
    return {**diff, GFLOP: _gflop(fast.model, torch.zeros(1, 3, *fast.model.size))}, sec


def mtcnn(items):
    from kpdp.faces.detectors import MTCNNDetector

    fast, ref = _engines(MTCNNDetector)
    box, points, score, missed, sec = 0.0, 0.0, 0.0, 0, [0.0, 0.0]
    for image, _ in items:
        a, ta = _timed(fast.detect, image)
        b, tb = _timed(ref.detect, image)
        if len(a) != len(b):
            missed += 1
        for fa, fb in zip(a, b):
            box = max(box, float(np.abs(fa.box - fb.box).max()))
            points = max(points, float(np.abs(fa.extra["points5"] - fb.extra["points5"]).max()))
            score = max(score, abs(fa.score - fb.score))
        sec[0] += ta
        sec[1] += tb
    return {"boxes, px": box, "5 points, px": points, "scores": score, "images with another face count": missed}, sec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads (a pool worker: 1)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    name, items = faces(a.n)
    print(f"{len(items)} faces of {name}, {a.threads} thread(s); max |onnx - reference| and seconds per image "
          "(reference: torch; for dlib, dlib's C++ forward)")
    for label, fn in (("kpdp generator", generator), ("Inception (FID + attributes)", inception),
                      ("FaceNet-CASIA", facenet), ("dlib ResNet", dlib_resnet), ("MTCNN (3 networks)", mtcnn)):
        diffs, (t_fast, t_ref) = fn(items)
        n = len(items)
        gflop = diffs.pop(GFLOP, None)
        rate = f"  {gflop:.2f} GFLOP per image, onnx at {gflop * n / t_fast:.0f} GFLOP/s" if gflop else ""
        print(f"{label:30s} onnx {t_fast / n:.4f} s  reference {t_ref / n:.4f} s  ({t_ref / t_fast:.2f}x)  "
              + ", ".join(f"{k}: {v:.2e}" if isinstance(v, float) else f"{k}: {v}" for k, v in diffs.items())
              + rate, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
