"""What keeping hands costs in privacy (kpdp[hands=keep] against hands=paint), on the photos where a hand is in
front of the drawn face.

The benchmark's attackers need whole identities, and hands are in a few photos only, so this is a
paired measurement on those photos alone: for each, the dlib descriptor's cosine similarity of the
anonymised face to (a) the original photo (same-photo linkage) and (b) the mean of up to 10 of the
person's other photos in the split (what a gallery attacker matches), both variants with the same noise;
differences with a 95 % bootstrap interval over photos. Also: how many photos of the split have a
hand over the drawn face at all, and a sheet of them (original with the hand found, painted, kept).

    python scripts/hands_cost.py --root ../shared/data/lfw --split devtest --out reports/kpdp-v3-progress/hands \\
        --method 'kpdp[generator=v3,blend=poisson,tone=skin]' [--limit N] [--seed 0]
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _paired(a: np.ndarray, b: np.ndarray, rng, n: int = 2000) -> tuple[float, float, float]:
    d = np.asarray(b) - np.asarray(a)
    boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(n)]
    return float(d.mean()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def _largest(faces):
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


_EMBEDDINGS: dict = {}


def _gallery(sample, photos, recognizer, size: int):
    """The mean descriptor of up to ``size`` other photos of the person (the first by name; each embedded
    once per run: a person of hundreds of photos would otherwise cost minutes per probe)."""
    from kpdp.datasets import load_image
    from kpdp.failclosed import find_faces

    embs = []
    for o in [o for o in photos if o.image_id != sample.image_id][:size]:
        if o.image_id not in _EMBEDDINGS:
            im = load_image(o.path)
            faces = find_faces(im, "cpu")
            _EMBEDDINGS[o.image_id] = recognizer.embed(im, _largest(faces)) if faces else None
        if _EMBEDDINGS[o.image_id] is not None:
            embs.append(_EMBEDDINGS[o.image_id])
    return np.mean(embs, 0) if embs else None


def main(argv=None) -> int:
    from kpdp.datasets import get_dataset, load_image
    from kpdp.faces import get_recognizer
    from kpdp.faces.hands import HandFinder
    from kpdp.failclosed import find_faces
    from bench.methods import parse_spec
    from kpdp.anonymizer import KPDPAnonymizer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root"), p.add_argument("--split", default="devtest")
    p.add_argument("--dataset", default="lfw"), p.add_argument("--out", required=True)
    p.add_argument("--method", default="kpdp[generator=v3,blend=poisson,tone=skin]")
    p.add_argument("--eps", type=float, default=1.0), p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0), p.add_argument("--sheet-rows", type=int, default=8)
    p.add_argument("--gallery-size", type=int, default=10, help="other photos of the person averaged")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    samples = list(get_dataset(a.dataset, root=a.root, split=a.split))[: a.limit or None]
    finder = HandFinder()
    _, params = parse_spec(a.method)
    painter, keeper = KPDPAnonymizer(eps=a.eps, **params), KPDPAnonymizer(eps=a.eps, hands="keep", **params)
    dlib = get_recognizer("dlib")
    rows, tiles, scanned = [], [], 0
    by_person: dict[str, list] = {}
    for s in samples:
        by_person.setdefault(s.identity, []).append(s)
    for s in samples:
        scanned += 1
        image = load_image(s.path)
        found = finder.find(image)
        if not found:
            continue
        faces = find_faces(image, "cpu")
        if not faces:
            continue
        face = _largest(faces)
        hand = finder.mask(image, face.landmarks, found)  # the hands that hands=keep keeps for this face
        painted = painter.anonymize(image, [face], seed=a.seed)
        over = hand.astype(bool) & (painted.region > 0)
        if over.sum() < 50:  # a hand elsewhere in the photo: both variants draw the same face
            continue
        kept = keeper.anonymize(image, [face], seed=a.seed)
        gallery = _gallery(s, by_person[s.identity], dlib, a.gallery_size)
        e_orig = dlib.embed(image, face)
        row = {"image_id": s.image_id, "hand_px_in_mask": int(over.sum()),
               "hand_share_of_mask": round(float(over.sum() / max((painted.region > 0).sum(), 1)), 4)}
        for name, res in (("paint", painted), ("keep", kept)):
            e = dlib.embed(res.image, face)
            row[f"same_photo_{name}"] = float(e @ e_orig)
            row[f"gallery_{name}"] = float(e @ gallery / np.linalg.norm(gallery)) if gallery is not None else ""
        rows.append(row)
        if len(tiles) < a.sheet_rows:
            show = image.copy()
            show[hand > 0] = (0.55 * show[hand > 0] + [0, 115, 0]).astype(np.uint8)
            tiles.append(np.hstack([cv2.resize(t, (200, 200)) for t in (show, painted.image, kept.image)]))
        print(f"{s.image_id}: hand {row['hand_share_of_mask']:.0%} of the mask, same-photo "
              f"{row['same_photo_paint']:.3f} -> {row['same_photo_keep']:.3f}", flush=True)
    with open(out / "hands.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["image_id"])
        w.writeheader(), w.writerows(rows)
    if tiles:
        cv2.imwrite(str(out / "faces-hands.jpg"), cv2.cvtColor(np.vstack(tiles), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 88])
    rng = np.random.default_rng(a.seed)
    summary = {"method": a.method, "eps": a.eps, "seed": a.seed, "split": a.split, "photos": scanned,
               "photos_with_a_hand_over_the_drawn_face": len(rows)}
    for key in ("same_photo", "gallery"):
        pairs = [(r[f"{key}_paint"], r[f"{key}_keep"]) for r in rows if r[f"{key}_paint"] != ""]
        if pairs:
            pa, ke = map(np.array, zip(*pairs))
            summary[key] = {"n": len(pairs), "paint": float(pa.mean()), "keep": float(ke.mean()),
                            "keep_minus_paint": _paired(pa, ke, rng)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
