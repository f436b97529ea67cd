"""``python -m bench.cli.attribute_probes``: runs as a module without Python's warning that it was
imported before (the reason it is not ``python -m bench.metrics.attribute_probes`` any more), and a
missing CelebA folder is a usage error, not a traceback."""
import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "bench.cli.attribute_probes", *args],
                          capture_output=True, text=True, timeout=300)


def test_help_runs_without_a_runtime_warning():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    assert "--celeba" in done.stdout and "RuntimeWarning" not in done.stderr


def test_a_missing_celeba_folder_is_a_usage_error(tmp_path):
    done = _run("--celeba", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "no such folder" in done.stderr
