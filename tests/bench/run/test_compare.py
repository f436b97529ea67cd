import numpy as np
import pandas as pd
import pytest

from bench.run.compare import paired_difference
from bench.metrics.intervals import bootstrap_max


def _cells(seed=0, people=60, per=3, extra=0.08):
    """B's hits depend on the person (some are easy to find); A finds what B does and a few more."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(people), per)
    b = rng.random(people * per) < np.repeat(rng.random(people), per) * 0.5
    return groups, b | (rng.random(people * per) < extra), b


def test_pairing_supports_a_difference_that_the_separate_intervals_do_not():
    groups, a, b = _cells()
    d = paired_difference({"lazy/dlib": a}, {"lazy/dlib": b}, groups)
    assert d.difference == pytest.approx(a.mean() - b.mean()) and d.difference > 0
    assert d.apart and d.interval[0] > 0
    # each cell's own interval is the one its row reports, and they overlap
    assert d.a_interval == pytest.approx(bootstrap_max(a[None].astype(float), groups), abs=0.02)
    assert d.a_interval[0] < d.b_interval[1]
    # people drawn independently for each cell (unpaired): the difference is no longer supported
    ra = bootstrap_max(a[None].astype(float), groups, seed=1)
    rb = bootstrap_max(b[None].astype(float), groups, seed=2)
    assert ra[0] - rb[1] < 0 < d.interval[0]


def test_identical_cells_differ_by_nothing_and_the_strongest_attack_is_chosen_per_cell():
    groups, a, b = _cells(seed=3)
    same = paired_difference({"x": b}, {"x": b.copy()}, groups)
    assert same.difference == 0 and same.interval == (0.0, 0.0) and not same.apart
    weak = np.zeros_like(a)
    d = paired_difference({"ignorant/dlib": weak, "lazy/dlib": a}, {"lazy/dlib": b}, groups)
    assert d.a_attack == "lazy/dlib" and d.a == pytest.approx(a.mean())


def test_outcomes_of_other_probes_are_refused():
    groups, a, b = _cells()
    with pytest.raises(ValueError, match="same 180 probes"):
        paired_difference({"x": a[:-1]}, {"x": b}, groups)
    with pytest.raises(ValueError, match="at least one valid attack"):
        paired_difference({}, {"x": b}, groups)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from bench.cli.main import main

    out = tmp_path_factory.mktemp("compare") / "run"
    assert main(["run", "--methods", "blur,mask", "--limit", "24", "--recognizers", "dlib", "--detectors", "mtcnn",
                 "--metrics", "reid,diversity,expression", "--executor", "local", "--out", str(out), "--quiet"]) == 0
    return out


def test_on_a_run_each_side_is_the_cells_own_headline(tiny_run, capsys):
    from bench.cli.main import main
    from bench.run.compare import compare

    df = pd.read_csv(tiny_run / "metrics.csv")
    head = df[(df.metric == "reid_rank1") & (df.backend == "max") & (df.attacker == "max")].set_index("method")
    d = compare(tiny_run, "mask", "original")
    assert d.a == pytest.approx(head.loc["mask", "value"]) and d.b == pytest.approx(head.loc["original", "value"])
    assert d.n_probes == head.loc["mask", "n"] and d.apart and d.difference < 0
    per = df[(df.metric == "reid_rank1") & (df.method == "mask") & (df.backend == "dlib")].set_index("attacker")
    assert per.loc[d.a_attack.split("/")[0], "value"] == pytest.approx(d.a)  # the attack the headline names
    assert main(["compare", str(tiny_run), "--methods", "mask,blur"]) == 0
    assert "A - B" in capsys.readouterr().out
    assert main(["compare", str(tiny_run), "--methods", "pixelate,blur"]) == 2
    assert "its cells: blur, mask, original" in capsys.readouterr().err
    assert main(["compare", str(tiny_run), "--methods", "blur,mask", "--metric", "reid_tar_far"]) == 2


def test_a_utility_metric_pairs_on_the_images_both_cells_measured(tiny_run, capsys):
    from bench.cli.main import main
    from bench.run.compare import compare_utility

    df = pd.read_csv(tiny_run / "metrics.csv")

    def row(metric, method, backend):
        return df[(df.metric == metric) & (df.method == method) & (df.backend == backend)].iloc[0]

    (expr,) = compare_utility(tiny_run, "mask", "blur", metric="expression_agreement")
    for value, method in ((expr.a, "mask"), (expr.b, "blur")):
        assert value == pytest.approx(row("expression_agreement", method, expr.backend).value)
    assert expr.n_probes == row("expression_agreement", "mask", expr.backend).n
    div = {d.backend: d for d in compare_utility(tiny_run, "mask", "blur", metric="identity_diversity")}
    assert div["dlib"].a == pytest.approx(row("identity_diversity", "mask", "dlib").value)
    assert div["dlib"].difference == pytest.approx(div["dlib"].a - div["dlib"].b)
    lo, hi = div["dlib"].interval
    assert lo <= div["dlib"].difference <= hi
    # a cell against itself: every replicate draws the same people for both, so nothing differs
    for d in compare_utility(tiny_run, "blur", "blur", metric="identity_diversity"):
        assert d.difference == 0 and d.interval == (0.0, 0.0) and not d.apart
    every = compare_utility(tiny_run, "mask", "blur", metric="all")  # what the run measured and pairs, in order
    assert [d.metric for d in every] == ["expression_agreement", "expression_tv", "identity_diversity", "sec_per_image"]
    assert every[0].a == expr.a and every[2].a == div["dlib"].a
    with pytest.raises(ValueError, match="privacy metric; the ones that pair"):
        compare_utility(tiny_run, "mask", "blur", metric="reid_tar_far1e-3")
    with pytest.raises(ValueError, match="statistic of two image sets"):
        compare_utility(tiny_run, "mask", "blur", metric="fid")
    assert main(["compare", str(tiny_run), "--methods", "mask,blur", "--metric", "identity_diversity"]) == 0
    assert "identity_diversity[dlib]: A " in capsys.readouterr().out
    assert main(["compare", str(tiny_run), "--methods", "mask,blur", "--metric", "all"]) == 0
    assert "identity_diversity[dlib]: A " in capsys.readouterr().out
    assert main(["compare", str(tiny_run), "--methods", "mask,blur", "--metric", "expresion_agreement"]) == 2
    assert "known: " in capsys.readouterr().err
