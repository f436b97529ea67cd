"""The end-of-run table (bench/report/export.py): the headline of each row, in 120 columns, read off the
long results exactly."""

import pandas as pd

from bench.report.export import headline_table, text_table
from tests.conftest import ROOT

RUN = ROOT / "reports" / "lfw-devtest-full" / "run" / "metrics.csv"


def _df():
    return pd.read_csv(RUN, keep_default_na=False)


def test_the_headline_table_has_the_headline_columns_and_fits_a_terminal():
    t = headline_table(_df(), detector="mtcnn")
    assert list(t.columns) == ["strongest rank-1", "attacker", "detection", "FID", "expression", "attributes", "n"]
    text = text_table(t)
    assert max(len(line) for line in text.splitlines()) <= 120, text
    assert text.splitlines()[0].split()[:3] == ["method", "ε", "strongest"]


def test_each_cell_is_the_long_results_value():
    df = _df()
    t = headline_table(df, detector="mtcnn")
    row = t.loc[("lfw", "kpdp", "1.0")]  # eps as metrics.csv spells it
    long = df[(df.method == "kpdp") & (df.metric == "reid_rank1") & (df.backend == "max") & (df.attacker == "max")]
    (value, low, high, n), = long[["value", "ci_low", "ci_high", "n"]].astype(float).values
    assert row["strongest rank-1"] == f"{value:.3f} [{low:.3f}, {high:.3f}]" and row["n"] == int(n)
    mtcnn = df[(df.method == "kpdp") & (df.metric == "detection_rate") & (df.backend == "mtcnn")]
    assert row["detection"].startswith(f"{float(mtcnn.value.iloc[0]):.3f} [")
    fid = df[(df.method == "kpdp") & (df.metric == "fid")]
    assert abs(row["FID"] - float(fid.value.iloc[0])) < 1e-9
    # the attacker named is the one whose rank-1 is the strongest valid attack
    attacks = df[(df.method == "kpdp") & (df.metric == "reid_rank1") & (df.backend == "max")
                 & ~df.attacker.isin(["", "max"]) & (df.valid.astype(str) != "0")]
    assert row["attacker"] == attacks.loc[attacks.value.astype(float).idxmax(), "attacker"]


def test_a_run_without_utility_metrics_shows_only_what_it_measured():
    df = _df()
    t = headline_table(df[df.metric.str.startswith("reid")])
    assert list(t.columns) == ["strongest rank-1", "attacker", "n"]


def test_long_method_variants_get_footnotes_so_the_table_still_fits():
    df = _df()
    variant = "kpdp[blend=poisson,generator=v3,weights=/a/long/path/to/some/generator.safetensors]"
    df.loc[df.method == "kpdp", "method"] = variant
    text = text_table(headline_table(df, detector="mtcnn"))
    assert max(len(line) for line in text.splitlines()) <= 120, text
    assert "kpdp[1] " in text and text.rstrip().endswith(f"[1] = {variant}")
