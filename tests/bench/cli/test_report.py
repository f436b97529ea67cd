"""``bench report`` from the command line: labels given with ``--label`` name methods in the
table, and a bad label is refused with a message, not a traceback."""
import pandas as pd
import pytest

from bench.cli.main import main


def _run(tmp_path):
    cells = [("original", "", 0.96), ("kpdp[generator=v3,weights=/w/g2452.safetensors]", "1.0", 0.2), ("kpdp", "1.0", 0.1)]
    rows = [("lfw", m, e, 0, "reid_rank1", "max", v, 10) for m, e, v in cells]
    d = tmp_path / "run"
    d.mkdir()
    pd.DataFrame(rows, columns=["dataset", "method", "eps", "seed", "metric", "backend", "value", "n"]).to_csv(
        d / "metrics.csv", index=False)
    return d


def test_label_option_names_a_variant(tmp_path, capsys):
    run = _run(tmp_path)
    rc = main(["report", str(run), "--out", str(tmp_path / "rep"), "--no-samples",
               "--label", "kpdp[generator=v3,weights=/w/g2452.safetensors]=v3 step 2452"])
    assert rc == 0
    md = (tmp_path / "rep" / "table.md").read_text()
    assert "| v3 step 2452 |" in md and "g2452" not in md


@pytest.mark.parametrize("label, message", [("kpdp v3", "SPEC=NAME"),
                                            ("kpdp[generator=v3,weights=/w/g2452.safetensors]=kpdp", "merge rows")])
def test_a_bad_label_is_refused_with_a_message(tmp_path, capsys, label, message):
    run = _run(tmp_path)
    rc = main(["report", str(run), "--out", str(tmp_path / "rep"), "--no-samples", "--label", label])
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "rep" / "table.md").exists()
