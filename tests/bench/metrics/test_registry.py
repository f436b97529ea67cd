"""The metric registry: one declaration per metric, read by aggregate, export, report and check."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bench.metrics import registry
from bench.metrics.intervals import bootstrap_mean, percentile_interval
from bench.metrics.registry import paired_means

DOC_NAMES = ["reid_rank1", "reid_rank1_same", "reid_tar_far1e-3", "intrusion_rate", "detection_rate", "fid", "kid",
             "landmark_nme", "landmark_fail_rate", "landmark_nme_target", "bg_psnr", "bg_ssim", "sec_per_image",
             "skipped"]


def test_every_public_name_is_declared_once():
    specs = registry.all_metrics()
    for name in DOC_NAMES:
        assert name in specs, name
    assert specs["reid_rank1"].privacy and specs["reid_rank1"].worse == "up"
    assert specs["detection_rate"].worse == "down" and specs["sec_per_image"].worse is None


def test_unknown_group_lists_the_known_ones():
    with pytest.raises(KeyError, match="valid: reid, detection, fid, landmarks, background"):
        registry.get_group("nope")
    with pytest.raises(KeyError, match="known: reid_rank1, .*skipped"):
        registry.metric("nope")


def test_a_new_metric_is_one_module(monkeypatch):
    """Register a group (what a plugin module does): export, report, check and the harness see it."""
    from bench.report.check import rules
    from bench.report.export import summary_columns

    @registry.register_group
    class Sharpness(registry.MetricGroup):
        name = "sharpness"
        metrics = (registry.MetricSpec("face_sharpness", "sharpness", "", True, "sharpness", 0.1),)

        def anonymised(self, ctx):
            return {"sharp": float(np.std(ctx.image))}, {}

        def aggregate(self, cell):
            v = [r["sharp"] for r in cell.probe_records()]
            return [registry.Row("face_sharpness", "", float(np.mean(v)), len(v))]

    try:
        assert "sharpness" in registry.selectable_groups()
        assert rules()["face_sharpness"] == ("down", 0.1)
        assert registry.metric("face_sharpness").worse == "down"
        df = pd.DataFrame({"metric": ["face_sharpness", "reid_rank1"], "backend": ["", "max"]})
        assert ("face_sharpness", "") in summary_columns(df)
    finally:
        registry.GROUPS.remove("sharpness")


def test_metrics_decide_which_backends_load():
    from bench.measure.analysis import Backends

    b = Backends(("dlib",), ("mtcnn", "dlib-hog"), metrics=("reid",))
    assert set(b.recs) == {"dlib"} and b.dets == {} and b.lm is None and not b.inception
    assert [g.name for g in b.groups] == ["reid", "cost"]
    b = Backends(("dlib",), ("mtcnn",), metrics=("background",))
    assert b.recs == {} and b.dets == {} and b.lm is None


def test_cache_keys_carry_the_measuring_codes_version():
    from bench.measure.analysis import Backends

    b = Backends(("dlib",), (), metrics=("reid",))
    g = b.groups[0]
    before = b.cache_version(g)
    g.version = "999"  # a bumped group: its records are keyed anew
    try:
        assert b.cache_version(g) != before and "v999" in b.cache_version(g)
    finally:
        del g.version


def test_a_groups_cache_key_ignores_backends_it_does_not_use():
    """Selecting more groups (more backends loaded) must not make the reid group recompute."""
    from bench.measure.analysis import Backends

    alone = Backends(("dlib",), ("dlib-hog",), metrics=("reid",))
    many = Backends(("dlib",), ("dlib-hog",), metrics=("reid", "detection", "landmarks"))
    reid = lambda b: next(g for g in b.groups if g.name == "reid")  # noqa: E731
    assert alone.cache_version(reid(alone)) == many.cache_version(reid(many))
    assert "mtcnn" in alone.cache_version(reid(alone))  # FaceNet's crop detector, whatever --detectors says
    det = next(g for g in many.groups if g.name == "detection")
    assert "detector:dlib-hog" in many.cache_version(det) and "recognizer:" not in many.cache_version(det)


def test_mtcnn_stays_off_a_gpu_that_many_workers_share():
    """With more pool workers than MTCNN_GPU_MAX_WORKERS on one GPU, the measured MTCNN and the
    finder's MTCNN run on the CPU (on this GPU-less machine a CUDA MTCNN could not even be built)."""
    from types import SimpleNamespace

    from bench.measure.analysis import MTCNN_GPU_MAX_WORKERS, Backends, detector_device

    cfg = SimpleNamespace(recognizers=[], detectors=["mtcnn"], device="cuda", metrics=["detection"],
                          workers=16, executor="processes")  # the measured case
    b = Backends.for_config(cfg)
    finder_mtcnn = next(d for d in b.finder._detectors if d.name == "mtcnn")
    assert str(b.dets["mtcnn"].model.device) == "cpu" and str(finder_mtcnn.model.device) == "cpu"
    assert detector_device("mtcnn", "cuda", MTCNN_GPU_MAX_WORKERS) == "cuda"  # few workers: the GPU is faster
    assert detector_device("dlib-hog", "cuda", 16) == "cuda"  # only MTCNN is moved (dlib ignores the device)
    # `local` runs one process whatever --workers says
    assert Backends.for_config(SimpleNamespace(**{**vars(cfg), "executor": "local", "device": "cpu"})).workers == 1


def _cell(values_by_image, identities):
    """What paired_means reads of a cell: its probes (id, record, features) and their identities."""
    ids = list(values_by_image)
    return SimpleNamespace(probes=[(i, {}, {}) for i in ids], probe_identities=np.asarray(identities))


def test_paired_means_support_a_difference_that_the_separate_intervals_leave_open():
    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(50), 4)
    base = np.repeat(rng.random(50), 4) + rng.normal(0, 0.05, 200)  # people differ much more than images
    b = base
    a = base + 0.03 + rng.normal(0, 0.02, 200)  # A a little higher on every image
    names = [f"img{k}" for k in range(200)]
    cell_a, cell_b = _cell(dict(zip(names, a)), people), _cell(dict(zip(names, b)), people)
    everyone = list(range(200))
    out = paired_means(cell_a, cell_b, {("m", ""): (everyone, a)}, {("m", ""): (everyone, b)}, 2000, 1)
    p = out[("m", "")]
    assert p.a == pytest.approx(a.mean()) and p.n == 200 and p.people == 50
    diff = percentile_interval(p.replicates[:, 0] - p.replicates[:, 1])
    own_a, own_b = bootstrap_mean(a, people, seed=1), bootstrap_mean(b, people, seed=2)
    assert diff[0] > 0 and own_a[0] < own_b[1]  # paired: supported; separately: overlapping


def test_paired_means_use_only_the_images_both_cells_measured():
    people = ["p", "p", "q", "q", "r"]
    names = ["a", "b", "c", "d", "e"]
    cell_a, cell_b = _cell(dict.fromkeys(names), people), _cell(dict.fromkeys(names), people)
    va, vb = np.array([1.0, 1.0, 0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0, 0.0])
    # B has no value for image "a" (position 0): it failed there
    out = paired_means(cell_a, cell_b, {("m", ""): ([0, 1, 2, 3, 4], va)}, {("m", ""): ([1, 2, 3, 4], vb)}, 200, 0)
    p = out[("m", "")]
    assert (p.n, p.people) == (4, 3) and p.a == pytest.approx(0.5) and p.b == pytest.approx(0.5)
    assert paired_means(cell_a, cell_b, {("m", ""): ([0], va[:1])}, {("m", ""): ([1], vb[:1])}, 200, 0) == {}
