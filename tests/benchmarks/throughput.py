"""Per-method anonymisation throughput (images/s) on the embedded sample, on CPU and on CUDA when
available. Faces come from the sample's shipped landmarks, so no detector runs here and the
numbers are the methods' own cost. Prints one line per (method, device)::

    python -m tests.benchmarks.throughput [--n 64] [--devices cpu,cuda]
"""
from __future__ import annotations

import argparse
import time


def main(argv=None):
    import torch

    from bench import methods as method_registry

    from . import sample_faces

    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--devices", default="cpu,cuda")
    p.add_argument("--methods", default="blur,pixelate-8,dppix,deepprivacy,kpdp")
    a = p.parse_args(argv)
    items = [(image, [face]) for image, face, _ in sample_faces(a.n)]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cuda: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    for device in a.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            continue
        for name in a.methods.split(","):
            m = method_registry.create(name, 1.0, device)
            m.anonymize(*items[0], seed=0)  # warm-up (weights to device, kernels)
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for k, (image, faces) in enumerate(items):
                m.anonymize(image, faces, seed=k)
            if device == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t
            print(f"{name:12s} {device:5s} {len(items) / dt:8.1f} images/s  ({1000 * dt / len(items):.1f} ms/image)")


if __name__ == "__main__":
    main()
