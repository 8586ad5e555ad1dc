"""Review fixes in studio/jobs/dispatcher.py: an unexpected error finishes the job as failed, progress is written at
most every CANCEL_CHECK_S, and the store's cancel flag is watched while a job runs, progress or not."""

from studio.jobs import dispatcher as dispatcher_mod
from studio.jobs.dispatcher import Dispatcher
from studio.engine.events import Progress


def _job(prompt="a queued render"):
    return {"request": dict(prompt=prompt, steps=1, seed=0), "policy": None}


def _progress(i: int) -> Progress:
    return Progress(budget_index=0, steps=1, step=i + 1, total=5, fraction=(i + 1) / 5)


def test_an_unexpected_error_finishes_the_job_as_failed(studio, monkeypatch):
    def broken(*a, **k):
        yield _progress(0)
        raise RuntimeError("the executor went away")

    monkeypatch.setattr(studio.engine, "render", broken)
    dispatcher = Dispatcher(studio)
    jid = dispatcher.submit(_job(), source="cli")
    (job,) = dispatcher.run_pending()
    assert job["id"] == jid and job["state"] == "failed"
    assert "RuntimeError: the executor went away" in job["error"]


def test_progress_is_written_first_then_at_most_every_half_second(studio, monkeypatch):
    """The progress `queue list` shows is a write per CANCEL_CHECK_S at most, not one per step."""
    clock = {"now": 100.0}
    monkeypatch.setattr(dispatcher_mod.time, "monotonic", lambda: clock["now"])

    def render(*a, **k):
        for i, t in enumerate((0.0, 0.1, 0.2, 0.6, 0.7, 1.2)):
            clock["now"] = 100.0 + t
            yield _progress(i)

    monkeypatch.setattr(studio.engine, "render", render)
    dispatcher = Dispatcher(studio)
    writes = []
    real = dispatcher.store.set_progress
    monkeypatch.setattr(dispatcher.store, "set_progress", lambda jid, f: writes.append(clock["now"]) or real(jid, f))
    dispatcher.submit(_job(), source="cli")
    (job,) = dispatcher.run_pending()
    assert job["state"] == "done"
    assert writes == [100.0, 100.6, 101.2]


def test_a_cancel_from_another_process_stops_a_job_before_its_first_step(studio, monkeypatch):
    """`queue cancel ID` while the job's model loads (no progress yet): the flag watcher sets its event."""
    import threading

    from studio.engine.events import Cancelled
    from studio.store.history import HistoryStore
    from studio.store.queue import QueueStore

    loading = threading.Event()

    def render(req, plan, cancel, **k):  # "loads" until cancelled
        loading.set()
        assert cancel.wait(10), "the cancel never reached the loading job"
        yield Cancelled(0, None)

    monkeypatch.setattr(studio.engine, "render", render)
    dispatcher = Dispatcher(studio)
    jid = dispatcher.submit(_job(), source="cli")
    runner = threading.Thread(target=dispatcher.run_pending)
    runner.start()
    assert loading.wait(10)
    other = HistoryStore(studio.settings.history_path)
    try:
        assert QueueStore(other).cancel(jid) == "cancelling"
    finally:
        other.close()
    runner.join(10)
    assert dispatcher.store.get(jid)["state"] == "cancelled"
