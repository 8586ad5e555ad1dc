"""The render farm on Ray (studio/farm/ray_farm.py): workers as actors, routing, faults, cancel, bad input.

One Ray instance for the whole file (start-up costs seconds); tiny models; two CPU workers."""

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from studio.engine import media  # noqa: E402
from studio.jobs.boards import BoardRunner  # noqa: E402
from studio.errors import StudioError  # noqa: E402
from studio.farm.ray_farm import FarmError, RayFarm, check_options  # noqa: E402
from studio.engine.render import Cancelled, Preview, Progress, RenderRequest, Result, Status  # noqa: E402
from studio.app.services import Studio  # noqa: E402
from conftest import _GONE  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker_of(row: dict) -> str:
    timings = row["timings"] if isinstance(row["timings"], dict) else json.loads(row["timings"])
    return timings.get("worker")


def _integrity(studio) -> str:
    with sqlite3.connect(studio.settings.history_path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def test_a_six_shot_board_previews_and_finals_on_both_workers_through_the_queue(farm_studio):
    """One batch per stage, as the Storyboard tab and `board run` start it: every shot a queued job, two at once
    (one per worker); exactly one history row per render; every mp4 readable; each job names its worker."""
    studio, farm = farm_studio
    runner = BoardRunner(studio)
    board = runner.boards.create("farm", model="t-far", preview_policy="preview", final_policy="preview")
    for i in range(6):
        runner.boards.add_shot(board.id, f"shot {i}", seed=i, approved=True)
    results: list = []
    for stage in ("preview", "final"):
        events = list(runner.run(board.id, stage))
        assert events[-1].kind == "batch_done" and not events[-1].failed and len(events[-1].rendered) == 6
        results += [e.event for e in events[:-1] if isinstance(e.event, Result)]
    assert studio.dispatcher().capacity == farm.size == 2
    rows = [studio.history.get(r.record_id) for r in results]
    assert len({r.record_id for r in results}) == 12 and all(row["status"] == "ok" for row in rows)
    with sqlite3.connect(studio.settings.history_path) as db:
        assert db.execute("SELECT count(*) FROM renders").fetchone()[0] == 12  # one row per render, no more
        jobs = db.execute("SELECT worker, started_at, finished_at, source FROM jobs").fetchall()
    workers = {_worker_of(row) for row in rows}
    assert len(workers) == 2 and None not in workers  # both workers rendered, and each row names its worker
    assert {w for w, *_ in jobs} == workers and {s for *_, s in jobs} == {"storyboard"}
    starts = sorted((a, b) for _, a, b, _ in jobs)
    assert any(nxt[0] < cur[1] for cur, nxt in zip(starts, starts[1:]))  # two jobs ran at the same time
    for r in results:
        frames, _ = media.read_video(r.video_path)
        assert frames.shape[0] == r.frames.shape[0]
    shots = runner.boards.get(board.id).shots
    assert all(s.preview_id and s.final_id for s in shots)  # the dispatcher put each render on its shot


def test_events_in_order_and_frames_as_local(farm_studio, settings):
    """The same events, in the same order, as the render in this process; and the same frames."""
    studio, farm = farm_studio
    req = RenderRequest(prompt="order", seed=3, steps=3)

    def story(events):
        return [(type(e).__name__, getattr(e, "step", None)) for e in events if not isinstance(e, Status)]

    events = list(studio.engine.render(req, previews=True))
    local = Studio.open(dataclasses.replace(settings, data_dir=settings.data_dir.parent / "local"))
    try:
        expected = list(local.engine.render(req, previews=True))
    finally:
        local.close()
    assert story(events) == story(expected)
    assert story(events)[-1] == ("Result", None) and ("Preview", 1) in story(events) and ("Progress", 3) in story(events)
    assert np.abs(events[-1].frames.astype(int) - expected[-1].frames.astype(int)).max() <= 2


def test_worker_killed_mid_render_completes_on_the_other(farm_studio):
    studio, farm = farm_studio
    events = studio.engine.render(RenderRequest(prompt="kill", seed=5, steps=128))
    seen = []
    for event in events:
        seen.append(event)
        if isinstance(event, Progress):
            break
    busy = [w for w in farm._workers if w.busy]
    assert len(busy) == 1
    victim = ray.get(busy[0].actor.info.remote())
    os.kill(victim["pid"], signal.SIGKILL)
    seen += list(events)
    results = [e for e in seen if isinstance(e, Result)]
    assert len(results) == 1, [e for e in seen if not isinstance(e, (Progress, Preview))]
    assert any(isinstance(e, Status) and "died mid-render" in e.message for e in seen)
    row = studio.history.get(results[0].record_id)
    assert row["status"] == "ok" and _worker_of(row) != victim["label"]
    with sqlite3.connect(studio.settings.history_path) as db:
        assert db.execute("SELECT count(*) FROM renders").fetchone()[0] == 1
    assert _integrity(studio) == "ok"
    frames, _ = media.read_video(results[0].video_path)
    assert len(frames) == 9


def test_past_the_retry_limit_the_render_fails_saying_why(farm_studio):
    studio, farm = farm_studio
    farm.retries = 0
    events = studio.engine.render(RenderRequest(prompt="kill", seed=6, steps=128))
    for event in events:
        if isinstance(event, Progress):
            break
    os.kill(ray.get(next(w for w in farm._workers if w.busy).actor.info.remote())["pid"], signal.SIGKILL)
    last = list(events)[-1]
    assert type(last).__name__ == "Failed" and "died mid-render" in last.message, last
    assert studio.history.get(last.record_id)["status"] == "failed"
    assert _integrity(studio) == "ok"


def test_cancel_reaches_the_worker_within_a_step(farm_studio):
    studio, farm = farm_studio
    cancel = threading.Event()
    after = 0
    events = []
    for event in studio.engine.render(RenderRequest(prompt="stop", seed=1, steps=128), cancel=cancel):
        events.append(event)
        after += isinstance(event, Progress) and cancel.is_set()
        if isinstance(event, Progress):
            cancel.set()
    assert isinstance(events[-1], Cancelled)
    assert after <= 3  # the steps already in flight when the cancel crossed, not the 127 left
    assert studio.history.get(events[-1].record_id)["status"] == "cancelled"


def test_bad_farm_input_is_refused_clearly(settings, ray_instance):
    with pytest.raises(FarmError, match="--workers must be 1 or more"):
        check_options("ray", 0, None)
    with pytest.raises(FarmError, match="need --farm ray"):
        check_options("local", 2, None)
    with pytest.raises(FarmError, match="no --workers N was given"):
        RayFarm(settings).start()  # the shared instance has no GPU
    with pytest.raises(FarmError, match="Could not reach the Ray cluster at 127.0.0.1:1"):
        RayFarm(settings, address="127.0.0.1:1")._init(ray)
    assert issubclass(FarmError, StudioError)


def test_cli_bad_farm_flags_one_line(tmp_path):
    env = dict(os.environ, STUDIO_DATA_DIR=str(tmp_path))
    for flags, message in ((["--workers", "0"], "--workers must be 1 or more"),
                           (["--ray-address", "127.0.0.1:1"], "Could not reach the Ray cluster at 127.0.0.1:1")):
        out = subprocess.run([sys.executable, "-m", "studio", "render", "--standalone", "--prompt", "x",
                              "--farm", "ray", *flags], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_local_path_imports_no_ray(tmp_path):
    code = ("import sys; from studio.app.services import Studio; from studio.farm import ray_farm as farm; "
            "s = Studio.open(data_dir=sys.argv[1]); farm.attach(s); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_model_a_worker_cannot_load_fails_naming_the_node(settings, shared_farm, tmp_path):
    with open(settings.models_file, "a", encoding="utf-8") as f:  # the studio knows the model too
        f.write(_GONE.format(root=tmp_path.as_posix()))
    studio = Studio.open(settings)
    studio.engine.executor = shared_farm
    try:
        events = list(studio.engine.render(RenderRequest(prompt="x", model="t-gone", steps=1)))
        labels = [ray.get(w.actor.info.remote())["label"] for w in shared_farm._workers]
        failed = events[-1]
        assert type(failed).__name__ == "Failed" and any(f"(on {label})" in failed.message for label in labels), failed
        assert studio.history.get(failed.record_id)["status"] == "failed"
    finally:
        studio.engine.executor = None
        studio.close()


def test_a_node_added_to_the_cluster_gets_a_worker_and_work(settings):
    """In its own process (its own Ray): ray.cluster_utils.Cluster, a head with 1 CPU, then a 1-GPU node."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "farm_cluster.py"), str(settings.data_dir),
                          str(settings.models_file)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["before"] == 1 and report["after"] == 2
    assert any(" gpu " in (w or "") for w in report["workers"])  # the new node's worker rendered
