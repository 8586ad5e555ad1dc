"""The studio in its own window (python app.py --window) under a virtual X display (Xvfb), on the tiny models.

One window is launched for most tests (tests/desktop_driver.py runs app.main with a control channel that calls
pywebview's evaluate_js in the page); the SIGTERM and server-crash tests start their own. Nothing is skipped: without
the desktop extra or Xvfb the tests fail and say how to install them (bash scripts/setup.sh --test).
"""

import json
import os
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, _models_toml
from studio.app import desktop
from studio.app.ownership import is_owned

DRIVER = ROOT / "tests" / "desktop_driver.py"
ARTIFACTS = ROOT / "artifacts"


def _require(what: str, ok: bool) -> None:
    if not ok:
        pytest.fail(f"{what} is missing: run `bash scripts/setup.sh --test` (it installs the desktop extra, "
                    f"requirements-desktop.txt, and xvfb/imagemagick on Debian/Ubuntu)", pytrace=False)


@pytest.fixture(scope="module")
def display():
    try:
        desktop.check_backend()
    except desktop.DesktopUnavailable as exc:
        pytest.fail(f"the desktop extra is not usable: {exc}", pytrace=False)
    _require("Xvfb", shutil.which("Xvfb") is not None)
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(10)


class Window:
    """A driver process: the studio (or a bare window) plus its control channel."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.log = log
        self.proc = subprocess.Popen([sys.executable, str(DRIVER), *args], env=env, cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"))
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._next(120)
        assert first == {"ready": True}, f"the window did not open: {first}; log:\n{log.read_text()[-3000:]}"

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                self.answers.put(json.loads(line[3:]))
        self.answers.put({"exited": self.proc.wait()})

    def _next(self, timeout: float) -> dict:
        try:
            return self.answers.get(timeout=timeout)
        except queue.Empty:
            return {"timeout": timeout}

    def call(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        out = self._next(30)
        assert "ok" in out, f"{cmd} -> {out}"
        return out["ok"]

    def js(self, expr: str):
        return self.call(js=expr)

    def wait_js(self, expr: str, timeout: float = 30):
        """Poll a page expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expr)
            if value:
                return value
            time.sleep(0.2)  # polling the page, not ordering threads
        pytest.fail(f"page never had {expr!r}; log:\n{self.log.read_text()[-2000:]}")

    def close(self, timeout: float = 15) -> float:
        """Close the window as the user would; return how long the process took to exit."""
        started = time.monotonic()
        self.proc.stdin.write(json.dumps({"close": True}) + "\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout)
        return time.monotonic() - started


def _env(display: str, home: Path, models_file: Path | None = None) -> dict:
    env = dict(os.environ, DISPLAY=display, HOME=str(home), XDG_DOWNLOAD_DIR=str(home / "Downloads"),
               HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    env.pop("WAYLAND_DISPLAY", None)
    if models_file:
        env["STUDIO_MODELS_FILE"] = str(models_file)
    return env


@pytest.fixture(scope="module")
def studio_env(tmp_path_factory, tiny_dirs, display):
    root = tmp_path_factory.mktemp("desktop")
    models = root / "models.toml"
    models.write_text(_models_toml(tiny_dirs), encoding="utf-8")
    return {"root": root, "data": root / "data", "env": _env(display, root / "home", models)}


@pytest.fixture(scope="module")
def window(studio_env):
    w = Window(["--window", "--data-dir", str(studio_env["data"]), "--model", "t-far"], studio_env["env"],
               studio_env["root"] / "window.log")
    yield w
    if w.proc.poll() is None:
        w.proc.kill()


def _rows(data: Path) -> list[tuple]:
    db = sqlite3.connect(data / "history.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT id, status FROM renders").fetchall()
    finally:
        db.close()


# ---- one window for these, in order -----------------------------------------------------------------------------
def test_window_opens_the_studio(window):
    assert window.call(title=True) == "AnyFlow Studio"
    assert window.wait_js("document.querySelectorAll('input[type=range]').length") >= 1
    assert window.js("location.hostname") == "127.0.0.1"


def test_screenshot_of_the_window(window, display):
    _require("imagemagick's import", shutil.which("import") is not None)
    from PIL import Image

    window.wait_js("document.querySelector('#render-btn') !== null")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "desktop_window.png"
    subprocess.run(["import", "-display", display, "-window", "root", str(shot)], check=True, timeout=30)
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is (nearly) one colour: nothing was drawn"


def test_render_through_the_window(window, studio_env):
    window.js("""(() => { const t = document.querySelector('#prompt textarea');
        t.value = 'a red circle moving right'; t.dispatchEvent(new Event('input', {bubbles: true})); })()""")
    window.js("document.querySelector('#render-btn').click()")
    src = window.wait_js("document.querySelector('#result-video video')?.src || ''", timeout=60)
    assert src.startswith("http://127.0.0.1") and ".mp4" in src
    assert any(status == "ok" for _, status in _rows(studio_env["data"]))


def test_a_download_lands_in_the_downloads_folder(window, studio_env):
    folder = Path(studio_env["env"]["XDG_DOWNLOAD_DIR"])
    window.js("""(() => { const a = document.createElement('a');
        a.href = document.querySelector('#result-video video').src; a.download = 'render.mp4';
        document.body.appendChild(a); a.click(); a.remove(); })()""")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(p.suffix == ".mp4" and p.stat().st_size for p in
                                                  (folder.glob("*") if folder.exists() else [])):
        time.sleep(0.2)
    saved = list(folder.glob("*.mp4")) if folder.exists() else []
    assert saved and saved[0].read_bytes()[4:8] == b"ftyp", f"nothing saved in {folder}"


def test_an_image_dropped_on_the_i2v_input_is_taken(window, sample_media):
    """Gradio's upload area takes a drop in QtWebEngine (the drop is dispatched in the page: Xvfb has no drag)."""
    import base64

    data = base64.b64encode(sample_media["image"].read_bytes()).decode()
    window.js("document.querySelector('#tab-i2v-button').click()")
    window.wait_js("!!document.querySelector('#i2v-image [aria-dropeffect=copy]')")
    window.js(f"""(() => {{ const bytes = Uint8Array.from(atob('{data}'), c => c.charCodeAt(0));
        const dt = new DataTransfer(); dt.items.add(new File([bytes], 'first.png', {{type: 'image/png'}}));
        const zone = document.querySelector('#i2v-image [aria-dropeffect=copy]');
        for (const type of ['dragenter', 'dragover', 'drop'])
            zone.dispatchEvent(new DragEvent(type, {{bubbles: true, cancelable: true, dataTransfer: dt}})); }})()""")
    assert window.wait_js("document.querySelector('#i2v-image img')?.src || ''", timeout=20)


def test_a_second_launch_brings_the_window_forward(window, studio_env):
    out = subprocess.run([sys.executable, "app.py", "--window", "--data-dir", str(studio_env["data"]),
                          "--model", "t-far"], cwd=ROOT, env=studio_env["env"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "brought forward" in out.stderr
    assert window.proc.poll() is None


def test_closing_the_window_stops_the_studio_cleanly(window, studio_env):
    window.call(resize=[1100, 700])
    port = int(window.js("location.port"))
    took = window.close()
    assert window.proc.returncode == 0
    assert took < 10, f"the studio took {took:.1f} s to stop"
    rows = _rows(studio_env["data"])
    assert rows and not [r for r in rows if r[1] == "running"]
    assert not is_owned(studio_env["data"])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the port still answers"
    place = json.loads((studio_env["data"] / desktop.PLACEMENT_NAME).read_text())
    assert (place["width"], place["height"]) == (1100, 700)


def test_sigterm_stops_the_studio_and_the_window_comes_back_where_it_was(studio_env):
    w = Window(["--window", "--data-dir", str(studio_env["data"]), "--model", "t-far"], studio_env["env"],
               studio_env["root"] / "sigterm.log")
    try:
        assert w.call(geometry=True)[:2] == [1100, 700]  # remembered from the window closed before
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(10) == 0
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
    assert "Signal received" in w.log.read_text()
    assert not is_owned(studio_env["data"])
    assert not [r for r in _rows(studio_env["data"]) if r[1] == "running"]


# ---- the server going away, and what stops a window from opening --------------------------------------------------
def test_the_window_says_so_when_the_server_stops(display, tmp_path):
    port = desktop.free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not desktop.answers(f"http://127.0.0.1:{port}/") and time.monotonic() < deadline:
        time.sleep(0.1)
    w = Window(["--bare", f"http://127.0.0.1:{port}/", str(tmp_path)], _env(display, tmp_path / "home"),
               tmp_path / "bare.log")
    try:
        server.kill()
        server.wait(5)
        assert "stopped" in w.wait_js("document.getElementById('studio-stopped')?.textContent || ''", timeout=20)
        assert w.close() < 10
    finally:
        server.kill()
        if w.proc.poll() is None:
            w.proc.kill()


def test_no_display_says_to_run_without_window(tmp_path):
    env = dict(os.environ, STUDIO_DATA_DIR=str(tmp_path))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("QT_QPA_PLATFORM", None)
    out = subprocess.run([sys.executable, "app.py", "--window"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "without --window" in out.stderr and "http://127.0.0.1:7860" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "webview", None)  # import webview -> ImportError
    with pytest.raises(desktop.DesktopUnavailable, match="bash scripts/setup.sh --desktop"):
        desktop.check_backend()


def test_missing_qt_library_names_the_debian_package():
    message = desktop._qt_import_message("libxkbfile.so.1: cannot open shared object file: No such file or directory")
    assert "libxkbfile1" in message and "bash scripts/setup.sh --desktop" in message


# ---- renders still running when the studio stops --------------------------------------------------------------------
def test_cancel_running_records_a_held_render_as_cancelled(studio, hold_step):
    from studio.engine.render import Cancelled, RenderRequest

    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=2)
    events = []
    consumer = threading.Thread(target=lambda: events.extend(studio.engine.render(
        RenderRequest(prompt="a red circle", steps=4, seed=1))))
    consumer.start()
    assert hold.reached.wait(30)
    assert studio.engine.cancel_running(timeout=0) == 1  # the token is set; the render waits at step 2
    hold.release.set()
    studio.engine.cancel_running(timeout=10)
    consumer.join(10)
    assert any(isinstance(e, Cancelled) for e in events)
    assert [r["status"] for r in studio.history.search()] == ["cancelled"]
