"""Method-independent work on the originals, and the per-image measurements of an anonymised image.

Everything here is keyed by image content (sha1) and backend version in the shared
:class:`bench.cache.FeatureCache`, so it is computed once per image and backend, across cells,
runs and methods (an anonymised image identical to its original, e.g. method ``original``, costs
nothing).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from kpdp.faces import Face, get_detector, get_landmarker, get_recognizer
from kpdp.faces.analyze import FaceFinder, primary_index
from kpdp.method import face_region

from .cache import FeatureCache
from .metrics.background import background_psnr_ssim
from .metrics.detection import iou
from .metrics.fid import get_extractor, inception_features
from .metrics.landmarks import nme
from .timing import model_call

MATCH_IOU = 0.3  # a detection "is" the labelled face when it overlaps the primary face this much


def face_to_json(f: Face) -> dict:
    return {"box": [float(v) for v in f.box],
            "landmarks": None if f.landmarks is None else np.asarray(f.landmarks).round(3).tolist(),
            "score": float(f.score)}


def face_from_json(d: dict) -> Face:
    return Face(np.array(d["box"], np.float64), None if d["landmarks"] is None else np.array(d["landmarks"]),
                d.get("score", 1.0))


def image_digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).hexdigest()


def best_match(faces: list[Face], box: np.ndarray, threshold: float = MATCH_IOU) -> Face | None:
    scored = [(iou(f.box, box), f) for f in faces]
    scored = [s for s in scored if s[0] >= threshold]
    return max(scored, key=lambda s: s[0])[1] if scored else None


@dataclass
class Backends:
    recognizers: tuple[str, ...]
    detectors: tuple[str, ...]
    landmarker: str = "dlib68"
    device: str = "cpu"
    fid: bool = True

    def __post_init__(self):
        self.finder = FaceFinder(device=self.device, landmarker=self.landmarker)
        self.recs = {r: get_recognizer(r, self.device) for r in self.recognizers}
        self.dets = {d: get_detector(d, self.device) for d in self.detectors}
        self.lm = get_landmarker(self.landmarker, self.device)
        # landmarks on anonymised images are found where a HOG (then MTCNN) detector sees the face
        self.lm_dets = [get_detector(d, self.device) for d in ("dlib-hog", "mtcnn")]

    def versions(self) -> dict[str, str]:
        v = {f"recognizer:{k}": r.version for k, r in self.recs.items()}
        v.update({f"detector:{k}": d.version for k, d in self.dets.items()})
        v["landmarks"] = self.lm.version
        v["finder"] = self.finder.version
        if self.fid:
            from .metrics.fid import _model_path
            from kpdp.faces.registry import file_sha256

            v["inception"] = "fid-helper-default_1-" + file_sha256(_model_path())[:12]
        return v


def analyse_original(image: np.ndarray, b: Backends, cache: FeatureCache) -> tuple[dict, dict]:
    """(record, features) of an original. Raises ValueError('no face ...') when none is found."""
    digest = image_digest(image)
    key = FeatureCache.key("original", "|".join(f"{k}={v}" for k, v in sorted(b.versions().items())), digest)
    hit = cache.get_json(key)
    if hit is not None:
        feats = {k: cache.get_array(key + "|" + k) for k in hit["feature_names"]}
        if all(v is not None for v in feats.values()):
            return hit, feats
    with model_call("finder"):
        faces = b.finder.all_faces(image)
    if not faces:
        raise ValueError("no face found in the original (dlib-hog, mtcnn)")
    p = primary_index(faces, image.shape)
    primary = faces[p]
    record = {"faces": [face_to_json(f) for f in faces], "primary": p, "rec_face": {}, "det_ref": {}, "det_hit": {}}
    feats, detections = {}, {}
    for name, det in b.dets.items():
        with model_call(f"detector:{name}"):
            detections[name] = det.detect(image)
        m = best_match(detections[name], primary.box)
        record["det_hit"][name] = m is not None
        record["det_ref"][name] = [float(v) for v in (m.box if m is not None else primary.box)]
    for name, rec in b.recs.items():
        face = primary
        if rec.needs == "box":  # FaceNet-family preprocessing is defined on MTCNN boxes
            if "mtcnn" not in detections:
                with model_call("detector:mtcnn"):
                    detections["mtcnn"] = get_detector("mtcnn", b.device).detect(image)
            m = best_match(detections["mtcnn"], primary.box)
            face = Face(m.box, primary.landmarks) if m is not None else primary
        record["rec_face"][name] = face_to_json(face)
        with model_call(f"recognizer:{name}"):
            feats[f"emb:{name}"] = rec.embed(image, face)
    if b.fid:
        with model_call("inception"):
            feats["incep"] = inception_features([image], b.device)[0]
    record["feature_names"] = sorted(feats)
    cache.put_json(key, record)
    for k, v in feats.items():
        cache.put_array(key + "|" + k, v)
    return record, feats


def background_mask(faces: list[Face], shape) -> np.ndarray:
    """The same mask for every method: the baselines' face box region of every face."""
    mask = np.zeros(shape[:2], np.uint8)
    for f in faces:
        mask |= face_region(f, shape, "box")
    return mask


def measure_anonymised(original: np.ndarray, out: np.ndarray, orig_record: dict, orig_feats: dict,
                       target: np.ndarray | None, b: Backends, cache: FeatureCache) -> tuple[dict, dict]:
    """Per-image results for one anonymised image (cached by its content)."""
    faces = [face_from_json(f) for f in orig_record["faces"]]
    primary = faces[orig_record["primary"]]
    if np.array_equal(out, original):  # nothing changed: the original's own results
        record = {"det_hit": dict(orig_record["det_hit"]), "nme": 0.0, "lm_fail": False}
        feats = {k: v for k, v in orig_feats.items()}
    else:
        key = FeatureCache.key("anonymised", "|".join(f"{k}={v}" for k, v in sorted(b.versions().items())),
                               image_digest(out) + image_digest(original))
        hit = cache.get_json(key)
        if hit is not None:
            record, feats = hit, {k: cache.get_array(key + "|" + k) for k in hit["feature_names"]}
        else:
            record, feats = _measure(original, out, orig_record, primary, b)
            record["feature_names"] = sorted(feats)
            cache.put_json(key, record)
            for k, v in feats.items():
                cache.put_array(key + "|" + k, v)
    record = dict(record)
    if target is not None and record.get("lm_found") is not None:
        record["nme_target"] = nme(np.array(record["lm_found"]), target)
    psnr, ssim = background_psnr_ssim(original, out, background_mask(faces, original.shape))
    record["bg_psnr"], record["bg_ssim"] = psnr, ssim
    return record, feats


def _measure(original, out, orig_record, primary, b: Backends):
    record, feats, detections = {"det_hit": {}}, {}, {}
    for name, det in b.dets.items():
        ref = np.array(orig_record["det_ref"][name])
        with model_call(f"detector:{name}"):
            detections[name] = det.detect(out)
        record["det_hit"][name] = any(iou(f.box, ref) >= 0.5 for f in detections[name])
    for name, rec in b.recs.items():
        with model_call(f"recognizer:{name}"):
            feats[f"emb:{name}"] = rec.embed(out, face_from_json(orig_record["rec_face"][name]))
    found = None
    for det in b.lm_dets:  # the detection metric's results are reused, never recomputed
        if det.name not in detections:
            with model_call(f"detector:{det.name}"):
                detections[det.name] = det.detect(out)
        found = best_match(detections[det.name], primary.box)
        if found is not None:
            break
    if found is None:
        record["lm_fail"], record["lm_found"], record["nme"] = True, None, None
    else:
        with model_call("landmarks"):
            lm = b.lm.landmarks(out, found)
        record["lm_fail"], record["lm_found"] = False, lm.round(3).tolist()
        record["nme"] = nme(lm, primary.landmarks)
    if b.fid:
        with model_call("inception"):
            feats["incep"] = inception_features([out], b.device)[0]
    return record, feats


def warm_up(b: Backends):
    if b.fid:
        get_extractor(b.device)
