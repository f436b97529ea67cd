"""scripts/hands_cost.py on the committed LFW sample: it finds the photo with a hand over the face and
measures both variants on it."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def test_hands_cost_measures_the_photos_with_a_hand_over_the_face(tmp_path):
    r = subprocess.run([sys.executable, "scripts/hands_cost.py", "--dataset", "lfw-sample", "--split", "devtest",
                        "--limit", "40", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["photos"] == 40
    rows = (tmp_path / "hands.csv").read_text().splitlines()
    assert any(line.startswith("Celine_Dion/Celine_Dion_0003,") for line in rows[1:]), rows
    assert summary["photos_with_a_hand_over_the_drawn_face"] == len(rows) - 1
    assert 0 < summary["same_photo"]["paint"] < 1 and 0 < summary["same_photo"]["keep"] < 1
    assert (tmp_path / "faces-hands.jpg").stat().st_size > 10_000
