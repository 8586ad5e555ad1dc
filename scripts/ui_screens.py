"""Screenshots of every tab of the studio, in headless Chromium, for looking at the UI.

    python scripts/ui_screens.py [--out artifacts/screens] [--data-dir DIR]

Starts the app in-process on the embedded model with a fresh data folder, walks through
Create (T2V, I2V, V2V, an error), Compare and History, and saves a PNG per state.
Needs Debian's chromium (/usr/bin/chromium) and pip playwright.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "artifacts" / "screens"))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--width", type=int, default=1400)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    from studio.app.services import Studio
    from studio.ui import build_app, launch_options

    studio = Studio.open(data_dir=args.data_dir or tempfile.mkdtemp(prefix="studio-screens-"))
    demo = build_app(studio)
    _, url, _ = demo.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                                    **launch_options(studio))
    examples = ROOT / "assets" / "examples"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#render-btn")

            def shot(name):
                page.wait_for_timeout(400)
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                print(out / f"{name}.png")

            try:
                walk(page, shot, examples)
            except Exception:
                print("status:", page.inner_text("#render-status"))
                shot("99-failure")
                raise
            browser.close()
        rows = studio.history.search()
        print("history (mode, steps, status):", [(r["mode"], r["steps"], r["status"]) for r in rows])
    finally:
        demo.close()
        studio.close()


def walk(page, shot, examples) -> None:
    shot("01-create-t2v-empty")
    page.click("#render-btn")  # empty prompt: an inline message
    page.wait_for_selector("#render-status:has-text('Please fix')")
    shot("02-create-error-empty-prompt")

    page.fill("#prompt textarea", "a red circle moving left on a black background")
    started = time.perf_counter()
    page.click("#render-btn")
    page.wait_for_function("() => document.querySelector('#render-status').innerText.includes('shown')",
                           timeout=60_000)
    print(f"preview shown after {time.perf_counter() - started:.2f} s")
    shot("03-create-t2v-preview")
    page.wait_for_selector("#render-status:has-text('Done')", timeout=120_000)
    print(f"final shown after {time.perf_counter() - started:.2f} s")
    shot("04-create-t2v-final")

    page.get_by_role("tab", name="Image → Video").click()
    page.set_input_files("#i2v-image input[type=file]", str(examples / "red_circle_start_left.png"))
    page.wait_for_timeout(800)
    shot("05-create-i2v")

    page.get_by_role("tab", name="Video → Video").click()
    page.set_input_files("#v2v-video input[type=file]", str(examples / "blue_square_moving_right.mp4"))
    page.wait_for_selector("#context-note:has-text('Context')", timeout=30_000)
    page.wait_for_function("() => Array.from(document.querySelectorAll('#context-frames img'))"
                           ".some(i => i.complete && i.naturalWidth > 0)", timeout=30_000)
    shot("06-create-v2v-context")
    page.fill("#steps input[type=number]", "2")
    page.press("#steps input[type=number]", "Enter")
    page.click("#render-btn")
    page.wait_for_selector("#result-video:has-text('Result · 2 steps')", timeout=60_000)
    shot("06b-create-v2v-rendered")

    page.click("#model-picker input")
    page.get_by_role("option", name="anyflow-wan-1.3b", exact=False).first.click()
    page.wait_for_timeout(1200)
    shot("07-create-v2v-model-cannot-serve")
    page.click("#model-picker input")
    from studio.config import DEFAULT_MODEL

    page.get_by_role("option", name=DEFAULT_MODEL, exact=False).first.click()  # listed before its teacher
    page.wait_for_timeout(800)

    page.get_by_role("tab", name="Compare budgets").click()
    shot("08-compare-empty")
    page.click("#compare-btn")
    page.wait_for_selector("#compare-status:has-text('16 steps:')", timeout=180_000)
    page.wait_for_selector("#compare-status:has-text('16 steps:')", timeout=10_000)
    page.wait_for_timeout(1000)
    page.click("#compare-sync")
    page.wait_for_timeout(1500)
    state = page.evaluate("() => Array.from(document.querySelectorAll('#compare-videos video'))"
                          ".map(v => [Number(v.currentTime.toFixed(2)), v.paused, v.readyState])")
    print("compare videos after 'play all' [time, paused, readyState]:", state)
    page.locator("#compare-videos video").first.evaluate("v => v.pause()")
    page.wait_for_timeout(300)
    print("after pausing the first:", page.evaluate(
        "() => Array.from(document.querySelectorAll('#compare-videos video')).map(v => v.paused)"))
    shot("09-compare-done")
    if page.locator("#compare-teacher input").count():  # the default model names its teacher
        page.check("#compare-teacher input")
        page.click("#compare-btn")
        page.wait_for_function("() => { const v = document.querySelector('#compare-teacher-video-3 video');"
                               " return v && v.currentSrc; }", timeout=180_000)
        page.wait_for_timeout(1500)
        page.click("#compare-sync")  # one "play all" starts both rows
        page.wait_for_timeout(600)
        print("teacher row after 'play all' (paused):", page.evaluate(
            "() => Array.from(document.querySelectorAll('#compare-teacher-videos video')).map(v => v.paused)"))
        shot("09b-compare-before-distillation")
        page.uncheck("#compare-teacher input")
    page.click("#compare-use-2")
    page.wait_for_selector("#render-btn", state="visible", timeout=10_000)
    print("steps after 'use this budget':", page.input_value("#steps input[type=number]"))

    page.fill("#steps input[type=number]", "64")
    page.press("#steps input[type=number]", "Enter")
    page.click("#render-btn")
    page.wait_for_function("() => document.querySelector('#render-status').innerText.includes('step 3 of')",
                           timeout=60_000)
    page.click("#cancel-btn")
    page.wait_for_selector("#render-status:has-text('Cancelled')", timeout=30_000)
    shot("10-create-cancelled")

    page.get_by_role("tab", name="History").click()
    page.wait_for_selector("#history-gallery img", timeout=30_000)
    shot("11-history")
    page.locator("#history-gallery img").first.click()
    page.wait_for_selector("#history-details:has-text('Seed')", timeout=30_000)
    shot("12-history-details")
    page.click("#history-delete")
    page.wait_for_selector("#history-confirm-delete", timeout=10_000)
    shot("13-history-confirm-delete")


if __name__ == "__main__":
    main()
