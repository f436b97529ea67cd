"""The results tables of the README, the report pages and docs/ are generated from the committed reports
(bench/report/readme.py)."""
import os
from pathlib import Path

import pytest

from bench.report import readme
from tests.conftest import ROOT


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


def test_a_block_names_a_method_by_its_label(tmp_path):
    spec = _spec(tmp_path, '[method_labels]\n"kpdp" = "kpdp v2"\n')
    md = tmp_path / "README.md"
    md.write_text(f"<!-- results-table: {spec.name} -->\n<!-- /results-table -->\n")
    assert readme.main([str(md)]) == 0
    text = md.read_text()
    assert "| kpdp v2 | 1 | 0.064 [0.040, 0.149] | lazy |" in text and "| kpdp | 1 |" not in text


def test_a_block_whose_runs_are_missing_fails_loudly(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('runs = ["no/such/run"]\n')
    md = tmp_path / "README.md"
    md.write_text(f"<!-- results-table: {spec.name} -->\n<!-- /results-table -->\n")
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        readme.main([str(md)])


def test_a_page_below_the_root_names_its_spec_relative_to_itself_and_runs_from_the_root(tmp_path):
    """``reports/x/README.md`` names ``../spec.toml``; the spec's runs stay relative to the project root."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    run = tmp_path / "reports" / "lfw-kpdp-v2" / "run"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text((ROOT / "reports" / "lfw-kpdp-v2" / "run" / "metrics.csv").read_text())
    (tmp_path / "reports" / "spec.toml").write_text(
        'runs = ["reports/lfw-kpdp-v2/run"]\ndataset = "lfw"\nmethods = ["kpdp"]\neps = [1]\n'
        'metrics = ["reid_rank1@max"]\n')
    page = tmp_path / "reports" / "lfw-kpdp-v2" / "README.md"
    page.write_text("<!-- results-table: ../spec.toml -->\n<!-- /results-table -->\n")
    (tmp_path / "README.md").write_text("no tables here\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "plain.md").write_text("no tables here either\n")
    assert readme.project_markdowns(tmp_path) == [tmp_path / "README.md", page]
    assert readme.main([str(page)]) == 0
    assert "| kpdp | 1 | 0.064 [0.040, 0.149] | lazy |" in page.read_text()
    assert readme.main([str(page), "--check"]) == 0


def _markdowns_with_blocks(root):
    """Every Markdown file of the project that holds a results block, wherever it is."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.endswith(".egg-info")
                       and d not in ("runs", "node_modules", "__pycache__")]
        found += [Path(dirpath) / f for f in filenames if f.endswith(".md") and readme.holds_block(Path(dirpath) / f)]
    return sorted(found)


def test_the_project_readme_matches_its_committed_reports():
    """Every results block of the project (README.md, the report pages, docs/) matches the committed runs,
    and ``python -m bench.report.readme`` without arguments finds every file that holds one."""
    files = readme.project_markdowns(ROOT)
    assert ROOT / "README.md" in files and readme.holds_block(ROOT / "README.md")
    assert set(_markdowns_with_blocks(ROOT)) <= set(files)
    for md in files:
        rel = md.relative_to(ROOT)
        assert readme.main([str(md), "--check"]) == 0, f"run: python -m bench.report.readme {rel}"
