"""A reconstruction grid on the embedded LFW sample: faces (rows) x, per method, the anonymised face
and what ``recon-wiener`` and ``recon-learned`` make of it, for a person to look at
(:func:`bench.report.recon_grid.render_grid`); and what each step cost.

    python scripts/recon_grid.py [--methods blur,pixelate-8,kpdp] [--eps 1] [--faces 8] \
        [--train-images 257] [--out reports/recon/grid-lfw-sample.png]

The faces are the first photo of evenly spaced people of the sample's evaluation images (their
shipped landmarks); ``recon-learned`` is trained, per method, on the method's outputs for the
sample's identity-disjoint LFW devtrain people (faces found as ``bench run`` finds them), as in a
run. Per-image seeds are the run's (:func:`bench.measure.seeds.anonymise`, seed 0). Prints the seconds
of anonymising, training and reconstructing per method.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import methods as method_registry  # noqa: E402
from bench.attackers import recon_learned as rl  # noqa: E402
from bench.attackers import recon_wiener as rw  # noqa: E402
from bench.attackers.data import whole_people  # noqa: E402
from bench.report.recon_grid import face_tile, render_grid  # noqa: E402
from bench.measure.seeds import anonymise  # noqa: E402
from kpdp.datasets import get_dataset, load_image  # noqa: E402
from kpdp.faces import Face  # noqa: E402
from kpdp.faces.analyze import FaceFinder, NoFaceError  # noqa: E402


def evaluation_faces(n: int):
    """(image id, image, Face) of the first photo of ``n`` evenly spaced people of the sample."""
    ds = get_dataset("lfw-sample")
    with np.load(ds.root / "landmarks.npz") as z:
        at = {i: k for k, i in enumerate(z["image_id"])}
        boxes, lms = z["box"], z["landmarks"]
    first = {}
    for s in ds.samples:
        first.setdefault(s.identity, s)
    people = list(first.values())
    out = []
    for s in people[:: max(1, len(people) // n)][:n]:
        k = at[s.image_id]
        out.append((s.image_id, load_image(s.path), Face(np.asarray(boxes[k], float), lms[k])))
    return ds.name, out


def training_faces(n: int, seed: int = 0):
    """(image id, image, Face, identity) of up to ``n`` devtrain images, whole people, faces found."""
    ds = get_dataset("lfw-sample", None, "devtrain")
    finder = FaceFinder()
    out = []
    for s in whole_people(ds.samples, lambda s: s.identity, n, seed):
        image = load_image(s.path)
        try:
            out.append((s.image_id, image, finder.primary(image), s.identity))
        except NoFaceError:
            continue
    return ds.name, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="blur,pixelate-8,kpdp")
    p.add_argument("--eps", type=float, default=1.0, help="for methods with ε")
    p.add_argument("--faces", type=int, default=8)
    p.add_argument("--train-images", type=int, default=257, help="devtrain images recon-learned trains on")
    p.add_argument("--out", default=str(ROOT / "reports" / "recon" / "grid-lfw-sample.png"))
    a = p.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)  # one image at a time on a shared CPU: extra threads only fight
    threadpool_limits(1)  # the same for numpy's BLAS (training: 14 s with its default threads here, 5 s with one)
    t0 = time.perf_counter()
    eval_name, faces = evaluation_faces(a.faces)
    train_name, train = training_faces(a.train_images)
    cost = {"find_training_faces_s": round(time.perf_counter() - t0, 1), "training_images": len(train)}
    rows = [[face_tile(image, face.box)] for _, image, face in faces]
    groups = [("", ["original"])]
    for spec in method_registry.split_specs(a.methods):
        eps = a.eps if method_registry.uses_eps(spec) else None
        method = method_registry.create(spec, eps)
        c = {}
        t = time.perf_counter()
        anon_train = [anonymise(method, im, [f], 0, train_name, spec, eps, i).image for i, im, f, _ in train]
        c["anonymise_training_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        model = rl.train(anon_train, [im for _, im, _, _ in train], [f.landmarks for _, _, f, _ in train],
                         [who for *_, who in train])
        c["train_learned_s"] = round(time.perf_counter() - t, 2)
        c["learned"] = {"images": model.info["images"], "components": model.info["crop"].get("components"),
                        "ridge": [model.info["local"]["alpha_relative"], model.info["crop"].get("alpha_relative")]}
        wiener_s, learned_s = 0.0, 0.0
        for row, (image_id, image, face) in zip(rows, faces):
            anon = anonymise(method, image, [face], 0, eval_name, spec, eps, image_id).image
            t = time.perf_counter()
            w = rw.reconstruct(method, anon, face)
            wiener_s += time.perf_counter() - t
            t = time.perf_counter()
            r = rl.reconstruct(model, anon, face.landmarks)
            learned_s += time.perf_counter() - t
            row += [face_tile(anon, face.box), None if w is None else face_tile(w, face.box), face_tile(r, face.box)]
        c["wiener_s_per_face"] = round(wiener_s / len(faces), 3) if rw.applies(method) else None
        c["learned_s_per_face"] = round(learned_s / len(faces), 4)
        cost[spec] = c
        groups.append((spec if eps is None else f"{spec} ε={eps:g}", ["anonymised", "recon-wiener", "recon-learned"]))
        print(spec, json.dumps(c), flush=True)
    path = render_grid(rows, groups, a.out)
    print(f"grid: {path}")
    print(json.dumps(cost))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
