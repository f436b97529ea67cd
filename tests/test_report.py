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
    for f in ("table.md", "table.csv", "table.tex", "reid_vs_eps.png", "detection_vs_eps.png", "fid_vs_reid.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 0, f
    html = index.read_text()
    assert "reid_vs_eps.png" in html and "Test table" in html
    assert r"\begin{tabular}" in (tmp_path / "rep" / "table.tex").read_text()
