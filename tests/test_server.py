"""The server side of hardening: many users at once, and what the server lets out.

Everything runs in-process on 127.0.0.1 with the tiny test models (32x32, 9 frames) and
1-2 step renders; HTTP checks use urllib against that local server only.
"""

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from diffusers import FlowMapEulerDiscreteScheduler  # noqa: E402

from conftest import launch_app, page_client  # noqa: E402
from studio.engine import media, space  # noqa: E402
from studio.engine.render import RenderRequest  # noqa: E402
from studio.ui import guard  # noqa: E402
from studio.store.queue import QueueStore  # noqa: E402
from studio.ui.serving import FOLLOWERS, render_concurrency  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 2
UPLOAD_LIMIT_MB = 1


def _launch(root, tiny_dirs, concurrency=CONCURRENCY, space_mode=False, max_upload_mb=UPLOAD_LIMIT_MB):
    return launch_app(root, tiny_dirs, concurrency=concurrency, max_upload_mb=max_upload_mb, space=space_mode)


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_dirs):
    demo, url, studio = _launch(tmp_path_factory.mktemp("server"), tiny_dirs)
    yield demo, url, studio
    demo.close()
    studio.close()


def render_args(prompt, seed, steps=1, mode="t2v", model="t-bidi"):
    return (mode, model, prompt, "", None, None, steps, seed, False, "32x32", 9, False, 1)


def result_info(outputs):
    infos = [o[4] for o in outputs if isinstance(o[4], dict) and o[4].get("role")]
    return infos[-1] if infos else None


def http_get(url):
    """(status, body) of a GET to the local server; errors are answers, not exceptions."""
    assert url.startswith("http://127.0.0.1:")
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def file_url(base, path):
    return f"{base}gradio_api/file={urllib.parse.quote(str(path))}"


# ---- many users ---------------------------------------------------------------------------------
def test_render_queue_uses_the_configured_concurrency(app):
    """Gradio hands up to FOLLOWERS renders to the studio's queue; the studio's dispatcher runs CONCURRENCY."""
    demo, _, studio = app
    assert render_concurrency(demo) == FOLLOWERS
    assert demo._queue.default_concurrency_limit == FOLLOWERS
    assert studio.dispatcher().capacity == CONCURRENCY


def _told_their_place(jobs, expected: list[str], timeout: float = 60) -> list[str]:
    """The place each client was last told ("3rd of 6"), sorted, once it includes ``expected`` (or time is up:
    places are told within a second of a change; a client whose render runs was last told "next")."""
    deadline, told = time.monotonic() + timeout, []
    while time.monotonic() < deadline and not set(expected) <= set(told):
        time.sleep(0.05)
        told = []
        for job in jobs:
            said = [m.group(1) for o in job.outputs() for m in [re.search(r"render queue: (.+?)\.", str(o))] if m]
            told += said[-1:]
        told.sort()
    return told


def test_eight_clients_at_once_each_get_their_own_render(app, hold_step):
    demo, url, studio = app
    n = 8
    asks = [(f"visitor {i} {uuid.uuid4().hex[:6]} a red circle moving left", 1000 + i, 1 + i % 2) for i in range(n)]
    clients = [page_client(url) for _ in range(n)]  # one session each, like 8 browsers
    before = studio.history.count()
    assert studio.models.load_counts["t-bidi"] == 0  # nothing loaded yet: 8 renders race for the first load
    # the first render to reach a denoising step waits there: the queue holds still while we read it
    hold = hold_step(FlowMapEulerDiscreteScheduler, at=1, timeout=240)
    jobs = [c.submit(*render_args(p, s, steps), api_name="/render") for c, (p, s, steps) in zip(clients, asks)]
    assert hold.reached.wait(240), "no render reached its first step"
    # nothing moves until released: every render reached the studio's queue, two run, six wait in order
    store, places, deadline = QueueStore(studio.history), list(range(1, n - CONCURRENCY + 1)), time.monotonic() + 60
    seen_waiting = [j["position"] for j in store.list(states=("queued",))]
    while seen_waiting != places and time.monotonic() < deadline:
        time.sleep(0.02)
        seen_waiting = [j["position"] for j in store.list(states=("queued",))]
    places_told = [f"{k} of {n - CONCURRENCY}" for k in ("2nd", "3rd", "4th", "5th", "6th")]
    told = _told_their_place(jobs, places_told + [f"next ({n - CONCURRENCY} waiting)"])
    hold.release.set()
    for (prompt, seed, steps), job in zip(asks, jobs):
        job.result(timeout=60)
        info = result_info(job.outputs())
        assert info and info["seed"] == seed, job.outputs()[-2:]
        meta = media.read_metadata(info["video"])  # what the file itself says it is
        assert (meta["prompt"], meta["seed"], meta["steps"]) == (prompt, seed, steps)
        row = studio.history.get(info["record_id"])
        assert (row["prompt"], row["seed"], row["status"]) == (prompt, seed, "ok")
    assert len({result_info(j.outputs())["video"] for j in jobs}) == n
    assert studio.models.load_counts["t-bidi"] == 1  # the model loaded once for all eight
    assert studio.history.count() == before + n  # exactly one row per render
    for prompt, _, _ in asks:
        rows = [r for r in studio.history.search(text=prompt.split()[1], limit=100) if r["prompt"] == prompt]
        assert len(rows) == 1
    # with 2 at a time, the other 6 renders waited as jobs in the studio's queue, and their clients were told
    assert seen_waiting == places, seen_waiting
    expected = places_told + [f"next ({n - CONCURRENCY} waiting)"]
    assert set(expected) <= set(told), told  # each waiting client was told its own place
    assert all(t.startswith("next") for t in set(told) - set(expected)), told  # the two now running: "next" then
    jobs_done = store.list(states=("done",))
    assert len(jobs_done) == n and {j["source"] for j in jobs_done} == {"create"}


def test_waiting_browser_sees_its_place_in_the_queue(app, tmp_path, hold_step):
    """Gradio's tracker draws "queue: k/n" over the render's progress anchor; it must be on screen, not clipped.
    The same page then tries an upload over the limit: the browser refuses it with a message."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip playwright is not installed")
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    _, url, studio = app
    blockers = [page_client(url) for _ in range(CONCURRENCY + 2)]
    jobs = []
    # the first blocker holds at its first step until the page has been measured: the page's render waits
    hold = hold_step(FlowMapEulerDiscreteScheduler, at=1, timeout=240)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage"]
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.fill("#prompt textarea", "a fox waiting its turn")
            # fill every render slot and more, and press Render only once someone is already waiting
            jobs += [c.submit(*render_args(f"a long blocker {i}", i, 64, model="t-far"), api_name="/render")
                     for i, c in enumerate(blockers)]
            store, deadline = QueueStore(studio.history), time.monotonic() + 60
            while time.monotonic() < deadline and store.waiting() < 2:  # every slot busy, two blockers wait
                time.sleep(0.02)
            page.click("#render-btn")
            marker = page.locator("#render-progress").get_by_text(re.compile(r"queue: \d+/\d+")).first
            marker.wait_for(state="visible", timeout=30_000)
            text_box = overlay = None  # the tracker is redrawn as the place is told again: measure a steady one
            for _ in range(50):
                text_box = marker.bounding_box(timeout=5_000)
                overlay = page.locator("#render-progress > .wrap").first.bounding_box(timeout=5_000)
                if text_box and overlay:
                    break
                time.sleep(0.05)
            big = tmp_path / "big.png"
            big.write_bytes(b"\0" * (UPLOAD_LIMIT_MB * 1024 * 1024 + 4096))
            page.get_by_role("tab", name="Image → Video").click()
            page.locator("#i2v-image input[type=file]").set_input_files(str(big))
            refused = page.get_by_text(re.compile(r"exceed the maximum allowed size of 1(\.0)? ?Mb", re.I)).first
            refused.wait_for(state="visible", timeout=15_000)
            browser.close()
    finally:
        hold.release.set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(j.done() for j in jobs):
            for client, job in zip(blockers, jobs):  # each blocker stops within a step of starting
                if not job.done():
                    client.predict(api_name="/cancel")
            time.sleep(0.2)
    assert text_box and overlay and overlay["height"] >= text_box["height"] > 0  # drawn, not clipped to 0 px
    assert overlay["y"] <= text_box["y"] + text_box["height"] / 2 <= overlay["y"] + overlay["height"]


# ---- what the server lets out ------------------------------------------------------------------
def test_file_route_serves_renders_and_refuses_everything_else(app, tmp_path):
    _, url, studio = app
    res = studio.engine.run(RenderRequest(prompt="a served fox", seed=3, steps=1))[0]
    status, body = http_get(file_url(url, res.video_path))
    assert status == 200 and len(body) == Path(res.video_path).stat().st_size  # the control: a render is served
    outside = tmp_path / "secret.txt"  # a file outside every allowed folder
    outside.write_text("not for you")
    refused = ["/etc/passwd", outside, studio.settings.history_path,  # the database would list every session
               Path(studio.settings.data_dir) / "renders" / ".." / "history.db",
               Path(studio.settings.data_dir) / "renders", ROOT / "app.py", ROOT / "pyproject.toml"]
    for path in refused:
        status, body = http_get(file_url(url, path))
        assert status == 403, (path, status)
        assert b"root:" not in body and b"not for you" not in body


def test_history_row_pointing_elsewhere_is_not_served(app, tmp_path):
    _, url, studio = app
    client = page_client(url)
    prompt = "an edited row about a purple fox"
    client.submit(*render_args(prompt, 5), api_name="/render").result(timeout=120)
    (row,) = [r for r in studio.history.search(text="purple fox") if r["prompt"] == prompt]
    studio.history.table.update(row["id"], {"video_path": "/etc/passwd", "thumb_path": "/etc/passwd"})
    video, details = client.predict(row["id"], api_name="/history_details")
    assert not video or not (video.get("video") if isinstance(video, dict) else video)
    assert "outside the studio's renders folder" in details and "root:" not in details
    items, _ = client.predict("purple fox", "Any", "Any", "Any", "Any", False, api_name="/history_search")
    assert items and all("passwd" not in json.dumps(item) for item in items)  # a placeholder tile instead
    # the database itself, named by a row, is refused the same way
    studio.history.table.update(row["id"], {"video_path": str(studio.settings.history_path)})
    video, details = client.predict(row["id"], api_name="/history_details")
    assert "outside the studio's renders folder" in details
    # deleting such a row never deletes the file it names
    outside = tmp_path / "precious.mp4"
    outside.write_bytes(b"keep me")
    studio.history.table.update(row["id"], {"video_path": str(outside), "thumb_path": str(outside)})
    assert studio.history.delete(row["id"]) and outside.read_bytes() == b"keep me"


def test_servable_guard():
    roots = [ROOT / "assets" / "examples"]
    example = next(p for p in roots[0].iterdir() if p.is_file() and not p.name.startswith("."))
    assert guard.servable(example, roots) == example.resolve()
    assert guard.servable(roots[0] / ".." / ".." / "app.py", roots) is None
    for bad in ("/etc/passwd", "", None, 42, "a\x00b", str(roots[0])):
        assert guard.servable(bad, roots) is None


def test_symlink_out_of_the_renders_folder_is_refused(app):
    _, url, studio = app
    link = Path(studio.settings.renders_dir) / "evil.mp4"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/etc/passwd")
    try:
        assert guard.servable(link, guard.roots(studio)) is None
        status, body = http_get(file_url(url, link))
        assert status == 403 and b"root:" not in body
    finally:
        link.unlink()


def test_oversized_upload_is_refused_with_a_message(app):
    _, url, _ = app
    config = json.loads(http_get(f"{url}config")[1])
    assert config["max_file_size"] == UPLOAD_LIMIT_MB * 1024 * 1024  # the browser checks this before sending
    boundary = uuid.uuid4().hex
    payload = b"\0" * (UPLOAD_LIMIT_MB * 1024 * 1024 + 4096)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.mp4\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{url}gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    assert status == 413 and "maximum allowed size" in text, (status, text)
    # a small upload still goes through
    small = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"ok.txt\"\r\n"
             f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n").encode()
    req = urllib.request.Request(f"{url}gradio_api/upload", data=small, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def test_space_sessions_cannot_guess_each_others_files(tmp_path, tiny_dirs):
    demo, url, studio = _launch(tmp_path, tiny_dirs, concurrency=1, space_mode=True)
    try:
        owner = page_client(url)  # a visitor renders through the UI
        job = owner.submit(*render_args("a private fox", 1), api_name="/render")
        job.result(timeout=120)
        video = Path(result_info(job.outputs())["video"])
        sid = video.parent.parent.name
        assert space.valid_session(sid) and len(sid) == 32  # renders/<128-bit session>/<day>/<id>.mp4
        assert studio.history.get(result_info(job.outputs())["record_id"])["session"] == sid
        assert http_get(file_url(url, video))[0] == 200  # the owner's link works
        renders = Path(studio.settings.renders_dir)
        day, name = video.parent.name, video.name
        guesses = [renders / day / name, renders / name, renders / ("0" * 32) / day / name,
                   renders / sid, renders / sid / day,  # folders are never listed
                   studio.settings.history_path]  # nor the database that would list the sessions
        for guess in guesses:
            assert http_get(file_url(url, guess))[0] == 403, guess
        assert guard.servable(renders / day / name, guard.roots(studio)) is None
    finally:
        demo.close()
        studio.close()


# ---- defaults and code hygiene ------------------------------------------------------------------
def test_app_defaults_bind_localhost_with_limits():
    import app as app_module

    args = app_module.build_parser().parse_args([])
    assert args.host == "127.0.0.1" and args.share is False
    assert args.concurrency is None and args.max_upload_mb == 200
    args = app_module.build_parser().parse_args(["--concurrency", "3", "--max-upload-mb", "50"])
    assert (args.concurrency, args.max_upload_mb) == (3, 50)
    assert app_module.main(["--concurrency", "0"]) == 2


def test_app_runs_one_render_at_a_time_unless_told(tmp_path, monkeypatch):
    """What ``python app.py`` launches: the render queue's limit, with and without --concurrency."""
    import gradio as gr

    import app as app_module

    from studio.ui import owner_api

    from studio.app.services import Studio

    launched, started = [], []
    start = Studio.start_dispatcher

    def launch(demo, **kw):
        launched.append((render_concurrency(demo), demo._queue.default_concurrency_limit))
        return None, "http://127.0.0.1:9/", None

    def start_dispatcher(studio, **kw):
        started.append(start(studio, **kw).capacity)
        return studio.dispatcher()

    monkeypatch.setattr(Studio, "start_dispatcher", start_dispatcher)

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda demo: None)
    monkeypatch.setattr(owner_api, "serve", lambda server, studio, url, *limit: None)
    assert app_module.main(["--data-dir", str(tmp_path / "one")]) == 0
    assert app_module.main(["--data-dir", str(tmp_path / "three"), "--concurrency", "3"]) == 0
    assert started == [1, 3]  # jobs the studio runs at once
    assert launched == [(FOLLOWERS, FOLLOWERS)] * 2  # renders Gradio hands to the studio's queue at once


def test_sql_only_through_parameters():
    """No SQL string is built from values with f-strings or % outside the known-safe spots."""
    allowed = {  # column names from a fixed tuple, an integer migration number, sqlite-utils' parameterised search
        ('where.append(f"[{column}] = :{column}")'), ('db.execute(f"PRAGMA user_version = {number}")'),
        ('db.conn.execute(f"PRAGMA user_version = {int(number)}")'),
        ('return int(self.db.execute(f"SELECT count(*) FROM ({sql})", {"query": match, **args}).fetchone()[0])'),
        # a table name asserted to be one of two, column names from the code's own dict, "?" placeholders
        ('rows = self.db.execute(f"SELECT id, claimed_by FROM {table} WHERE status = \'running\'").fetchall()'),
        ('self.db.execute(f"UPDATE {table} SET {sets} WHERE id = ? AND status = \'running\'",'),
        ('rows = self.db.execute(f"SELECT state, count(*) FROM jobs WHERE {where} GROUP BY state", args).fetchall()'),
    }
    offenders = []
    for path in (ROOT / "studio").rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            code = line.strip()
            if re.search(r"(execute|rows_where|where=)\s*\(?\s*f[\"']", code) or \
                    re.search(r"(SELECT|UPDATE|DELETE|INSERT)[^\"']*[\"']\s*%", code):
                if code not in allowed:
                    offenders.append(f"{path.relative_to(ROOT)}: {code}")
    assert offenders == []
