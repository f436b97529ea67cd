"""LFW View 2 verification of a recognizer on original images (``bench lfw-verify``).

Protocol: the 6,000 pairs of ``pairs.txt`` in 10 folds; for each fold the cosine-similarity
threshold that maximises accuracy on the other 9 folds is applied to it; the result is the mean
and standard deviation of the 10 fold accuracies. Faces are found as everywhere else in the
project (:class:`kpdp.faces.analyze.FaceFinder`; the face nearest the centre), then each
recognizer applies its own published preprocessing. Images where no detector finds a face fall
back to a centred box of 0.4 x the image (LFW faces are centred at a fixed scale) and are counted.

The same pair images are embedded a second way, on purpose, by :func:`lfw_pair_embeddings`: the
run's verification threshold (FAR 1e-3 on the impostor pairs) must score images exactly as the
run's gallery and probes are scored, so those embeddings come from the run's own analysis of an
original (:func:`bench.measure.analysis.analyse_original`, cached with the run's features), and an
image without a face is left out rather than given the protocol's fallback box. Both walk the
images in chunks on the same pool (:func:`_embed_on_pool`).
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from bench.measure.analysis import Backends, analyse_original
from bench.processes import map_on_processes
from bench.store.cache import FeatureCache, file_digest
from kpdp.datasets import LFW, load_image
from kpdp.faces import Face, get_detector, get_landmarker, get_recognizer
from kpdp.faces.analyze import FaceFinder, NoFaceError, primary_index


def locate(image: np.ndarray, recognizer, finder: FaceFinder) -> tuple[Face, bool]:
    """The face in the form the recognizer's preprocessing wants; (face, used_fallback)."""
    h, w = image.shape[:2]
    if recognizer.needs == "box":  # FaceNet's evaluation used MTCNN boxes
        faces = get_detector("mtcnn", finder.device).detect(image)
        if faces:
            return faces[primary_index(faces, image.shape)], False
    try:
        return finder.primary(image), False
    except NoFaceError:
        s = 0.4 * min(h, w)
        f = Face(np.array([w / 2 - s / 2, h / 2 - s / 2, w / 2 + s / 2, h / 2 + s / 2]))
        f.landmarks = get_landmarker(finder.landmarker, finder.device).landmarks(image, f)
        return f, True


_WORKER: dict = {}


def _embedder(recognizer_name: str, device: str, cache: FeatureCache | None):
    rec = get_recognizer(recognizer_name, device)
    finder = FaceFinder(device=device)
    cache = cache or FeatureCache()

    def embed(p) -> tuple[np.ndarray, bool]:
        key = FeatureCache.key("verify-embedding", rec.version + "|" + finder.version, file_digest(p))
        e = cache.get_array(key)
        if e is not None:
            return np.asarray(e[:-1])[: rec.dim], bool(e[-1])
        image = load_image(p)
        face, fb = locate(image, rec, finder)
        e = np.asarray(rec.embed(image, face))
        cache.put_array(key, np.append(e, float(fb)))
        return e[: rec.dim], fb

    return embed


def _worker_init(recognizer_name: str, device: str) -> None:
    _WORKER["embed"] = _embedder(recognizer_name, device, None)


def _worker_embed(paths) -> list:
    return [_WORKER["embed"](p) for p in paths]


def embed_paths(paths, recognizer_name: str, device: str = "cpu", cache: FeatureCache | None = None,
                progress: bool = True, workers: int = 1, chunk: int = 32) -> tuple[np.ndarray, int]:
    """(N, dim) embeddings of ``paths`` and how many used the fallback box. ``workers`` > 1 embeds
    chunks on that many processes (each with its own models and one thread); they share the cache
    file (``cache`` is then only the default one, as each process opens its own)."""
    bar = tqdm(total=len(paths), desc=f"embed {recognizer_name}", disable=not progress, mininterval=10)
    if workers > 1 and len(paths) >= 2 * chunk:
        get_recognizer(recognizer_name, device)  # missing weights fail here, not in every worker
        init, init_args = _worker_init, (recognizer_name, device)
    else:  # here, with the caller's cache
        def init():
            _WORKER["embed"] = _embedder(recognizer_name, device, cache)
        init_args = ()
    results = []
    for part in _embed_on_pool(_worker_embed, paths, init, init_args, workers, chunk):
        results.extend(part)
        bar.update(len(part))
    bar.close()
    return np.stack([e for e, _ in results]), sum(int(fb) for _, fb in results)


def _embed_on_pool(work, paths: list, init, init_args: tuple, workers: int, chunk: int):
    """``work(chunk_of_paths)`` for each chunk, in order: here after ``init(*init_args)`` when
    one process is asked for or the images are few, else on ``workers`` processes that each run
    ``init`` once."""
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    if workers <= 1 or len(paths) < 2 * chunk:
        init(*init_args)
        yield from map(work, chunks)
    else:
        yield from map_on_processes(work, chunks, workers, init, init_args)


_PAIR_WORKER: dict = {}  # this process's backends and cache for the run's pair images


def _pair_init(recognizers, device):
    _PAIR_WORKER.update(backends=Backends(tuple(recognizers), (), device=device, metrics=("reid",)),
                        cache=FeatureCache())


def _pair_embed(paths) -> dict:
    """Embeddings of LFW pair images by every recognizer, exactly as the run's originals are
    analysed (face finder, then the reid group's face location); images without a face are left out."""
    out = {}
    for p in paths:
        try:
            _, feats = analyse_original(load_image(p), _PAIR_WORKER["backends"], _PAIR_WORKER["cache"])
        except (ValueError, OSError):
            continue
        out[p] = {k[4:]: np.asarray(v, np.float64) for k, v in feats.items() if k.startswith("emb:")}
    return out


def lfw_pair_embeddings(ds, recognizers, device: str = "cpu", workers: int = 1, chunk: int = 64) -> tuple[list, dict]:
    """LFW View 2's impostor pairs and the embeddings of their images by every recognizer, as the
    run embeds its originals, on ``workers`` processes (a cold cache holds ~4,500 images to
    analyse: minutes on one core)."""
    impostors = [(a, c) for _, a, c, same in LFW(ds.root, "all").pairs() if not same]
    paths = sorted({p for pair in impostors for p in pair})
    emb: dict = {}
    for part in _embed_on_pool(_pair_embed, paths, _pair_init, (tuple(recognizers), device), workers, chunk):
        emb.update(part)
    return impostors, emb


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per-fold accuracy with the threshold chosen on the other folds."""
    accs = []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        u = np.unique(scores[train])
        cands = (u[1:] + u[:-1]) / 2  # midpoints: a threshold never sits on a training score
        acc_train = np.array([((scores[train] >= t) == same[train]).mean() for t in cands])
        best = np.flatnonzero(acc_train == acc_train.max())
        t = cands[best[len(best) // 2]]  # the middle of the best plateau, not its edge
        accs.append(((scores[test] >= t) == same[test]).mean())
    return np.array(accs)


def lfw_verify(root: str, recognizer: str, device: str = "cpu", progress: bool = True,
               folds: list[int] | None = None, workers: int = 1) -> dict:
    """``folds`` restricts the protocol to some of the 10 folds (threshold chosen on the others of
    those given): the full protocol is the default. ``workers``: processes that embed the images."""
    get_recognizer(recognizer, device)  # an online-only recognizer fails here, before any work
    lfw = LFW(root, "all")
    pairs = [p for p in lfw.pairs() if folds is None or p[0] in folds]
    paths = sorted({p for _, a, b, _ in pairs for p in (a, b)})
    emb, fallbacks = embed_paths(paths, recognizer, device, progress=progress, workers=workers)
    index = {p: i for i, p in enumerate(paths)}
    a = emb[[index[p[1]] for p in pairs]]
    b = emb[[index[p[2]] for p in pairs]]
    scores = np.einsum("ij,ij->i", a, b)
    same = np.array([p[3] for p in pairs])
    accs = ten_fold_accuracy(scores, same, np.array([p[0] for p in pairs]))
    return {"recognizer": recognizer, "accuracy": float(accs.mean()), "std": float(accs.std()),
            "folds": accs.tolist(), "n_images": len(paths), "n_fallback_boxes": fallbacks}
