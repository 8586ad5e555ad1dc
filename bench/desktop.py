"""The desktop window against a server plus a browser: time to a usable studio, and memory, in one run.

    .venv/bin/python bench/desktop.py [--runs 2] [--out runs/bench]

A: ``python app.py --window`` (through tests/desktop_driver.py, which adds only a control channel): from launch until
the step slider (``input[type=range]``) exists in the window's page. B: ``python app.py`` plus headless Chromium
(Playwright, /usr/bin/chromium): from launch until the same slider exists in the browser's page. Both on the
embedded default model, each with a fresh data folder; runs alternate A, B. Memory: RSS of each process tree (the
studio's Python, the QtWebEngine processes, or Chromium's) once the page is usable. Under Xvfb when no DISPLAY.
Also the install size of the desktop extra (its site-packages folders). Writes desktop.json in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from studio.app.desktop import answers, free_port  # noqa: E402

EXTRA = ["PyQt6", "qtpy", "webview", "bottle.py", "proxy_tools"]
SLIDER = "document.querySelectorAll('input[type=range]').length > 0"


def tree_rss_mb(pid: int) -> dict:
    """RSS (MB) of ``pid`` and all its descendants, by command name."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            names[int(entry.name)] = stat[stat.index("(") + 1:stat.rindex(")")]
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            continue
    out: dict[str, float] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        out[names.get(p, "?")] = out.get(names.get(p, "?"), 0) + rss.get(p, 0) / 2**20
        todo += children.get(p, [])
    return {k: round(v, 1) for k, v in out.items()}


def run_window(env: dict, data: Path) -> dict:
    from test_desktop import Window

    started = time.perf_counter()
    w = Window(["--window", "--data-dir", str(data)], env, data.parent / "window.log")
    while not w.js(SLIDER):
        time.sleep(0.05)
    usable = time.perf_counter() - started
    memory = tree_rss_mb(w.proc.pid)
    w.close()
    return {"usable_s": round(usable, 2), "rss_mb": memory, "rss_total_mb": round(sum(memory.values()), 1)}


def run_browser(env: dict, data: Path) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "app.py", "--data-dir", str(data), "--port", str(port)], cwd=REPO,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        while not answers(url, timeout=0.5):
            time.sleep(0.05)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage"])
            page = browser.new_page()
            page.goto(url, wait_until="load")
            page.wait_for_function(SLIDER, timeout=120_000)
            usable = time.perf_counter() - started
            server_mb = tree_rss_mb(server.pid)
            mine = tree_rss_mb(os.getpid())  # this process's tree: Playwright's driver and its Chromium
            browser_mb = sum(v for k, v in mine.items() if k.lower().startswith("chrom"))
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    return {"usable_s": round(usable, 2), "server_rss_mb": server_mb, "chromium_rss_mb": round(browser_mb, 1)}


def extra_size_mb() -> float:
    import webview

    site = Path(webview.__file__).resolve().parent.parent
    paths = [site / n for n in EXTRA] + [p for p in site.glob("*.dist-info") if
                                         p.name.lower().startswith(("pyqt6", "qtpy", "pywebview", "bottle", "proxy_tools"))]
    out = subprocess.run(["du", "-sc", "-m", *map(str, paths)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1].split()[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    xvfb = None
    if not env.get("DISPLAY"):
        r, w = os.pipe()
        xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                                pass_fds=(w,), stderr=subprocess.DEVNULL)
        os.close(w)
        env["DISPLAY"] = ":" + os.fdopen(r).readline().strip()
    results: dict = {"window": [], "browser": [], "extra_installed_mb": extra_size_mb()}
    try:
        for i in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                env["HOME"] = tmp
                results["window"].append(run_window(env, Path(tmp) / "a"))
                results["browser"].append(run_browser(env, Path(tmp) / "b"))
            print(json.dumps({k: v[-1] for k, v in results.items() if isinstance(v, list)}), flush=True)
    finally:
        if xvfb:
            xvfb.terminate()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "desktop.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
