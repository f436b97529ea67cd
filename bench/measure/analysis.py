"""Per-image measurement: the originals once, each anonymised image once, through the metric
groups of :mod:`bench.metrics.registry` that the run selected.

Everything is keyed in the shared :class:`bench.store.cache.FeatureCache` by image content (sha1), the
group's code version and the versions of the backends it uses, so a record is computed once per
image, group and backend, across cells, runs and methods, and a fixed metric (a bumped group
version) never reuses an old record. Only the backends the selected groups need are loaded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from bench.metrics import registry
from bench.metrics.fid import _model_path, get_extractor, inception_pass
from bench.store.cache import FeatureCache
from bench.timing import model_call
from kpdp.faces import Face, get_detector, get_landmarker, get_recognizer
from kpdp.faces.analyze import FaceFinder, primary_index
from kpdp.faces.registry import file_sha256


def face_to_json(f: Face) -> dict:
    return {"box": [float(v) for v in f.box],
            "landmarks": None if f.landmarks is None else np.asarray(f.landmarks).round(3).tolist(),
            "score": float(f.score)}


def face_from_json(d: dict) -> Face:
    return Face(np.array(d["box"], np.float64), None if d["landmarks"] is None else np.array(d["landmarks"]),
                d.get("score", 1.0))


def image_digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).hexdigest()


# MTCNN is a pyramid of small networks with a copy back to the host after each stage. Processes
# that share one GPU take turns on it, so its cost per image there grows with the number of
# workers, while on a CPU core it stays put. Seconds per image and worker on an H200 with 16 cores
# (reports/perf/stages-h200-mtcnn-p*.json): GPU 0.039 alone, 0.062 with 2 workers, 0.090 with 4,
# 0.173 with 8, 0.348 with 16; one CPU core 0.068-0.074 at every count.
MTCNN_GPU_MAX_WORKERS = 2


def detector_device(name: str, device: str, workers: int) -> str:
    """Where detector ``name`` runs when ``workers`` processes share ``device``.

    >>> detector_device("mtcnn", "cuda", 16), detector_device("mtcnn", "cuda", 2)
    ('cpu', 'cuda')
    """
    if name == "mtcnn" and device.startswith("cuda") and workers > MTCNN_GPU_MAX_WORKERS:
        return "cpu"
    return device


@dataclass
class Backends:
    """The models of one process: only those that the selected metric groups need."""

    recognizers: tuple[str, ...]
    detectors: tuple[str, ...]
    landmarker: str = "dlib68"
    device: str = "cpu"
    metrics: tuple[str, ...] | None = None  # selected groups; None: every selectable group
    workers: int = 1  # processes that share `device` (see detector_device)
    _dets: dict = field(default_factory=dict, repr=False)

    @classmethod
    def for_config(cls, cfg) -> "Backends":
        workers = cfg.workers if cfg.executor in ("processes", "ray") else 1
        return cls(tuple(cfg.recognizers), tuple(cfg.detectors), device=cfg.device, metrics=tuple(cfg.metrics),
                   workers=workers)

    def __post_init__(self):
        selected = registry.selectable_groups() if self.metrics is None else list(self.metrics)
        self.groups = [g() for n, g in registry.groups().items() if n in selected or not g.selectable]
        needs = {k for g in self.groups for k in g.needs}
        # the face finder is not a metric: every method needs the original's faces and landmarks
        self.finder = FaceFinder(device=self.device, landmarker=self.landmarker,
                                 detector_device=detector_device("mtcnn", self.device, self.workers))
        self.recs = {r: get_recognizer(r, self.device) for r in self.recognizers} if "recognizers" in needs else {}
        self.dets = {d: self.detector(d) for d in self.detectors} if "detectors" in needs else {}
        self.lm = get_landmarker(self.landmarker, self.device) if "landmarker" in needs else None
        self.inception = "inception" in needs

    def detector(self, name: str):
        if name not in self._dets:
            self._dets[name] = get_detector(name, detector_device(name, self.device, self.workers))
        return self._dets[name]

    def versions(self) -> dict[str, str]:
        v = {f"recognizer:{k}": r.version for k, r in self.recs.items()}
        v.update({f"detector:{k}": d.version for k, d in self.dets.items()})
        if self.lm is not None:
            v["landmarks"] = self.lm.version
        v["finder"] = self.finder.version
        if self.inception:
            v["inception"] = "fid-helper-default_1-" + file_sha256(_model_path())[:12] + get_extractor(self.device).tag
        v.update({f"metrics:{g.name}": g.version for g in self.groups})
        return v

    def cache_version(self, group) -> str:
        """Cache key part of a group: its code version, the finder's and the versions of the backends
        it uses (its ``needs`` and the detectors it calls, ``uses_detectors``), so a run that
        selects other groups, or other detectors, still finds the group's records."""
        kinds = set(group.needs)
        prefixes = {"recognizers": "recognizer:", "detectors": "detector:", "landmarker": "landmarks",
                    "inception": "inception"}
        used = tuple(p for k, p in prefixes.items() if k in kinds)
        parts = [f"v{group.version}", self.finder.version]
        parts += [f"{k}={v}" for k, v in sorted(self.versions().items()) if k.startswith(used)]
        parts += [f"detector:{d}={self.detector(d).version}" for d in getattr(group, "uses_detectors", ())
                  if "detectors" not in kinds or d not in self.dets]
        return "|".join(parts)


class ImageContext:
    """What a metric group sees of one image: the image, the original's faces and, for an
    anonymised image, the original and its record. Detections and the Inception pass are memoised
    per image, so groups that need the same detector (detection, landmarks, FaceNet's crop) run it
    once, and FID and the attribute probes read one forward of the network."""

    def __init__(self, image, backends: Backends, faces, primary_index_: int, original=None, orig_record=None,
                 target=None):
        self.image, self.backends = image, backends
        self.faces, self.primary = faces, faces[primary_index_]
        self.original, self.orig_record, self.target = original, orig_record, target
        self._detections: dict[str, list[Face]] = {}
        self._inception: dict | None = None

    def detect(self, name: str) -> list[Face]:
        if name not in self._detections:
            det = self.backends.detector(name)
            with model_call(f"detector:{name}"):
                self._detections[name] = det.detect(self.image)
        return self._detections[name]

    def inception(self) -> dict:
        """:func:`bench.metrics.fid.inception_pass` of this image, computed on first use."""
        if self._inception is None:
            with model_call("inception"):
                self._inception = inception_pass([self.image], self.backends.device)[0]
        return self._inception


def _cached(cache: FeatureCache, key: str, compute) -> tuple[dict, dict]:
    hit = cache.get_json(key)
    if hit is not None:
        feats = {k: cache.get_array(key + "|" + k) for k in hit.get("feature_names", [])}
        if all(v is not None for v in feats.values()):
            hit.pop("feature_names", None)
            return hit, feats
    record, feats = compute()
    cache.put_json(key, {**record, "feature_names": sorted(feats)})
    for k, v in feats.items():
        cache.put_array(key + "|" + k, v)
    return record, feats


def _selected(b: Backends, groups) -> list:
    return b.groups if groups is None else [g for g in b.groups if g.name in groups]


def analyse_original(image: np.ndarray, b: Backends, cache: FeatureCache, groups=None) -> tuple[dict, dict]:
    """(record, features) of an original by the metric groups named in ``groups`` (None: every
    group of ``b``). Raises ValueError('no face ...') when none is found."""
    digest = image_digest(image)

    def find():
        with model_call("finder"):
            faces = b.finder.all_faces(image)
        if not faces:
            return {"faces": []}, {}
        return {"faces": [face_to_json(f) for f in faces], "primary": primary_index(faces, image.shape)}, {}

    record, _ = _cached(cache, FeatureCache.key("original:faces", b.finder.version, digest), find)
    if not record["faces"]:
        raise ValueError("no face found in the original (dlib-hog, mtcnn)")
    record = {**record, "self": {}}
    ctx = ImageContext(image, b, [face_from_json(f) for f in record["faces"]], record["primary"])
    feats: dict = {}
    for g in _selected(b, groups):
        def compute(g=g):
            return g.original(ctx)
        rec, f = (_cached(cache, FeatureCache.key(f"original:{g.name}", b.cache_version(g), digest), compute)
                  if g.cached else compute())
        record["self"].update(rec.pop("self", {}))
        record.update(rec)
        feats.update(f)
    return record, feats


def measure_anonymised(original: np.ndarray, out: np.ndarray, orig_record: dict, orig_feats: dict,
                       target: np.ndarray | None, b: Backends, cache: FeatureCache, groups=None) -> tuple[dict, dict]:
    """Per-image results for one anonymised image. An output equal to its original gets the
    original's own results, which the groups computed with the same rule (``record['self']``)."""
    faces = [face_from_json(f) for f in orig_record["faces"]]
    ctx = ImageContext(out, b, faces, orig_record["primary"], original=original, orig_record=orig_record,
                       target=target)
    identical = np.array_equal(out, original)
    record, feats = (dict(orig_record.get("self", {})), dict(orig_feats)) if identical else ({}, {})
    pair = None
    selected = _selected(b, groups)
    for g in selected:
        if identical and g.cached:
            continue
        if g.cached:
            pair = pair or image_digest(out) + image_digest(original)
            rec, f = _cached(cache, FeatureCache.key(f"anonymised:{g.name}", b.cache_version(g), pair),
                             lambda g=g: g.anonymised(ctx))
        else:
            rec, f = g.anonymised(ctx)
        record.update(rec)
        feats.update(f)
    for g in selected:
        record.update(g.finish(record, ctx))
    record["digest"] = image_digest(out)  # what was measured: reports show exactly this image
    return record, feats


def warm_up(b: Backends):
    if b.inception:

        get_extractor(b.device)
