"""Landmarks of a whole data set split, computed once and stored as a plain ``.npz`` (no pickle).

Used to fit the identity space and to train the generator; `bench` has its own per-run cache.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from .datasets import FaceDataset, ImageLoadError, load_image
from .faces.analyze import FaceFinder, NoFaceError


def extract_landmarks(dataset: FaceDataset, finder: FaceFinder | None = None, shard: tuple[int, int] = (0, 1),
                      progress: bool = True) -> dict[str, np.ndarray]:
    finder = finder or FaceFinder()
    ids, idents, boxes, lms, failed = [], [], [], [], []
    samples = dataset.samples[shard[0]::shard[1]]
    for s in tqdm(samples, desc=f"landmarks {dataset.name}/{dataset.split}", disable=not progress, mininterval=5):
        try:
            f = finder.primary(load_image(s.path))
        except (ImageLoadError, NoFaceError) as exc:
            failed.append(f"{s.image_id}\t{exc}")
            continue
        ids.append(s.image_id)
        idents.append(s.identity)
        boxes.append(f.box)
        lms.append(f.landmarks)
    return {"image_id": np.array(ids), "identity": np.array(idents), "box": np.array(boxes, np.float64).reshape(-1, 4),
            "landmarks": np.array(lms, np.float64).reshape(-1, 68, 2), "failed": np.array(failed),
            "finder": np.array(finder.version)}


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("image_id", "identity", "box", "landmarks", "failed")}
    order = np.argsort(out["image_id"], kind="stable")
    for k in ("image_id", "identity", "box", "landmarks"):
        out[k] = out[k][order]
    out["finder"] = parts[0]["finder"]
    return out
