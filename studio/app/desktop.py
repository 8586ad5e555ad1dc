"""The studio in its own desktop window (``python app.py --window``), through pywebview.

    check_display(url_hint)              # DesktopUnavailable over SSH / with no display
    check_backend()                      # DesktopUnavailable naming what to install (pip extra, Qt's system libraries)
    bring_forward(data_dir)              # a second launch: True if the open window came forward (then exit 0)
    open_window(url, data_dir)           # blocks on the main thread until the window is closed or SIGTERM/SIGINT

The window remembers its size and position (``window.json`` in the data folder), saves downloads in the user's
Downloads folder (Qt) or where the system webview puts them, answers a second launch by coming forward (the
``window.raise`` file the second launch writes next to the folder's lock), and shows a page saying the studio
stopped if its server stops answering. This module never imports gradio: app.py starts the server and passes its
URL; stopping the server is the caller's job once ``open_window`` returns.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import html
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..config import ASSETS_DIR
from ..errors import StudioError
from .owner_client import open_direct

TITLE = "AnyFlow Studio"
ICON = ASSETS_DIR / "icon.png"
PLACEMENT_NAME = "window.json"
RAISE_NAME = "window.raise"
INSTALL_HINT = "bash scripts/setup.sh --desktop"
# Libraries Qt's xcb platform plugin loads at start-up beyond what importing QtWebEngineWidgets checks; when one is
# missing Qt aborts the process, so they are looked for first. {soname: Debian/Ubuntu package}
XCB_LIBS = {
    "xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1",
    "xcb-image": "libxcb-image0", "xcb-render-util": "libxcb-render-util0", "xcb-shape": "libxcb-shape0",
    "xcb-xkb": "libxcb-xkb1", "xkbcommon-x11": "libxkbcommon-x11-0", "X11-xcb": "libx11-xcb1",
}
DEBIAN_PACKAGES = {"libEGL": "libegl1", "libGL": "libgl1", "libgbm": "libgbm1", "libnss3": "libnss3",
                   "libxkbcommon": "libxkbcommon0", "libfontconfig": "libfontconfig1", "libXcomposite": "libxcomposite1",
                   "libXdamage": "libxdamage1", "libXrandr": "libxrandr2", "libXtst": "libxtst6",
                   "libxkbfile": "libxkbfile1", "libasound": "libasound2", "libglib": "libglib2.0-0"}


class DesktopUnavailable(StudioError):
    """The window cannot open here; the message says what to do instead."""


# ---- before anything starts -----------------------------------------------------------------------------------
def check_display(url_hint: str = "http://127.0.0.1:7860") -> None:
    """On Linux a window needs an X or Wayland display (not there over plain SSH)."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DesktopUnavailable(
            "There is no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset, e.g. over SSH). "
            f"Run `python app.py` without --window and open the URL it prints ({url_hint} by default) in a browser; "
            "over SSH, forward the port first: ssh -L 7860:127.0.0.1:7860 HOST.")


def check_backend() -> None:
    """pywebview and, on Linux, Qt WebEngine with the system libraries it loads."""
    try:
        import webview  # noqa: F401
    except ImportError:
        raise DesktopUnavailable(f"The desktop window needs the desktop extra (pywebview, and on Linux PyQt6 with "
                                 f"PyQt6-WebEngine): run `{INSTALL_HINT}` (or `pip install -r "
                                 f"requirements-desktop.txt`), or run without --window.") from None
    if not sys.platform.startswith("linux"):
        return
    try:
        import PyQt6.QtWebEngineWidgets  # noqa: F401
        import qtpy  # noqa: F401
    except ImportError as exc:
        raise DesktopUnavailable(_qt_import_message(str(exc))) from None
    if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        missing = [deb for name, deb in XCB_LIBS.items() if ctypes.util.find_library(name) is None]
        if missing:
            raise DesktopUnavailable(f"Qt cannot open a window: system libraries missing (Debian/Ubuntu packages: "
                                     f"{' '.join(missing)}). Run `{INSTALL_HINT}`, which installs them.")


def _qt_import_message(error: str) -> str:
    lib = re.search(r"(lib[\w+-]+)\.so[.\d]*", error)
    if lib:
        deb = next((d for prefix, d in DEBIAN_PACKAGES.items() if lib.group(1).startswith(prefix)), None)
        which = f" (Debian/Ubuntu package {deb})" if deb else ""
        return (f"Qt WebEngine cannot load the system library {lib.group(0)}{which}. Run `{INSTALL_HINT}`: on "
                f"Debian/Ubuntu it installs the libraries Qt needs.")
    return (f"The desktop window needs PyQt6 and PyQt6-WebEngine ({error}). Run `{INSTALL_HINT}` (or `pip install -r "
            f"requirements-desktop.txt`).")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def downloads_dir() -> Path:
    return Path(os.environ.get("XDG_DOWNLOAD_DIR") or Path.home() / "Downloads")


# ---- size and position ----------------------------------------------------------------------------------------
@dataclass
class WindowGeometry:
    width: int = 1280
    height: int = 860
    x: int | None = None
    y: int | None = None

    @classmethod
    def load(cls, path: Path) -> "WindowGeometry":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            place = cls(int(data["width"]), int(data["height"]), *(None if data.get(k) is None else int(data[k])
                                                                   for k in ("x", "y")))
        except (OSError, ValueError, KeyError, TypeError):
            return cls()
        if not (320 <= place.width <= 16000 and 240 <= place.height <= 16000):
            return cls()
        return place

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self)), encoding="utf-8")
        os.replace(tmp, path)


def _track_geometry(window, place: WindowGeometry) -> None:
    def resized(width, height):
        place.width, place.height = int(width), int(height)

    def moved(x, y):
        place.x, place.y = int(x), int(y)

    window.events.resized += resized
    window.events.moved += moved


# ---- a second launch on the same data folder ------------------------------------------------------------------
def bring_forward(data_dir: Path, timeout: float = 3.0) -> bool:
    """Ask the window owning ``data_dir`` to come forward. True when it answered within ``timeout`` (it removes the
    request); False when no window did (the owner runs without one): the request is withdrawn."""
    path = Path(data_dir) / RAISE_NAME
    path.write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not path.exists():
            return True
        time.sleep(0.05)
    path.unlink(missing_ok=True)
    return False


def _watch_raise_requests(path: Path, window, stop: threading.Event) -> None:
    path.unlink(missing_ok=True)  # a request left over from before this window opened
    while not stop.wait(0.2):
        if path.exists():
            window.restore()  # un-minimise, raise and activate
            window.show()
            path.unlink(missing_ok=True)


# ---- the server going away ------------------------------------------------------------------------------------
def answers(url: str, timeout: float = 2.0) -> bool:
    """True if an HTTP server answers at ``url`` (any status)."""
    try:
        with open_direct(urllib.request.Request(url, method="HEAD"), timeout):  # never through http_proxy
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def stopped_page(url: str, data_dir: Path) -> str:
    u, d = html.escape(url), html.escape(str(data_dir))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{TITLE}: stopped</title></head>
<body style="font-family: sans-serif; background:#181a26; color:#eee; padding:3em; max-width:44em">
<h1 id="studio-stopped">AnyFlow Studio stopped</h1>
<p>The studio's server stopped answering at <code>{u}</code>, so this window cannot show it.</p>
<p>Your renders and history are kept in <code>{d}</code>. A render that was running is marked interrupted when the
studio starts again. The terminal where the studio was started says what went wrong.</p>
<p>Close this window and start AnyFlow Studio again, or <a style="color:#9cf" href="{u}">try the page again</a>.</p>
</body></html>"""


def _watch_server(url: str, data_dir: Path, window, stop: threading.Event, every: float = 1.0) -> None:
    """Two failed checks in a row: the window shows the 'stopped' page instead of a blank or frozen one."""
    failures = 0
    while not stop.wait(every):
        failures = 0 if answers(url) else failures + 1
        if failures >= 2 and not stop.is_set():
            window.load_html(stopped_page(url, data_dir))
            failures = -10**9  # once: the page links back to the studio if it comes back


# ---- downloads (Qt) -------------------------------------------------------------------------------------------
def _unique(folder: Path, name: str) -> Path:
    path, n = folder / name, 1
    while path.exists():
        path, n = folder / f"{Path(name).stem} ({n}){Path(name).suffix}", n + 1
    return path


def _save_downloads_qt(window) -> None:
    """pywebview 6.2.1's Qt download handler (ALLOW_DOWNLOADS) calls Qt 5's ``setPath``, gone in Qt 6: this one saves
    into the Downloads folder instead, and says where in the terminal. Connected directly: it runs on Qt's thread,
    where the download must be accepted."""
    from qtpy.QtCore import Qt

    profile = window.native.webview.page().profile()

    def requested(download):
        folder = downloads_dir()
        folder.mkdir(parents=True, exist_ok=True)
        target = _unique(folder, download.suggestedFileName() or "download")
        download.setDownloadDirectory(str(folder))
        download.setDownloadFileName(target.name)
        download.accept()
        print(f"Saved {target}", file=sys.stderr)

    profile.downloadRequested.connect(requested, Qt.ConnectionType.DirectConnection)


# ---- SIGTERM / SIGINT -----------------------------------------------------------------------------------------
def _close_on_signals(window) -> Callable[[], None]:
    """SIGTERM or SIGINT closes the window (so the studio stops the same way as when the user closes it). Python
    runs signal handlers only between bytecodes, never while Qt's loop holds the main thread, so the signal is seen
    through the wakeup fd by a thread. Returns a function that puts the old handlers back."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    sigs = [s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)) if s is not None]
    old = {s: signal.signal(s, lambda *_: None) for s in sigs}
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def wait() -> None:
        try:
            if reader.recv(1):
                print("Signal received: closing the window and stopping the studio.", file=sys.stderr)
                window.destroy()
        except OSError:
            pass

    threading.Thread(target=wait, name="window-signals", daemon=True).start()

    def restore() -> None:
        signal.set_wakeup_fd(old_fd)
        for s, handler in old.items():
            signal.signal(s, handler)
        writer.close()
        reader.close()

    return restore


# ---- the window -----------------------------------------------------------------------------------------------
NOISE_LOG = "desktop.log"


@contextlib.contextmanager
def native_noise_to(log_path: Path):
    """While the window runs: what native code writes to the process's stderr (Qt WebEngine's Vulkan, dbus and
    "WebEnginePage still not deleted" lines) goes to ``log_path``; the studio's own messages (Python's
    ``sys.stderr``) still reach the console."""
    os.environ.setdefault("QT_LOGGING_RULES", "*.debug=false;qt.webenginecontext.info=false")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    console = os.dup(2)
    previous = sys.stderr
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
        sys.stderr = os.fdopen(os.dup(console), "w", buffering=1, encoding=getattr(previous, "encoding", None))
        try:
            yield log_path
        finally:
            sys.stderr.flush()
            sys.stderr.close()
            os.dup2(console, 2)
            os.close(console)
            sys.stderr = previous


def open_window(url: str, data_dir: Path, title: str = TITLE) -> None:
    """Show ``url`` in a native window and block (main thread) until it is closed, by the user or a signal."""
    import webview

    data_dir = Path(data_dir)
    if sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0:
        flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
        if "--no-sandbox" not in flags:  # Chromium's sandbox refuses to run as root
            os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = f"{flags} --no-sandbox".strip()
    qt = sys.platform.startswith("linux")
    webview.settings["ALLOW_DOWNLOADS"] = not qt  # WebView2 / WKWebView save downloads; Qt: _save_downloads_qt
    place_path = data_dir / PLACEMENT_NAME
    place = WindowGeometry.load(place_path)
    window = webview.create_window(title, url, width=place.width, height=place.height, x=place.x, y=place.y,
                                   min_size=(640, 480), text_select=True, background_color="#181a26")
    _track_geometry(window, place)
    stop = threading.Event()
    restore_signals = _close_on_signals(window)
    try:
        with native_noise_to(data_dir / NOISE_LOG):  # Qt's and Chromium's own lines (Vulkan, dbus, ...)
            webview.start(_started, (window, url, data_dir, stop), gui="qt" if qt else None,
                          icon=str(ICON), private_mode=False, storage_path=str(data_dir / "webview"))
    finally:
        stop.set()
        restore_signals()
        place.save(place_path)


def _started(window, url: str, data_dir: Path, stop: threading.Event) -> None:
    """On pywebview's start thread, once the GUI loop runs: downloads (Qt), raise requests, the server watch."""
    import webview

    window.events.shown.wait(30)
    if webview.renderer == "qtwebengine":
        _save_downloads_qt(window)
    for target, args in ((_watch_raise_requests, (data_dir / RAISE_NAME, window, stop)),
                         (_watch_server, (url, data_dir, window, stop))):
        threading.Thread(target=target, args=args, name=target.__name__, daemon=True).start()
