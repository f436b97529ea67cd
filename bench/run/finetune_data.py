"""Pixels for attackers that learn from images (``semi-finetune``): the store keeps the recognizers'
embeddings, not the anonymised images, so the images an attacker needs are made again from the
run's own per-image seeds, exactly as :func:`bench.report.samples.measured_samples` does, and each is
checked against the digest the run stored (``record["digest"]``).

A *release* is one stored cell: (store data set, method, ε, seed), e.g. ``lfw#gallery/kpdp/1.0/0``.
Its originals live under the base data set name (probes, ``#gallery``) or under
``<dataset>#attacker-train`` (training images). The face is cropped where the run's FaceNet
recognizer embedded it: the MTCNN box the reid group stored for ``facenet-casia`` on the original
(``rec_face``), else that of another box-preprocessed recognizer, else the original's primary face.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from bench import methods as method_registry
from bench.measure.analysis import Backends, face_from_json, image_digest
from bench.measure.seeds import anonymise
from bench.run.evaluate import Cell
from bench.run.executor import ImageWorker, run_local
from bench.store.results import ROLES, eps_key, store_dataset
from kpdp.datasets import load_image
from kpdp.faces.crops import facenet_crop
from kpdp.faces.facenet_torch import INPUT_SIZE

#: recognizers whose stored face location is FaceNet's own crop (an MTCNN box), best first
BOX_RECOGNIZERS = ("facenet-casia", "facenet-casia-opencv", "facenet-vggface2")


@dataclass(frozen=True)
class Release:
    """One stored cell whose images an attacker needs."""

    origin: str  # data set under which the originals are stored
    store_dataset: str  # data set under which the anonymised images are stored (also the seed's)
    method: str
    eps: float | None
    seed: int

    def label(self) -> str:
        return f"{self.store_dataset}/{self.method}/{eps_key(self.eps) or '-'}/{self.seed}"


@dataclass
class RegenStats:
    """What regenerating cost and whether the pixels were the ones the run measured."""

    images: int = 0
    seconds: float = 0.0
    checked: int = 0  # images with a stored digest
    mismatched: list = field(default_factory=list)  # (release, image id) whose pixels differ from the run's
    failed: list = field(default_factory=list)  # (release, image id, why) that yielded no crop

    def as_dict(self) -> dict:
        return {"images": self.images, "seconds": round(self.seconds, 2), "digests_checked": self.checked,
                "digests_mismatched": len(self.mismatched), "mismatched_examples": self.mismatched[:5],
                "no_crop": len(self.failed), "no_crop_examples": self.failed[:5]}


def crop_face(record: dict):
    """The :class:`kpdp.faces.Face` FaceNet crops on this original (see the module's docstring)."""

    rec_face = record.get("rec_face") or {}
    for name in BOX_RECOGNIZERS:
        if name in rec_face:
            return face_from_json(rec_face[name])
    return face_from_json(record["faces"][record.get("primary", 0)])


def stored_digests(store, release: Release) -> dict[str, str | None]:
    """{image id: stored digest (None if the run stored none)} of the ok images of a release."""
    out = {}
    for image_id, status, _, record, _ in store.images(release.store_dataset, release.method, release.eps,
                                                        release.seed):
        if status == "ok":
            out[image_id] = record.get("digest")
    return out


def originals(store, dataset: str, image_ids) -> dict[str, tuple[str, str, dict]]:
    """{image id: (identity, path, record)} of stored originals."""
    wanted = set(image_ids)
    out = {}
    for image_id, identity, path, record in store.original_samples(dataset):
        if image_id in wanted:
            out[image_id] = (identity, path, json.loads(record))
    return out


@contextmanager
def _torch_threads(n: int | None):
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Regenerator:
    """Makes a run's anonymised images again (its methods, its per-image seeds) and crops them as
    the torch FaceNet expects (160 px, the box + 32 px margin of :func:`kpdp.faces.crops.facenet_crop`).

    ``single_thread``: the run's images were made by one-thread pool workers (executor
    ``processes`` or ``ray``); torch convolutions summed in another order round differently, so
    generators are re-run on one thread to give the very pixels the run measured."""

    def __init__(self, store, method_device: str = "cpu", single_thread: bool = False):
        self.store = store
        self.method_device = method_device
        self.threads = 1 if single_thread else None
        self._methods: dict = {}
        self.stats = RegenStats()

    @classmethod
    def for_run(cls, store, meta: dict | None = None) -> "Regenerator":
        meta = meta if meta is not None else store.meta()
        executor = (meta.get("executor") or {}).get("name")
        argv = list(meta.get("argv") or [])
        device = argv[argv.index("--device") + 1] if "--device" in argv[:-1] else "cpu"
        if device.startswith("cuda"):
            import torch

            device = device if torch.cuda.is_available() else "cpu"
        return cls(store, device, executor in ("processes", "ray"))

    def method(self, spec: str, eps):
        if (spec, eps) not in self._methods:
            self._methods[(spec, eps)] = method_registry.create(spec, eps, self.method_device)
        return self._methods[(spec, eps)]

    def images(self, release: Release, image_ids) -> dict[str, tuple[np.ndarray, dict, bool]]:
        """{image id: (anonymised image, original's record, whether it is the very image the run
        measured)} of the release's ok images among ``image_ids``, made again as the run made them
        (its method, seed and threads); a mismatch with the stored digest is counted in ``stats``."""
        digests = stored_digests(self.store, release)
        ids = [i for i in image_ids if i in digests]
        origs = originals(self.store, release.origin, ids)
        method = self.method(release.method, release.eps)
        out = {}
        t0 = time.perf_counter()
        with _torch_threads(self.threads):
            for image_id in ids:
                if image_id not in origs:
                    self.stats.failed.append((release.label(), image_id, "original not in the store"))
                    continue
                _, path, record = origs[image_id]
                faces = [face_from_json(f) for f in record["faces"]]
                image = anonymise(method, load_image(path), faces, release.seed, release.store_dataset,
                                  release.method, release.eps, image_id).image
                self.stats.images += 1
                same = True
                if digests[image_id] is not None:
                    self.stats.checked += 1
                    same = image_digest(image) == digests[image_id]
                    if not same:
                        self.stats.mismatched.append((release.label(), image_id))
                out[image_id] = (image, record, same)
        self.stats.seconds += time.perf_counter() - t0
        return out

    def crops(self, release: Release, image_ids) -> dict[str, np.ndarray]:
        """{image id: 160x160x3 uint8 crop} of the release's ok images among ``image_ids``; an
        image the method failed on, or whose box falls outside the image, is left out."""
        out = {}
        for image_id, (image, record, _) in self.images(release, image_ids).items():
            try:
                out[image_id] = facenet_crop(image, crop_face(record), size=INPUT_SIZE)
            except ValueError as exc:
                self.stats.failed.append((release.label(), image_id, str(exc)))
        return out


def ensure_releases(store, ds, releases: list[Release], samples: dict[str, list], recognizers, log=print) -> None:
    """Anonymise (through the harness, as ``bench run`` would have) the releases the run does not
    hold: a second release (``#gallery``) or training images (``#attacker-train``) of a run made
    without an attacker that needed them. ``samples``: {origin data set: the samples it covers}."""
    from types import SimpleNamespace

    by_origin: dict[str, list] = {}
    for r in releases:
        if store.done_images(r.store_dataset, r.method, r.eps, r.seed):
            continue
        role = next(k for k in ROLES if r.store_dataset == store_dataset(ds.name, k))
        by_origin.setdefault(r.origin, []).append(Cell(ds.name, r.method, r.eps, r.seed, role))
    if not by_origin:
        return
    cfg = SimpleNamespace(recognizers=list(recognizers), detectors=[], device="cpu", metrics=["reid"])
    backends = Backends(tuple(recognizers), (), device="cpu", metrics=("reid",))
    worker = ImageWorker(cfg, backends, {})

    class _Bar:
        def update(self, *a):
            pass

    for origin, cells in by_origin.items():
        log(f"note: this run holds no {', '.join(sorted({c.store_dataset for c in cells}))} images of "
            f"{', '.join(sorted({c.method for c in cells}))}: anonymising them as `bench run` would")
        run_local(worker, store, origin, samples[origin], cells, _Bar())
