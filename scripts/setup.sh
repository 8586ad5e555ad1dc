#!/usr/bin/env bash
# Set up AnyFlow Studio on a fresh machine: a virtual environment from requirements.txt.
#   bash scripts/setup.sh          # for running the app / CLI
#   bash scripts/setup.sh --test   # also the system packages the tests use (chromium, ffmpeg)
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [[ "${1:-}" == "--test" ]]; then
  if ! command -v chromium >/dev/null || ! command -v ffprobe >/dev/null; then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium ffmpeg fonts-dejavu-core
  fi
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"AnyFlow Studio needs Python 3.11 or newer (diffusers, transformers); this is {sys.version.split()[0]}.")
PY

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt
echo "ready: $VENV ($("$VENV/bin/python" -c 'import torch, diffusers, gradio; print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, gradio {gradio.__version__}")'))"
