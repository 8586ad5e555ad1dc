"""The studio in headless Chromium: render T2V on the embedded model, play the video, find it in History.

Uses Debian's chromium (/usr/bin/chromium) through pip playwright; never `playwright install`.
Screenshots land in artifacts/ui-browser/ (gitignored) as test artifacts.
"""

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip playwright is not installed")

from studio.config import REPO_ROOT, Settings  # noqa: E402
from studio.app.services import Studio  # noqa: E402
from studio.ui import build_app, launch_options  # noqa: E402

ARTIFACTS = REPO_ROOT / "artifacts" / "ui-browser"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PROMPT = "a blue square moving right on a white background"


@pytest.fixture()
def app_url(tmp_path):
    studio = Studio.open(Settings(data_dir=tmp_path / "data", device="cpu"))  # the embedded default model
    demo = build_app(studio)
    _, url, _ = demo.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                                    **launch_options(studio))
    yield url, studio
    demo.close()
    studio.close()


@pytest.fixture()
def page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        yield pg
        browser.close()


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_render_play_and_find_in_history(app_url, page):
    url, studio = app_url
    assert not studio.models.is_loaded(studio.settings.default_model), "no model load at launch"
    page.goto(url)
    page.wait_for_selector("#render-btn")
    shot(page, "01-loaded")
    try:
        page.fill("#prompt textarea", PROMPT)
        page.fill("#steps input[type=number]", "2")
        page.press("#steps input[type=number]", "Enter")
        page.click("#render-btn")
        page.wait_for_selector("#render-status:has-text('Done')", timeout=120_000)
        # a <video> whose source really plays
        page.wait_for_function(
            """() => { const v = document.querySelector('#result-video video');
                       return v && v.currentSrc && (v.readyState >= 2 || v.duration > 0); }""", timeout=30_000)
        label = page.inner_text("#result-video")
        assert "2 steps" in label
        shot(page, "02-rendered")

        page.get_by_role("tab", name="History").click()
        page.wait_for_selector(f"#history-gallery:has-text('{PROMPT[:20]}')", timeout=30_000)
        shot(page, "03-history")
        page.locator("#history-gallery img").first.click()
        page.wait_for_selector("#history-details:has-text('Seed')", timeout=30_000)
        assert PROMPT in page.inner_text("#history-details")
        shot(page, "04-history-details")
    except Exception:
        shot(page, "99-failure")
        raise


def test_a_finished_shot_fills_its_own_tile_while_the_batch_runs(app_url, page, hold_step):
    """Issue 27: during a batch a finished shot's thumbnail reaches its tile by itself (the live component's
    JSON, put in place by its script), not by re-sending the gallery; the gallery comes whole at the end."""
    from diffusers import FlowMapEulerDiscreteScheduler

    from studio.jobs.shot_rules import board_store

    url, studio = app_url
    boards = board_store(studio.history)
    board = boards.create("live tiles", preview_policy="draft")  # 2 steps a call
    for i in range(3):
        boards.add_shot(board.id, f"{PROMPT}, take {i}", seed=i)
    hold = hold_step(FlowMapEulerDiscreteScheduler, at=5)  # shot 1 (one or two calls of 2 steps) is done by then
    page.goto(url)
    page.get_by_role("tab", name="Storyboard").click()
    page.wait_for_function("document.querySelectorAll('#board-gallery .thumbnail-item').length === 3")
    page.click("#board-preview-all")
    live = "[...document.querySelectorAll('#board-gallery .thumbnail-item img')].filter(i => i.src.startsWith('data:'))"
    page.wait_for_function(f"{live}.length >= 1", timeout=120_000)
    assert hold.reached.wait(60) and not hold.release.is_set()  # the batch is still running
    assert page.inner_text("#board-gallery .gallery-item:nth-of-type(1) .caption-label") == "#1 preview"
    assert "Done" not in page.inner_text("#board-status")
    hold.release.set()
    page.wait_for_selector("#board-status:has-text('✓ Done')", timeout=180_000)
    page.wait_for_function(f"{live}.length === 0")  # the whole gallery, sent once at the end, took their place
    captions = [page.inner_text(f"#board-gallery .gallery-item:nth-of-type({i}) .caption-label") for i in (1, 2, 3)]
    assert captions == ["#1 preview", "#2 preview", "#3 preview"]
