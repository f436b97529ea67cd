"""The semi-finetune attacker: its margin loss learns, its checkpoints are cached (safetensors) and
reused, and on a tiny real run it regenerates the run's very images, trains, and appends rows that
go through the same outcome code, strongest-attack row and sanity check as every attacker."""
import functools
import json
import shutil
import sqlite3

import numpy as np
import pandas as pd
import pytest
import torch

from bench.attackers import available, default_attackers, get_attacker
from bench.attackers import semi_finetune as sf
from bench.run import finetune as finetune_run


@pytest.fixture(scope="module")
def random_net():
    """The torch FaceNet's architecture with random weights: enough to test training and
    checkpoints without converting the real weights."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    return InceptionResnetV1(pretrained=None, classify=False).eval()


def _synthetic(n_people=6, per=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_people, 1792, 3, 3, generator=g)
    feats = centres.repeat_interleave(per, 0) + 0.5 * torch.randn(n_people * per, 1792, 3, 3, generator=g)
    return torch.relu(feats), np.repeat(np.arange(n_people), per).astype(str)


def test_registered_not_default_and_refuses_to_run_on_embeddings():
    assert "semi-finetune" in available() and "semi-finetune" not in default_attackers()
    cls = get_attacker("semi-finetune")
    assert cls.trains and cls.pixels and cls.gallery == "anonymised"
    with pytest.raises(RuntimeError, match="bench attack semi-finetune"):
        cls(0).fit(None)


def test_margin_loss_training_reduces_the_loss(random_net):
    feats, labels = _synthetic()
    head = sf.make_head(random_net, blocks=1)
    frozen = {k: v.clone() for k, v in random_net.block8.state_dict().items()}
    cfg = sf.FinetuneConfig(steps=25, batch=16, lr=1e-3, blocks=1)
    out = sf.train_head(head, feats, labels, cfg, seed=0)
    assert out["steps"] == 25 and len(out["losses"]) == 25
    assert out["loss_after"] < 0.5 * out["loss_before"], out
    assert np.mean(out["losses"][-5:]) < np.mean(out["losses"][:5])
    # the head is a copy: the network it came from is untouched
    assert all(torch.equal(v, random_net.block8.state_dict()[k]) for k, v in frozen.items())
    # seeded: the same seed gives the same losses
    again = sf.train_head(sf.make_head(random_net, blocks=1), feats, labels, cfg, seed=0)
    assert np.allclose(again["losses"], out["losses"])


def test_a_checkpoint_round_trips_and_is_reused_not_retrained(random_net, tmp_path, monkeypatch):
    from safetensors import safe_open

    monkeypatch.setenv("KPDP_BENCH_CACHE", str(tmp_path))
    feats, labels = _synthetic()
    cfg = sf.FinetuneConfig(steps=5, batch=16, blocks=1)
    calls = []

    def prepare():
        calls.append(1)
        return torch.cat([feats, feats]), np.concatenate([labels, labels]), len(labels)

    key = sf.checkpoint_key("kpdp", 1.0, 0, [(f"img{i}", f"d{i}") for i in range(len(labels))], cfg)
    model = sf.Model(cfg, net=random_net)
    head1, cost1 = model.trained_head(key, prepare, seed=0)
    assert not cost1["cached"] and cost1["steps"] == 5 and cost1["images"] == len(labels) and len(calls) == 1
    path = sf.checkpoint_path(key)
    assert path.is_file() and path.parent == tmp_path / "weights" / "semi-finetune"
    with safe_open(str(path), framework="pt") as f:  # safetensors: tensors and JSON, nothing to unpickle
        assert json.loads(f.metadata()["key"]) == json.loads(json.dumps(key, sort_keys=True))

    def must_not_train():
        raise AssertionError("retrained although the checkpoint is cached")

    head2, cost2 = sf.Model(cfg, net=random_net).trained_head(key, must_not_train, seed=0)
    assert cost2["cached"] and cost2["train_seconds"] == cost1["train_seconds"]
    s1, s2 = head1.state_dict(), head2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not torch.equal(s2["last_linear.weight"], random_net.last_linear.weight)  # it did learn
    # other training images, another seed or other hyper-parameters: another checkpoint
    other = sf.checkpoint_key("kpdp", 1.0, 0, [("img0", "changed")], cfg)
    assert sf.checkpoint_path(other) != path
    assert sf.checkpoint_path(sf.checkpoint_key("kpdp", 1.0, 1, [], cfg)) != sf.checkpoint_path(
        sf.checkpoint_key("kpdp", 1.0, 0, [], cfg))
    assert sf.checkpoint_path(sf.checkpoint_key("kpdp", 1.0, 0, [], sf.FinetuneConfig(steps=6))) != \
        sf.checkpoint_path(sf.checkpoint_key("kpdp", 1.0, 0, [], sf.FinetuneConfig(steps=5)))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`bench run --attackers ignorant,semi-finetune` on 24 embedded sample images (10 people): blur (the
    second release is the first) and dppix (a seeded method: the run holds no second release,
    so the attacker has it made as `bench run` would)."""
    from bench.cli.main import main

    out = tmp_path_factory.mktemp("sf") / "run"
    small = functools.partial(sf.FinetuneConfig, steps=4, batch=16, blocks=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sf, "FinetuneConfig", small)
        rc = main(["run", "--methods", "blur,dppix", "--eps", "1", "--limit", "24", "--recognizers", "facenet-casia",
                   "--detectors", "mtcnn", "--metrics", "reid", "--attackers", "ignorant,semi-finetune",
                   "--executor", "local", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def _meta(run):
    db = sqlite3.connect(run / "results.sqlite")
    try:
        return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM run")}
    finally:
        db.close()


def test_on_a_tiny_run_it_appends_rows_checked_like_every_attacker(tiny_run):
    csv = pd.read_csv(tiny_run / "metrics.csv", keep_default_na=False)
    ft = csv[csv.attacker == "semi-finetune"]
    assert set(ft.method) == {"original", "blur", "dppix"}
    assert set(ft.backend) == {sf.RECOGNIZER, "max"}
    assert set(ft.metric) == set(sf.METRICS)
    rank1 = csv[(csv.metric == "reid_rank1") & (csv.backend == "max")].set_index(["method", "attacker"])
    for m in ("original", "blur", "dppix"):
        valid = [rank1.loc[(m, a), "value"] for a in ("ignorant", "semi-finetune") if rank1.loc[(m, a), "valid"]]
        assert rank1.loc[(m, "max"), "value"] == pytest.approx(max(valid))  # the strongest attack counts it
    assert (ft.n[ft.metric == "reid_rank1"] == rank1.loc[("blur", "ignorant"), "n"]).any()
    meta = _meta(tiny_run)
    # the same sanity check as every attacker: a verdict recorded, rows valid unless it failed
    verdict = meta["attacker_sanity:lfw-sample"]["verdicts"]["semi-finetune"]
    assert (verdict == "ok") == bool(ft.valid.all())
    info = meta["semi-finetune:lfw-sample"]
    # trained on the sample's own devtrain people: one network of 4 steps (identity folds of the
    # evaluation images, before the sample shipped them, made one network per fold)
    assert info["blur@/0"]["source"].startswith("the embedded sample's LFW devtrain") and info["blur@/0"]["steps"] == 4
    # the images were the run's own: every regenerated digest matched, and the gallery of the
    # seeded method was anonymised with its own seeds (stored under #gallery, as bench run does)
    assert info["regeneration"]["digests_checked"] > 0 and info["regeneration"]["digests_mismatched"] == 0
    db = sqlite3.connect(tiny_run / "results.sqlite")
    assert db.execute("SELECT COUNT(*) FROM images WHERE dataset='lfw-sample#gallery' AND method='dppix'"
                      ).fetchone()[0] > 0
    db.close()


def test_a_second_call_reuses_checkpoints_and_embeddings(tiny_run):
    before = pd.read_csv(tiny_run / "metrics.csv", keep_default_na=False)
    logged = []
    finetune_run.attack_run(tiny_run, methods=["blur"], cfg=sf.FinetuneConfig(steps=4, batch=16, blocks=1),
                  log=logged.append)
    info = _meta(tiny_run)["semi-finetune:lfw-sample"]
    assert info["blur@/0"]["cached"] and info["blur@/0"]["regenerated_images"] == 0
    assert info["regeneration"]["images"] == 0  # nothing anonymised again
    assert any("checkpoint reused" in m for m in logged)
    after = pd.read_csv(tiny_run / "metrics.csv", keep_default_na=False)
    key = ["method", "eps", "seed", "metric", "backend", "attacker"]
    merged = before.merge(after, on=key, suffixes=("", "_2"))
    assert len(merged) == len(before) == len(after)
    assert np.allclose(pd.to_numeric(merged.value), pd.to_numeric(merged.value_2), equal_nan=True)


def test_a_run_without_the_attacker_names_the_rows_it_replaces(tiny_run, tmp_path, capsys):
    """A later `bench run` that recomputes a cell (here forced by --reaggregate; also more images,
    other attackers, other code) does so with its own attackers; the fine-tuned rows it drops are
    named, with the command that restores them, not lost in silence."""
    from bench.cli.main import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    capsys.readouterr()
    assert main(["run", "--methods", "blur", "--eps", "1", "--limit", "24", "--recognizers", "facenet-casia",
                 "--detectors", "mtcnn", "--metrics", "reid", "--attackers", "ignorant", "--executor", "local",
                 "--out", str(run), "--quiet", "--reaggregate"]) == 0
    printed = capsys.readouterr()
    warned = [line for line in (printed.out + printed.err).splitlines() if line.startswith("warning:")]
    assert any("lfw-sample blur seed=0" in w and "semi-finetune" in w
               and f"bench attack semi-finetune --run {run} --methods blur" in w for w in warned), warned
    csv = pd.read_csv(run / "metrics.csv", keep_default_na=False)
    assert "semi-finetune" not in set(csv[csv.method == "blur"].attacker)
    assert not any("dppix" in w for w in warned)  # a cell this run did not aggregate keeps its rows
