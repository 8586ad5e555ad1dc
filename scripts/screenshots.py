"""The README's screenshots: the Create tab after a render, and the Compare tab after a comparison.

    python scripts/screenshots.py [--out docs] [--port 7871]

Starts the real app (``python app.py``, embedded default model, a fresh data folder in a temporary directory),
drives it in headless Chromium with Playwright (Debian's /usr/bin/chromium; never ``playwright install``), renders
a short clip in Create (a 2-step preview, then 8 steps) and compares 1, 2, 4 and 8 steps, and writes
``docs/screenshot-create.png`` and ``docs/screenshot-compare.png``. Run it again after a UI change to refresh them.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
PROMPT = "a red circle moving right on a black background"
VIEWPORT = {"width": 1360, "height": 980}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for 127.0.0.1
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the studio exited with {proc.returncode} before it answered")
        try:
            opener.open(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the studio did not answer at {url} within {timeout:.0f} s")


def create_shot(page, out: Path) -> None:
    page.fill("#prompt textarea", PROMPT)
    page.fill("#steps input[type=number]", "8")
    page.press("#steps input[type=number]", "Enter")
    page.click("#render-btn")
    page.wait_for_selector("#render-status:has-text('Done')", timeout=300_000)
    page.wait_for_function("() => { const v = document.querySelector('#result-video video');"
                           " return v && v.readyState >= 2; }", timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "screenshot-create.png"))


def compare_shot(page, out: Path) -> None:
    page.get_by_role("tab", name="Compare budgets").click()
    page.wait_for_selector("#compare-btn", state="visible")
    page.fill("#compare-prompt textarea", PROMPT)
    for label in ("1", "2", "4", "8", "16"):  # pick 1, 2, 4 and 8 steps
        box = page.locator("#compare-budgets label").filter(has_text=label).first.locator("input")
        if box.is_checked() != (label != "16"):
            box.click()
    page.click("#compare-btn")
    page.wait_for_selector("#compare-status:has-text('8 steps:')", timeout=300_000)
    page.wait_for_function("() => Array.from(document.querySelectorAll('#compare-videos video'))"
                           ".filter(v => v.readyState >= 2).length >= 4", timeout=60_000)
    page.click("#compare-sync")
    page.wait_for_timeout(1200)
    page.evaluate("() => document.querySelectorAll('#compare-videos video, #compare-teacher-videos video')"
                  ".forEach(v => v.pause())")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 1240})  # the videos below the plot too
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "screenshot-compare.png"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs (default docs/)")
    p.add_argument("--port", type=int, default=None, help="port for the studio (default: a free one)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="studio-screenshots-") as data:
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--data-dir", data],
                                cwd=ROOT, env=env)
        try:
            wait_for_server(url, proc)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(url, wait_until="load")  # a studio page never goes network-idle (heartbeat, queue)
                page.wait_for_selector("#render-btn")
                create_shot(page, out)
                compare_shot(page, out)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    for name in ("screenshot-create.png", "screenshot-compare.png"):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
