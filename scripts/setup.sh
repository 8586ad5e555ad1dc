#!/usr/bin/env bash
# Set up AnyFlow Studio on a fresh machine: a virtual environment from requirements.txt.
#   bash scripts/setup.sh             # for running the app / CLI
#   bash scripts/setup.sh --desktop   # also the desktop window (python app.py --window): requirements-desktop.txt,
#                                     # and on Debian/Ubuntu the few system libraries Qt WebEngine needs
#   bash scripts/setup.sh --farm      # also the render farm on Ray (python app.py --farm ray): requirements-farm.txt
#   bash scripts/setup.sh --test      # everything the tests use: --desktop, --farm, requirements-test.txt
#                                     # (pytest, playwright, import-linter), plus chromium, ffmpeg and xvfb
# Flags combine. Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
DESKTOP=0
FARM=0
TEST=0
for arg in "$@"; do
  case "$arg" in
    --desktop) DESKTOP=1 ;;
    --farm) FARM=1 ;;
    --test) TEST=1; DESKTOP=1; FARM=1 ;;
    *) echo "usage: bash scripts/setup.sh [--desktop] [--farm] [--test]" >&2; exit 2 ;;
  esac
done

# Debian/Ubuntu packages. Qt WebEngine's pip wheels bundle Qt itself but link these system libraries (from `ldd`
# on QtWebEngineCore, QtWebEngineProcess, QtGui/Widgets and the xcb/offscreen platform plugins; apt adds the rest).
DESKTOP_DEBS=(libasound2 libegl1 libgl1 libgbm1 libglib2.0-0 libfontconfig1 libnss3 libx11-xcb1 libxcomposite1
  libxdamage1 libxrandr2 libxtst6 libxkbfile1 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
  libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 fonts-dejavu-core)
TEST_DEBS=(chromium ffmpeg fonts-dejavu-core xvfb xauth x11-apps imagemagick)

missing_debs() {  # the packages of "$@" not installed yet
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || echo "$pkg"
  done
}

WANT=()
if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
  [[ $DESKTOP -eq 1 ]] && WANT+=("${DESKTOP_DEBS[@]}")
  [[ $TEST -eq 1 ]] && WANT+=("${TEST_DEBS[@]}")
  if [[ ${#WANT[@]} -gt 0 ]]; then
    mapfile -t MISSING < <(missing_debs "${WANT[@]}")
    if [[ ${#MISSING[@]} -gt 0 ]]; then
      SUDO=""
      [[ $(id -u) -ne 0 ]] && SUDO="sudo"
      $SUDO apt-get update -q
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${MISSING[@]}"
    fi
  fi
elif [[ $DESKTOP -eq 1 ]]; then
  echo "note: not Debian/Ubuntu: install Qt WebEngine's system libraries (X11/xcb, EGL, NSS, fontconfig) yourself" >&2
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"AnyFlow Studio needs Python 3.11 or newer (diffusers, transformers); this is {sys.version.split()[0]}.")
PY

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
REQS=(-r requirements.txt)
[[ $DESKTOP -eq 1 ]] && REQS+=(-r requirements-desktop.txt)
[[ $FARM -eq 1 ]] && REQS+=(-r requirements-farm.txt)
[[ $TEST -eq 1 ]] && REQS+=(-r requirements-test.txt)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${REQS[@]}"
echo "ready: $VENV ($("$VENV/bin/python" -c 'import torch, diffusers, gradio; print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, gradio {gradio.__version__}")'))"
if [[ $DESKTOP -eq 1 ]]; then
  "$VENV/bin/python" -c 'from studio.app.desktop import check_backend; check_backend()' \
    && echo "desktop window: ready (python app.py --window)"
fi
if [[ $FARM -eq 1 ]]; then
  "$VENV/bin/python" -c 'import ray; print(f"render farm: ready (ray {ray.__version__}; python app.py --farm ray)")'
fi
