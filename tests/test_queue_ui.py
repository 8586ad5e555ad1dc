"""Renders from the browser are jobs in the studio's queue: the queue-aware cap fires for them, they show in the
Queue tab as they wait, and Cancel takes a waiting one out of the queue."""

import time

import pytest

gradio_client = pytest.importorskip("gradio_client")
from diffusers import FlowMapEulerDiscreteScheduler  # noqa: E402

from conftest import launch_app, page_client  # noqa: E402
from studio.store.queue import QueueStore  # noqa: E402
from studio.ui import queue_tab  # noqa: E402

CAP = "[queue]\nthreshold = 1\nmax_steps = 1\n"


def render_args(prompt, seed, steps=2):
    return ("t2v", "t-bidi", prompt, "", None, None, steps, seed, False, "32x32", 9, False, 1)


def _wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition(), "timed out"


@pytest.fixture()
def app(tmp_path, tiny_dirs):
    demo, url, studio = launch_app(tmp_path, tiny_dirs, policies=CAP, concurrency=1)
    yield url, studio
    demo.close()
    studio.close()


def test_the_cap_fires_for_renders_from_the_create_tab(app, hold_step):
    """Four browser renders at 2 steps, threshold 1: the first runs (nothing waits), the second starts with two
    waiting behind it (capped to 1 step), the last two with one and none (not capped)."""
    url, studio = app
    store = QueueStore(studio.history)
    hold = hold_step(FlowMapEulerDiscreteScheduler, at=1)
    clients = [page_client(url) for _ in range(4)]
    jobs = [clients[0].submit(*render_args("capped 0", 0), api_name="/render")]
    assert hold.reached.wait(60)  # the first render runs, held at its first step
    for i in (1, 2, 3):  # one at a time, so the queue's order is known
        jobs.append(clients[i].submit(*render_args(f"capped {i}", i), api_name="/render"))
        _wait_for(lambda: store.waiting() == i)
    shown = queue_tab.rows(studio, None)  # what the Queue tab shows now
    assert [(r[1], r[2], r[3]) for r in shown] == [("running", "", "create")] + [("queued", k, "create")
                                                                                 for k in (1, 2, 3)]
    hold.release.set()
    for job in jobs:
        job.result(timeout=120)
    rows = {r["prompt"]: r for r in studio.history.search(text="capped", limit=10)}
    assert [(rows[f"capped {i}"]["steps"], rows[f"capped {i}"]["capped"]) for i in range(4)] == \
        [(2, 0), (1, 1), (2, 0), (2, 0)]
    assert len(rows) == 4 and {j["state"] for j in store.list()} == {"done"}


def test_cancel_takes_a_waiting_browser_render_out_of_the_queue(app, hold_step):
    url, studio = app
    store = QueueStore(studio.history)
    hold = hold_step(FlowMapEulerDiscreteScheduler, at=1)
    first, second = page_client(url), page_client(url)
    running = first.submit(*render_args("runs first", 0), api_name="/render")
    assert hold.reached.wait(60)
    waiting = second.submit(*render_args("waits then cancelled", 1), api_name="/render")
    _wait_for(lambda: store.waiting() == 1)
    second.predict(api_name="/cancel")  # that session's Cancel button
    _wait_for(lambda: store.waiting() == 0)
    waiting.result(timeout=60)
    hold.release.set()
    running.result(timeout=60)
    states = {j["job"]["request"]["prompt"]: j["state"] for j in store.list()}
    assert states == {"runs first": "done", "waits then cancelled": "cancelled"}
    assert [r["prompt"] for r in studio.history.search(limit=10)] == ["runs first"]  # it never made a row
    assert any("Cancelled" in str(o) for o in waiting.outputs())  # the waiting client was told
