"""Farm faults are retries, never cancels (issue 22, items 6 and 7): a worker killed mid-render re-runs its
unfinished budgets, on the restarted actor too; only the studio's cancel ends a render cancelled; a worker takes its
next job only after its actor finished the last; the memory check is the worker's, not the studio's.

The shared two-worker farm of conftest.py; tiny models."""

import os
import signal
import sqlite3
import threading
import time

import pytest

ray = pytest.importorskip("ray")

from studio.models import memory  # noqa: E402
from studio.engine.cancel import CancelToken  # noqa: E402
from studio.engine.denoise import DenoiseJob, ModelRef  # noqa: E402
from studio.engine.render import Progress, RenderRequest, Result  # noqa: E402


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_busy_worker_killed_while_the_other_is_busy_retries_and_every_job_ends_done(farm_studio):
    """Six jobs queued, both workers busy, one SIGKILLed: its job runs its unfinished budget again (on the other
    worker or the restarted actor) and every job ends done, none "Cancelled by the user."; one row per (job,
    budget)."""
    studio, farm = farm_studio
    dispatcher = studio.start_dispatcher()
    jids = [dispatcher.submit({"request": {"prompt": f"job {i}", "steps": 48 if i < 2 else 6, "seed": i,
                                           "model": "t-far"}, "preview": 1, "policy": None}, source="cli")
            for i in range(6)]
    store = dispatcher.store
    busy = _wait(lambda: [w for w in farm._workers if w.busy] if sum(
        (store.get(j)["progress"] or 0) > 0 for j in jids) >= 2 and all(w.busy for w in farm._workers) else None,
        120, "two jobs rendering on both workers")
    os.kill(ray.get(busy[0].actor.info.remote())["pid"], signal.SIGKILL)
    _wait(lambda: all(store.get(j)["state"] in ("done", "failed", "cancelled") for j in jids), 240, "every job")
    jobs = [store.get(j) for j in jids]
    assert [j["state"] for j in jobs] == ["done"] * 6, [(j["state"], j["error"]) for j in jobs]
    with sqlite3.connect(studio.settings.history_path) as db:
        rows = db.execute("SELECT plan_id, budget_index, status FROM renders").fetchall()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(rows) == sorted((j, b, "ok") for j in jids for b in (0, 1))  # one row per (job, budget)


def test_an_abandoned_attempt_frees_its_worker_only_when_its_stream_ended(farm_studio, monkeypatch):
    """The engine stops reading a worker's events (here: writing the preview fails): the worker is cancelled and
    released by the drain of its stream, not at once, so no second render starts on its GPU meanwhile."""
    studio, farm = farm_studio
    released = []
    real = farm._release
    monkeypatch.setattr(farm, "_release", lambda w: (released.append(threading.current_thread().name), real(w)))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(studio.engine, "_finish_budget", broken)
    events = list(studio.engine.render(RenderRequest(prompt="abandoned", seed=2, steps=128), _refine()))
    assert type(events[-1]).__name__ == "Failed"
    _wait(lambda: released, 60, "the worker's release")
    assert released == ["farm-drain"]
    _wait(lambda: not any(w.busy for w in farm._workers), 60, "every worker free")  # (an earlier test's may drain)


def _refine():
    from studio.engine.request import Plan

    return Plan.refine(1, 128)


def test_a_worker_renders_one_job_at_a_time(farm_studio):
    """Two renders sent to one actor at once (max_concurrency lets its cancel through): the second starts only
    after the first ended."""
    studio, farm = farm_studio
    req, _ = studio.engine.validate(RenderRequest(prompt="one at a time", seed=4, steps=8, model="t-far"))
    work = DenoiseJob(ModelRef.by_id(req.model), studio.engine.spec_for(req), req, (8,), None, False, False,
                      CancelToken())
    actor = farm._workers[0].actor
    with farm._free:  # keep the farm away from this worker meanwhile
        farm._workers[0].busy = True
    try:
        streams = [actor.render.remote(f"direct-{i}", work) for i in range(2)]
        order = []

        def read(i):
            for ref in streams[i]:
                order.append((i, type(ray.get(ref)).__name__))

        threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        farm._release(farm._workers[0])
    firsts = [i for i, _ in order]
    assert sorted(firsts) == firsts or sorted(firsts, reverse=True) == firsts, order  # never interleaved


def test_the_memory_check_is_the_workers_not_the_studios(farm_studio, monkeypatch):
    """A studio whose own device has no room (a GPU-less head) still renders on a farm whose workers have it."""
    studio, farm = farm_studio
    monkeypatch.setattr(memory, "available_bytes", lambda device: 0)  # this process only: not the workers
    events = list(studio.engine.render(RenderRequest(prompt="fits there", seed=3, steps=1, model="t-far")))
    assert isinstance(events[-1], Result), events[-1]
    assert not any(isinstance(e, Progress) and False for e in events)
