"""The README's results tables are generated from the committed reports (bench/readme.py)."""
from pathlib import Path

import pytest

from bench import readme

ROOT = Path(__file__).resolve().parents[1]


def _spec(tmp_path, labels=""):
    run = ROOT / "reports" / "lfw-kpdp-v2" / "run"
    spec = tmp_path / "spec.toml"
    spec.write_text(f'runs = ["{run}"]\ndataset = "lfw"\nmethods = ["deepprivacy", "kpdp"]\neps = [1, inf]\n'
                    f'metrics = ["reid_rank1@max", "fid@inception-2015-12-05"]\n{labels}')
    return spec


def test_a_block_is_filled_from_its_runs_and_the_rest_of_the_text_is_kept(tmp_path):
    spec = _spec(tmp_path, '[labels]\n"reid_rank1[max]" = "strongest rank-1"\n')
    md = tmp_path / "README.md"
    md.write_text(f"intro\n<!-- results-table: {spec.name} -->\nstale 0.999\n<!-- /results-table -->\noutro\n")
    assert readme.main([str(md), "--check"]) == 1
    assert readme.main([str(md)]) == 0
    text = md.read_text()
    assert text.startswith("intro\n") and text.endswith("<!-- /results-table -->\noutro\n")
    assert "stale" not in text and "| method | ε | strongest rank-1 | attacker |" in text
    # kpdp v2 at ε = 1 on those 300 images, with its interval, as committed
    assert "| kpdp | 1 | 0.064 [0.040, 0.149] | lazy |" in text
    assert readme.main([str(md), "--check"]) == 0


def test_a_block_whose_runs_are_missing_fails_loudly(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('runs = ["no/such/run"]\n')
    md = tmp_path / "README.md"
    md.write_text(f"<!-- results-table: {spec.name} -->\n<!-- /results-table -->\n")
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        readme.main([str(md)])


def test_the_project_readme_matches_its_committed_reports():
    assert readme.main([str(ROOT / "README.md"), "--check"]) == 0, "run: python -m bench.readme README.md"
