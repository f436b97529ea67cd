"""scripts/gpu_train_v3.sh, the one command a lent GPU runs, run here on the CPU on 16 sample crops."""
import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors import safe_open

from tests.conftest import ROOT


def test_the_gpu_script_trains_from_the_committed_networks_and_returns_both(tmp_path, sample_crops):
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DEVICE": "cpu", "STEPS": "2", "BATCH": "2", "DATA": str(sample_crops), "BALANCE": "",
           "WORK": str(tmp_path / "work"), "OUT": str(out), "SKIP_INSTALL": "1"}
    r = subprocess.run(["bash", "scripts/gpu_train_v3.sh", "1", "--d-warmup", "1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "generator initialised from kpdp/assets/generator_kpdp_v3.safetensors" in r.stdout
    assert "discriminator initialised from kpdp/assets/discriminator_kpdp_v3.safetensors" in r.stdout
    for net in ("generator", "discriminator"):
        weights = out / f"{net}_kpdp_v3.safetensors"
        meta = json.loads(weights.with_suffix(".json").read_text())
        assert meta["condition"] == "sparse7+dense68" and meta["step"] == "2" and "device cpu" in meta["train_command"]
        with safe_open(str(weights), framework="pt") as f:
            assert f.metadata()["condition"] == "sparse7+dense68" and len(list(f.keys())) > 20
    assert (out / "losses.csv").read_text().startswith("step,d_loss") and (out / "samples_last.png").exists()
    assert (tmp_path / "work" / "last.pt").exists()  # the checkpoint went to WORK, not the repository's .gpu/v3
