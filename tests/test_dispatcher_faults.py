"""The smaller defects of issue 22 (item 7): the dispatcher outlives any error but a closed database, and says so
with a traceback; a bug is an "internal error", never bad input; a follower hears one end; `queue add` checks a
job and pins its seed; an SQLite without UPDATE ... RETURNING is refused in one line."""

import logging
import sqlite3
import threading
import time
from types import SimpleNamespace

import pytest

from studio.jobs import dispatcher as dispatcher_module
from studio.jobs import following as jobs
from studio.jobs import kinds
from studio.cli.commands import main
from studio.jobs.dispatcher import Dispatcher, JobStream
from studio.errors import InvalidRequest, StudioError
from studio.engine.events import Cancelled
from studio.store.history import HistoryStore, check_sqlite
from studio.store.queue import QueueStore


@pytest.fixture()
def bare(tmp_path):
    """A dispatcher on a bare store: no engine (the tests stop it before a render)."""
    history = HistoryStore(tmp_path / "history.db")
    studio = SimpleNamespace(history=history, engine=SimpleNamespace(executor=None))
    yield Dispatcher(studio, slots=1)
    history.close()


def _job():
    return {"request": {"prompt": "x", "steps": 1, "seed": 0}, "policy": None}


def test_the_loop_survives_any_error_but_a_closed_database(bare, monkeypatch, caplog):
    monkeypatch.setattr(dispatcher_module, "POLL_S", 0.01)
    errors = [sqlite3.ProgrammingError("Error binding parameter 1: type 'dict' is not supported"),
              TypeError("a bug"), None, sqlite3.ProgrammingError("Cannot operate on a closed database.")]
    calls = []

    def fill():
        calls.append(1)
        error = errors[min(len(calls), len(errors)) - 1]
        if error is not None:
            raise error
        return []

    monkeypatch.setattr(bare, "_fill", fill)
    with caplog.at_level(logging.INFO, logger="studio.jobs.dispatcher"):
        bare.start()
        bare._thread.join(30)
    assert not bare._thread.is_alive() and len(calls) == 4  # it went on after the first two, stopped at the last
    traced = [r for r in caplog.records if r.exc_info]
    assert [type(r.exc_info[1]).__name__ for r in traced] == ["ProgrammingError", "TypeError"]
    assert "closed" in caplog.records[-1].getMessage() and not caplog.records[-1].exc_info


def test_a_programming_error_is_an_internal_error_with_a_traceback(bare, monkeypatch, caplog):
    jid = bare.store.add(_job())
    monkeypatch.setattr(kinds.RenderJob, "plan", lambda *a: (_ for _ in ()).throw(TypeError("unhashable: 'list'")))
    with caplog.at_level(logging.ERROR, logger="studio.jobs.dispatcher"):
        [job] = bare.run_pending()
    assert job["id"] == jid and job["state"] == "failed"
    assert job["error"].startswith("Internal error (TypeError: unhashable: 'list')") and "not your input" in job["error"]
    assert any(r.exc_info and isinstance(r.exc_info[1], TypeError) for r in caplog.records)
    bad = bare.store.add(_job())  # bad input stays bad input: its own message, no traceback
    monkeypatch.setattr(kinds.RenderJob, "plan", lambda *a: (_ for _ in ()).throw(InvalidRequest({"steps": "1-128"})))
    caplog.clear()
    [job] = bare.run_pending()
    assert job["id"] == bad and job["error"] == "Invalid request - steps: 1-128" and not caplog.records


def test_render_events_and_queue_add_say_internal_error_for_a_bug(monkeypatch, caplog):
    monkeypatch.setattr(jobs, "queue_job", lambda *a, **k: (_ for _ in ()).throw(TypeError("a bug")))
    with caplog.at_level(logging.ERROR):
        [event] = list(jobs.render_events(None, _job()))
    assert event["type"] == "error" and event["message"].startswith("Internal error (TypeError: a bug)")
    assert any(r.exc_info for r in caplog.records)
    from studio.ui import owner_api

    monkeypatch.setattr(jobs, "render_job", lambda *a: (_ for _ in ()).throw(KeyError("oops")))
    [event] = list(owner_api._queue_add(None, _job()))
    assert event["type"] == "error" and event["message"].startswith("Internal error (KeyError")


@pytest.mark.parametrize("job", [{"preview": "4"}, {"preview": True}, {"compare": 5}, {"compare": [1, None]}])
def test_bad_budgets_are_bad_input_not_a_type_error(job):
    with pytest.raises(InvalidRequest):
        kinds.check_budgets(job)


def test_a_follower_hears_one_cancelled(bare, monkeypatch):
    """A job cancelled by another thread (the owner API) while a follower looks: told by the dispatcher and seen
    finished in the store, it still ends once."""
    monkeypatch.setattr(dispatcher_module, "PLACE_S", 0.0)
    stream = JobStream(bare)
    jid = stream.submit(_job(), source="cli")
    bare.store.cancel(jid)  # as Dispatcher.cancel does: the store first, then the followers ...
    bare._emit(jid, Cancelled(0, None))
    events = []

    def follow():
        events.extend(stream.events())

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.5)  # ... the follower looks at the store meanwhile and finds the job cancelled
    bare._done(jid)  # ... then the dispatcher ends the job's listeners
    follower.join(10)
    assert [type(e).__name__ for e in events] == ["Cancelled"]


def test_queue_add_without_a_studio_checks_the_job_and_pins_its_seed(tmp_path, models_file, capsys):
    data = ["--data-dir", str(tmp_path / "data"), "--models-file", str(models_file), "--model", "t-bidi"]
    assert main(["queue", "add", *data, "--prompt", "no seed given", "--steps", "1"]) == 0
    jid = capsys.readouterr().out.strip()
    history = HistoryStore(tmp_path / "data" / "history.db")
    try:
        job = QueueStore(history).get(jid)
        assert isinstance(job["job"]["request"]["seed"], int)  # a re-run renders the same clip
        assert job["plan"] == {"kind": "single", "budgets": [1]}
        assert main(["queue", "add", *data, "--prompt", "too big", "--steps", "1", "--frames", "100000"]) == 2
        assert "frames" in capsys.readouterr().err
        assert main(["queue", "add", *data[:4], "--model", "no-such-model", "--prompt", "x"]) == 2
        assert "no-such-model" in capsys.readouterr().err
        assert [j["id"] for j in QueueStore(history).list()] == [jid]  # nothing else was queued
    finally:
        history.close()


def test_an_sqlite_without_returning_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    import app

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    assert app.main(["--data-dir", str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3.31.1" in err[0] and "3.35" in err[0], err
    assert not (tmp_path / "history.db").exists()
    with pytest.raises(StudioError, match="3.35"):  # the CLI's studio too (it prints the message, exits 2)
        check_sqlite()
