#!/usr/bin/env bash
# Add AnyFlow Studio to the Linux application menu: a .desktop launcher with the studio's icon.
#   bash scripts/install_desktop_entry.sh            # installs for this user (~/.local/share)
#   bash scripts/install_desktop_entry.sh --remove   # takes it away again
# The launcher runs this checkout's `.venv/bin/python app.py --window` (set it up first: bash scripts/setup.sh --desktop).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
ENTRY="$DATA/applications/anyflow-studio.desktop"
ICON="$DATA/icons/hicolor/256x256/apps/anyflow-studio.png"

if [[ "${1:-}" == "--remove" ]]; then
  rm -f "$ENTRY" "$ICON"
  echo "removed $ENTRY"
  exit 0
fi
[[ -x "$ROOT/.venv/bin/python" ]] || { echo "error: no $ROOT/.venv: run bash scripts/setup.sh --desktop first" >&2; exit 2; }
mkdir -p "$(dirname "$ENTRY")" "$(dirname "$ICON")"
cp "$ROOT/assets/icon.png" "$ICON"
cat > "$ENTRY" <<DESKTOP
[Desktop Entry]
Type=Application
Name=AnyFlow Studio
Comment=Any-step video: draft in a few steps, refine with more
Exec="$ROOT/.venv/bin/python" "$ROOT/app.py" --window
Path=$ROOT
Icon=anyflow-studio
Terminal=false
Categories=Graphics;Video;AudioVideo;
StartupWMClass=app.py
DESKTOP
command -v update-desktop-database >/dev/null && update-desktop-database "$(dirname "$ENTRY")" || true
echo "installed $ENTRY (icon $ICON)"
