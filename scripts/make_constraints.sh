#!/usr/bin/env bash
# Regenerate constraints.txt, the versions CI installs with: a fresh venv resolves the bounded
# ranges of pyproject.toml, the test suite must pass there, then its versions are frozen.
#   bash scripts/make_constraints.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-$(mktemp -d)/venv}
python3 -m venv "$venv" && . "$venv/bin/activate"
pip install -q -e ".[test]"
python -m bench.cli.dependencies --quiet
python -m pytest -q -x
{
  echo "# The versions the committed results and CI used, resolved from pyproject.toml's ranges on"
  echo "# $(date -u +%Y-%m-%d), Python $(python -c 'import platform; print(platform.python_version())'), $(uname -m)."
  echo "# Install with: pip install -c constraints.txt -e \".[test]\"   Regenerate: bash scripts/make_constraints.sh"
  echo "# torch's pin also admits its CPU-only build (2.14.1+cpu, from download.pytorch.org/whl/cpu)."
  pip freeze --exclude-editable --all | grep -v -E '^(pip|kpdp-bench)=='
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) pins)"
