#!/usr/bin/env bash
# Creates .venv with PyTorch (the local CPU wheel when the machine has one, else the package
# index's build) and the runtime package in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --quiet"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  $PIP install "torch==2.13.0+cpu" 2>/dev/null || $PIP install torch
fi
$PIP install -e "python[test]"
touch "$VENV/.installed"
