"""Runs the studio's window for tests, with a control channel on stdin/stdout.

    python tests/desktop_driver.py --window --data-dir D --model t-far   # exactly app.main(argv), plus the channel
    python tests/desktop_driver.py --bare URL DATA_DIR                   # the window alone on any URL (no studio)

Once the window is up it prints ``@@ {"ready": true}``; then each JSON line on stdin is answered by one ``@@ <json>``
line: {"js": expr} -> pywebview's evaluate_js in the page; {"resize": [w, h]}; {"geometry": true} -> [w, h, x, y];
{"title": true}; {"close": true} -> window.destroy() (what Qt does when the user closes it).
"""

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.app import desktop  # noqa: E402

_original_started = desktop._started


def _answer(out) -> None:
    print("@@ " + json.dumps(out), flush=True)


def _do(window, cmd: dict):
    if "js" in cmd:
        return window.evaluate_js(cmd["js"])
    if "resize" in cmd:
        return window.resize(*cmd["resize"])
    if "geometry" in cmd:
        return [window.width, window.height, window.x, window.y]
    if "title" in cmd:
        return window.title
    if "close" in cmd:
        return window.destroy()
    raise ValueError(f"unknown command {cmd}")


def _serve(window) -> None:
    for line in sys.stdin:
        try:
            _answer({"ok": _do(window, json.loads(line))})
        except Exception as exc:  # the test sees it
            _answer({"error": repr(exc)})


def _started(window, *args) -> None:
    _original_started(window, *args)
    window.events.loaded.wait(60)
    _answer({"ready": True})
    threading.Thread(target=_serve, args=(window,), daemon=True).start()


desktop._started = _started

if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        desktop.open_window(sys.argv[2], Path(sys.argv[3]))
        sys.exit(0)
    import app

    sys.exit(app.main(sys.argv[1:]))
