"""Screenshots of the Storyboard tab (a previewed board, then finals) and the Budgets analytics tab.

    python scripts/ui_screens_boards.py [--out artifacts/screens] [--shots 6] [--space]

With --space it also renders at the 'max' policy in Create, which Space mode caps (b08).

Starts the app in-process on the embedded model with a fresh data folder, makes a board of
``--shots`` shots, then in headless Chromium: Preview all, select a shot, approve two, Render
finals, export, and opens the Budgets tab. Needs Debian's chromium and pip playwright.
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

from ui_screens import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PROMPTS = ["a red circle moving left on a black background", "a yellow triangle moving up on a gray background",
           "a green square moving right on a white background", "a blue circle moving down on a black background",
           "a red square moving up on a white background", "a yellow circle moving right on a gray background"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "artifacts" / "screens"))
    p.add_argument("--shots", type=int, default=6)
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--space", action="store_true", help="Space mode (shows the banner; boards per session)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    from studio.app.services import Studio
    from studio.ui import build_app, launch_options

    studio = Studio.open(data_dir=tempfile.mkdtemp(prefix="studio-boards-"), space=args.space or None)
    demo = build_app(studio)
    _, url, _ = demo.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                                    **launch_options(studio))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#render-btn")

            def shot(name):
                page.wait_for_timeout(500)
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                print(out / f"{name}.png")

            try:
                walk(page, shot, args.shots, args.space)
            except Exception:
                shot("b99-failure")
                raise
            browser.close()
    finally:
        demo.close()
        studio.close()


def walk(page, shot, count, space=False) -> None:
    page.get_by_role("tab", name="Storyboard").click()
    page.wait_for_selector("#board-new")
    shot("b01-storyboard-empty")
    page.locator("#board-new-name textarea, #board-new-name input").first.fill("Shapes in motion")
    page.click("#board-new")
    page.wait_for_selector("#board-status:has-text('Created')")
    for i in range(count):
        page.fill("#shot-prompt textarea", PROMPTS[i % len(PROMPTS)])
        page.click("#shot-add")
        page.wait_for_selector(f"#board-status:has-text('Added shot {i + 1} ')", timeout=20_000)
    shot("b02-storyboard-shots")
    started = time.perf_counter()
    page.click("#board-preview-all")
    page.wait_for_selector("#board-status:has-text('of 6')", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#board-status').innerText.includes('done ·')",
                           timeout=120_000)
    shot("b03-storyboard-previewing")
    page.wait_for_selector("#board-status:has-text('✓ Done')", timeout=300_000)
    print(f"preview all ({count} shots) in the browser: {time.perf_counter() - started:.1f} s")
    shot("b04-storyboard-previewed")
    page.locator("#board-gallery img").nth(1).click()
    page.wait_for_selector("#shot-title:has-text('Shot 2')", timeout=20_000)
    page.click("#shot-approve")
    page.wait_for_selector("#board-status:has-text('approved')", timeout=20_000)
    page.locator("#board-gallery img").nth(3).click()
    page.wait_for_selector("#shot-title:has-text('Shot 4')", timeout=20_000)
    page.click("#shot-approve")
    page.wait_for_selector("#board-status:has-text('Shot 4 approved')", timeout=20_000)
    shot("b05-storyboard-selected-approved")
    started = time.perf_counter()
    page.click("#board-finals")
    page.wait_for_selector("#board-status:has-text('✓ Done: finals')", timeout=300_000)
    print(f"finals (2 shots) in the browser: {time.perf_counter() - started:.1f} s")
    page.click("#board-export")
    page.wait_for_selector("#board-status:has-text('Exported')", timeout=60_000)
    page.wait_for_timeout(1000)
    shot("b06-storyboard-finals-exported")
    page.get_by_role("tab", name="Analytics").click()
    page.wait_for_selector("#stats-summary:has-text('finished render')", timeout=30_000)
    page.wait_for_timeout(1500)
    shot("b07-budgets-analytics")
    if not space:
        return
    # Space mode caps every budget at 16: a render at the 'max' policy (32 steps) says it was capped
    page.get_by_role("tab", name="Create").click()
    page.click("#budget-policy input")
    page.get_by_role("option", name="max", exact=False).first.click()
    page.wait_for_function("() => document.querySelector('#steps input[type=number]').value === '32'")
    page.fill("#prompt textarea", PROMPTS[0])
    page.click("#render-btn")
    page.wait_for_selector("#render-status:has-text('Done')", timeout=300_000)
    shot("b08-create-policy-capped")


if __name__ == "__main__":
    main()
