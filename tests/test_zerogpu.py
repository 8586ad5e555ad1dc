"""ZeroGPU as it really runs: the GPU function in a process forked for the call, its arguments and yields pickled.

Only the GPU work (denoise.run) may go there. The history and the files are written by the studio process,
Cancel set in the studio process stops the worker within a step, and the frames come back."""

import multiprocessing
import os
import pickle
import sys
import threading
import types
from pathlib import Path

import pytest

from studio.engine.render import Plan, RenderRequest

_END = "__end__"


def forking_spaces(ran_in: list) -> types.ModuleType:
    """A stand-in for the ``spaces`` package: GPU(duration) runs the function in a forked child, as ZeroGPU does."""
    fake = types.ModuleType("spaces")

    def GPU(duration=60):
        def decorate(fn):
            def wrapper(*args, **kwargs):
                payload = pickle.dumps((args, kwargs))  # ZeroGPU pickles the call: so must we
                ctx = multiprocessing.get_context("fork")
                receive, send = ctx.Pipe(duplex=False)

                def child():
                    a, k = pickle.loads(payload)
                    send.send(("pid", os.getpid()))
                    try:
                        for item in fn(*a, **k):
                            send.send(("item", pickle.dumps(item)))
                    finally:
                        send.send((_END, None))

                proc = ctx.Process(target=child, daemon=True)
                proc.start()
                try:
                    while True:
                        tag, value = receive.recv()
                        if tag == "pid":
                            ran_in.append(value)
                        elif tag == _END:
                            break
                        else:
                            yield pickle.loads(value)
                finally:
                    proc.join(timeout=30)
            return wrapper
        return decorate

    fake.GPU = GPU
    return fake


@pytest.fixture()
def zero_gpu(monkeypatch, studio):
    """The studio with a forking ``spaces``; records the pid of every history write."""
    ran_in: list[int] = []
    monkeypatch.setitem(sys.modules, "spaces", forking_spaces(ran_in))
    writers: list[int] = []
    for name in ("start", "finish"):
        original = getattr(studio.history, name)

        def recorded(*a, _original=original, **k):
            writers.append(os.getpid())
            return _original(*a, **k)

        monkeypatch.setattr(studio.history, name, recorded)
    return studio, ran_in, writers


def test_gpu_work_runs_in_the_forked_worker_and_the_studio_writes_history_and_files(zero_gpu, monkeypatch):
    studio, ran_in, writers = zero_gpu
    with monkeypatch.context() as m:  # first in this process (also warms the model and its preview projection)
        m.delitem(sys.modules, "spaces")
        local = studio.engine.run(RenderRequest(prompt="a forked fox", seed=3), Plan.single(2))[0]
        list(studio.engine.render(RenderRequest(prompt="a warm-up", seed=0, steps=1), previews=True))
    assert not ran_in
    writers.clear()
    events = list(studio.engine.render(RenderRequest(prompt="a forked fox", seed=3), Plan.refine(1, 2),
                                       previews=True))
    results = [e for e in events if e.kind == "result"]
    assert len(ran_in) == 1 and ran_in[0] != os.getpid()  # one GPU call for the plan, in another process
    assert [r.steps for r in results] == [1, 2]
    assert writers and set(writers) == {os.getpid()}  # every history write from the studio process
    for r in results:
        assert r.frames.shape == (9, 32, 32, 3) and Path(r.video_path).is_file()
        assert studio.history.get(r.record_id)["status"] == "ok"
    assert [e.kind for e in events].count("preview") >= 3  # streamed from the worker as they happened
    assert (local.frames == results[1].frames).all()  # the same frames as without ZeroGPU


def test_cancel_in_the_studio_process_stops_the_forked_worker(zero_gpu, monkeypatch):
    studio, ran_in, _ = zero_gpu
    from studio.engine import cancel as cancel_mod

    flags = Path(cancel_mod.FLAG_DIR)
    studio.models.get("t-far")
    transformer = studio.models.get("t-far").pipe.transformer
    forward = transformer.forward
    calls = {"n": 0}

    def gated(*a, **k):  # inherited by the fork: from the 2nd call on, wait for a cancel flag to appear
        calls["n"] += 1
        if calls["n"] >= 2:
            import time
            deadline = time.monotonic() + 20
            while not any(flags.glob(f"{os.getppid()}-*")) and time.monotonic() < deadline:
                time.sleep(0.005)
        return forward(*a, **k)

    monkeypatch.setattr(transformer, "forward", gated)
    cancel = threading.Event()
    kinds = []
    for event in studio.engine.render(RenderRequest(prompt="a cancelled fox", seed=0, steps=8), cancel=cancel):
        kinds.append(event.kind)
        if event.kind == "progress":
            cancel.set()
    assert kinds[-1] == "cancelled" and "result" not in kinds
    assert ran_in and ran_in[0] != os.getpid()
    rows = studio.history.search(text="cancelled fox")
    assert [r["status"] for r in rows] == ["cancelled"]
    assert not any(flags.glob(f"{os.getpid()}-*"))  # the flag file is cleaned up


def test_a_queued_render_runs_in_its_submitters_context(studio, monkeypatch):
    """The dispatcher's thread runs a job in the submitter's context variables, where Gradio keeps the request
    that ``spaces.GPU`` reads to charge the visitor's quota (a job with no such context would run as nobody)."""
    import contextvars

    from studio.jobs import following as jobs
    from studio.engine import space

    visitor = contextvars.ContextVar("visitor", default=None)
    seen, original = [], space.run_on_gpu

    def spy(fn, work, *args, **kwargs):
        seen.append(visitor.get())
        return original(fn, work, *args, **kwargs)

    monkeypatch.setattr(space, "run_on_gpu", spy)
    visitor.set("the visitor who pressed Render")
    _, _, _, stream = jobs.queue_job(studio, {"request": {"prompt": "whose quota", "steps": 1, "seed": 0}},
                                     source="create")
    assert [e.kind for e in stream.events()][-1] == "result"
    assert seen == ["the visitor who pressed Render"]
