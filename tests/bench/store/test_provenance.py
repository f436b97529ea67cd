import json
import shutil

import pandas as pd

from bench.store import provenance
from bench.store.results import ResultStore

META = dict(argv=["/x/bench/__main__.py", "run", "--methods", "kpdp", "--eps", "1", "--out", "runs/r"],
            versions={"python": "3.11.7", "torch": "2.14.1", "opendp": None}, seeds=[0, 1],
            backends={"recognizer:dlib": "dlib-20.0.1-resnet-55533b28a958", "metrics:reid": "2"},
            methods={"kpdp@1.0": {"method": "kpdp", "eps": 1.0, "version": "g:0f1a6d00857c", "spec": "kpdp"}},
            metric_versions={"reid": "2"},
            **{"attacker_sanity:lfw": {"min_original_rank1": 0.9, "verdicts": {"ignorant": "ok", "semi-wccn": "ok"}},
               "attacker_fits:lfw": {"kpdp@1.0/0/semi-wccn/dlib": {"map": "wccn", "n_train": 400},
                                     "kpdp@1.0/0/ignorant/dlib": {"source": ""}}},
            datasets=[{"name": "lfw", "root": "data/lfw", "split": "devtest"}],
            limit=300)


def _run(tmp_path, name="run", **meta):
    d = tmp_path / name
    d.mkdir()
    pd.DataFrame([("lfw", "kpdp", "1.0", 0, "reid_rank1", "max", 0.1, 50, 0.05, 0.15, "max", 1)],
                 columns=["dataset", "method", "eps", "seed", "metric", "backend", "value", "n", "ci_low", "ci_high",
                          "attacker", "valid"]).to_csv(d / "metrics.csv", index=False)
    if meta:
        store = ResultStore(d)
        store.set_meta(**meta)
        store.close()
    return d


def test_a_run_store_gives_versions_seeds_command_and_weights(tmp_path):
    r = provenance.read(_run(tmp_path, **META))
    assert r["seeds"] == [0, 1] and r["versions"]["torch"] == "2.14.1" and r["limit"] == 300
    assert r["weights"] == {"recognizer:dlib": "dlib-20.0.1-resnet-55533b28a958"}  # metric code versions apart
    assert r["method_versions"] == {"kpdp": "g:0f1a6d00857c"}
    # the attackers the strongest attack was taken over, and the map each adapting one fitted
    assert r["attackers"] == {"lfw": {"ignorant": "ok", "semi-wccn": "ok"}}
    assert r["attacker_maps"] == {"lfw:kpdp@1.0/0/semi-wccn/dlib": "wccn"}
    assert r["code_version"] is None  # runs before 2026-11-27 recorded no git commit
    assert [provenance.command_text(c["argv"]) for c in r["commands"]] == [
        "python -m bench run --methods kpdp --eps 1 --out runs/r"]  # a store from before the history: its last argv
    page = provenance.to_html([r], None)
    assert "code version (git commit) that measured</th><td>not recorded" in page
    assert "opendp not recorded" in page and "split devtest" in page
    assert "lfw: ignorant ok, semi-wccn ok" in page


def test_a_recorded_commit_is_shown(tmp_path):
    r = provenance.read(_run(tmp_path, **META, git_commit="abc123"))
    assert r["code_version"] == "abc123" and "abc123" in provenance.to_html([r])


def test_a_committed_report_keeps_provenance_matched_by_its_numbers(tmp_path):
    """``bench report runs/x --out rep`` writes rep/provenance.json; the committed copy
    ``rep/run/metrics.csv`` (no store) reads it back, and only for the same numbers."""
    source = _run(tmp_path, "source", **META)
    rep = tmp_path / "rep"
    rep.mkdir()
    provenance.write(rep, [provenance.read(source)])
    (rep / "run").mkdir()
    shutil.copy(source / "metrics.csv", rep / "run" / "metrics.csv")
    r = provenance.read(rep / "run")
    assert r["seeds"] == [0, 1] and r["recorded_from"] == str(source) and r["run"] == str(rep / "run")
    (rep / "run" / "metrics.csv").write_text((rep / "run" / "metrics.csv").read_text().replace("0.1,", "0.2,"))
    other = provenance.read(rep / "run")  # other numbers: the record is not theirs
    assert all(other[k] is None for k in provenance.FIELDS) and other["recorded_from"] is None


def test_write_report_writes_provenance_json_and_the_page_section(tmp_path):
    from bench.report.page import ReportSpec, write_report

    run = _run(tmp_path, **META)
    index = write_report([run], tmp_path / "rep", ReportSpec(), samples=False)
    saved = json.loads((tmp_path / "rep" / "provenance.json").read_text())
    assert saved["runs"][0]["seeds"] == [0, 1] and saved["runs"][0]["metrics_sha256"]
    page = index.read_text()
    assert "id='provenance'" in page and "dlib-20.0.1-resnet-55533b28a958" in page
    assert "python -m bench run --methods kpdp" in page


def test_a_real_run_records_the_commit_that_measured_and_keeps_its_provenance_beside_metrics_csv(tmp_path):
    from bench.cli.main import main as bench_main

    out = tmp_path / "run"
    assert bench_main(["run", "--methods", "blur", "--limit", "2", "--metrics", "detection", "--detectors",
                       "dlib-hog", "--recognizers", "dlib", "--executor", "local", "--quiet", "--out", str(out)]) == 0
    commit = provenance.code_version()
    assert commit, "the tests run from a git checkout"
    saved = json.loads((out / provenance.FILE).read_text())["runs"][0]
    assert saved["code_version"] == commit and saved["metrics_sha256"] == provenance.metrics_digest(out)
    copy = tmp_path / "report" / "run"  # a run committed into reports/ keeps metrics.csv and provenance.json only
    copy.mkdir(parents=True)
    shutil.copy(out / "metrics.csv", copy), shutil.copy(out / provenance.FILE, copy)
    assert provenance.read(copy)["code_version"] == commit


def test_every_command_into_a_run_folder_is_listed_in_order(tmp_path):
    """A folder built by several commands (a grid, more ε later, an attack) names them all, the
    legacy last argv first."""
    d = _run(tmp_path, **META)
    store = ResultStore(d)
    provenance.append_command(store, ["/x/bench/__main__.py", "run", "--methods", "blur", "--out", "runs/r"])
    provenance.append_command(store, ["/x/bench/__main__.py", "attack", "semi-finetune", "--run", "runs/r"])
    store.close()
    r = provenance.read(d)
    assert [provenance.command_text(c["argv"]) for c in r["commands"]] == [
        "python -m bench run --methods kpdp --eps 1 --out runs/r",
        "python -m bench run --methods blur --out runs/r",
        "python -m bench attack semi-finetune --run runs/r"]
    assert r["commands"][0]["at"] is None and r["commands"][2]["at"].endswith("UTC")
    page = provenance.to_html([r])
    assert "1. python -m bench run --methods kpdp" in page and "<br>3. " in page
    # a report's saved record (provenance.json, no store) keeps the whole history
    rep = tmp_path / "rep"
    (rep / "run").mkdir(parents=True)
    provenance.write(rep, [r])
    shutil.copy(d / "metrics.csv", rep / "run" / "metrics.csv")
    assert len(provenance.read(rep / "run")["commands"]) == 3
