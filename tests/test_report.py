import pandas as pd

from bench.report import ReportSpec, table, write_report


def _run(tmp_path):
    rows = []
    for m, eps, reid, fid in [("original", "", 0.96, 0.0), ("blur", "", 0.05, 120.0), ("kpdp", "0.5", 0.1, 30.0),
                              ("kpdp", "1.0", 0.12, 31.0), ("kpdp", "4.0", 0.2, 29.0)]:
        rows += [("lfw", m, eps, 0, "reid_rank1", "max", reid, 10), ("lfw", m, eps, 0, "fid", "inception-2015-12-05",
                                                                     fid, 10),
                 ("lfw", m, eps, 0, "detection_rate", "mtcnn", 0.9, 10)]
    d = tmp_path / "run"
    d.mkdir()
    pd.DataFrame(rows, columns=["dataset", "method", "eps", "seed", "metric", "backend", "value", "n"]).to_csv(
        d / "metrics.csv", index=False)
    return d


def test_report_writes_tables_figures_and_index(tmp_path):
    run = _run(tmp_path)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text('title = "Test table"\ndataset = "lfw"\nmethods = ["original", "blur", "kpdp"]\n'
                         'eps = [0.5, 1]\nmetrics = ["reid_rank1@max", "fid@inception-2015-12-05"]\n')
    spec = ReportSpec.load(spec_file)
    t = table(pd.read_csv(run / "metrics.csv", keep_default_na=False).astype({"eps": str}), spec)
    assert list(t.method) == ["original", "blur", "kpdp", "kpdp"] and list(t.eps) == ["–", "–", "0.5", "1"]
    index = write_report([run], tmp_path / "rep", spec, samples=False)
    for f in ("table.md", "table.csv", "table.tex", "reid_vs_eps.png", "detection_vs_eps.png", "fid_vs_reid.png",
              "privacy_vs_utility.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 0, f
    html = index.read_text()
    assert "reid_vs_eps.png" in html and "Test table" in html
    assert r"\begin{tabular}" in (tmp_path / "rep" / "table.tex").read_text()


def test_report_table_prints_intervals_and_n(tmp_path):
    run = _run(tmp_path)
    df = pd.read_csv(run / "metrics.csv", keep_default_na=False).astype({"eps": str})
    df["ci_low"], df["ci_high"] = df.value * 0.5, df.value * 1.5
    t = table(df, ReportSpec(metrics=[("reid_rank1", "max")]), intervals=True)
    assert t.loc[t.method == "blur", "reid_rank1[max]"].item() == "0.050 [0.025, 0.075]"
    assert (t.n == 10).all()


def test_sample_grid_shows_exactly_the_measured_images(tmp_path):
    """Each tile is re-drawn with the run's per-image seed: its digest equals what the run stored."""
    from bench import RunConfig, evaluate
    from bench.analysis import image_digest
    from bench.report import measured_samples, sample_grid

    out = tmp_path / "run"
    evaluate(RunConfig(methods=["dppix", "mask-noise"], eps=[1.0], limit=4, seeds=[3], out=str(out), quiet=True,
                       metrics=["background"], executor="local"), argv=["test"])
    seen = list(measured_samples(out, n_faces=2))
    assert {c for _, c, *_ in seen} == {("dppix", "1.0"), ("mask-noise", "")} and len(seen) == 4
    for image_id, cell, _, _, res, digest in seen:
        assert digest is not None and image_digest(res) == digest, (image_id, cell)
    assert sample_grid([out], ReportSpec(), tmp_path, n_faces=2).is_file()


def test_tables_show_the_strongest_valid_attack_and_name_its_attacker():
    from bench.export import strongest_attacker, wide_table

    rows = []
    for attacker, v, valid in (("ignorant", 0.10, 1), ("lazy", 0.30, 1), ("broken", 0.90, 0), ("max", 0.30, 1)):
        rows.append(("lfw", "kpdp", "1.0", 0, "reid_rank1", "max", v, 50, v - 0.05, v + 0.05, attacker, valid))
    rows.append(("lfw", "kpdp", "1.0", 0, "fid", "inception-2015-12-05", 30.0, 50, 28.0, 32.0, "", 1))
    df = pd.DataFrame(rows, columns=["dataset", "method", "eps", "seed", "metric", "backend", "value", "n",
                                     "ci_low", "ci_high", "attacker", "valid"])
    assert strongest_attacker(df).to_dict() == {("lfw", "kpdp", "1.0"): "lazy"}
    t = wide_table(df)
    assert t["reid_rank1[max]"].item() == 0.30 and t["attacker"].item() == "lazy"  # not averaged over attackers
    assert list(t.columns).index("attacker") == list(t.columns).index("reid_rank1[max]") + 1
