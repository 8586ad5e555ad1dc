"""Review fixes in studio/dispatcher.py: an unexpected error finishes the job as failed, and the store's cancel flag
(a SQLite query) is read at the first progress event and then at most every CANCEL_CHECK_S."""

from studio import dispatcher as dispatcher_mod
from studio.dispatcher import Dispatcher
from studio.events import Progress


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


def test_the_cancel_flag_is_read_first_then_at_most_every_half_second(studio, monkeypatch):
    clock = {"now": 100.0}
    monkeypatch.setattr(dispatcher_mod.time, "monotonic", lambda: clock["now"])

    def render(*a, **k):
        for i, t in enumerate((0.0, 0.1, 0.2, 0.6, 0.7, 1.2)):
            clock["now"] = 100.0 + t
            yield _progress(i)

    monkeypatch.setattr(studio.engine, "render", render)
    dispatcher = Dispatcher(studio)
    reads = []
    real = dispatcher.store.cancel_requested
    monkeypatch.setattr(dispatcher.store, "cancel_requested", lambda jid: reads.append(clock["now"]) or real(jid))
    dispatcher.submit(_job(), source="cli")
    (job,) = dispatcher.run_pending()
    assert job["state"] == "done"
    assert reads == [100.0, 100.6, 101.2]
