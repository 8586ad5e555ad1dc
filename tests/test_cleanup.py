"""Space clean-up: the janitor survives a failed pass, and purges the files nothing else deletes (board inputs,
exports, the CLI's GIFs) once they are past the time to live, keeping fresh ones and inputs a board still uses."""

import os
import sqlite3
import threading
import time

import pytest

from studio.jobs.shot_rules import board_store
from studio.app.cleanup import Janitor, purge_expired, purge_expired_files
from studio.store.history import HistoryStore

SID = "0123456789abcdef0123456789abcdef"
OLD = "2020-01-01T00:00:00.000+00:00"
DAY = 86400


@pytest.fixture()
def store(tmp_path):
    s = HistoryStore(tmp_path / "history.db")
    yield s
    s.close()


def _render(store, renders, name, old):
    video = renders / SID / "2020-01-01" / f"{name}.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"mp4")
    rid = store.start({"prompt": name, "mode": "t2v", "model": "m"}, 1, "p", "single", 0, session=SID)
    store.finish(rid, "ok", video_path=str(video))
    if old:
        store.table.update(rid, {"created_at": OLD})
    return rid, video


def _file(path, age_days=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    stamp = time.time() - age_days * DAY
    os.utime(path, (stamp, stamp))
    return path


def test_a_failed_pass_does_not_stop_the_janitor(store, tmp_path, monkeypatch):
    old, old_video = _render(store, tmp_path / "renders", "old", old=True)
    fresh, _ = _render(store, tmp_path / "renders", "fresh", old=False)
    real_purge, passes, purged = store.purge, [], threading.Event()

    def locked_once(cutoff, **kwargs):
        passes.append(cutoff)
        if len(passes) == 1:
            raise sqlite3.OperationalError("database is locked")
        count = real_purge(cutoff, **kwargs)
        purged.set()
        return count

    monkeypatch.setattr(store, "purge", locked_once)
    janitor = Janitor(store, ttl_hours=24, interval=0.001).start()
    try:
        assert purged.wait(10), "the janitor stopped after its first error"
    finally:
        janitor.stop()
    assert len(passes) >= 2 and janitor.failures >= 1
    assert store.get(old) is None and not old_video.exists() and store.get(fresh) is not None


def test_a_pass_reports_its_error_and_goes_on(store, monkeypatch, caplog):
    janitor = Janitor(store, ttl_hours=24)

    def gone(cutoff, **kwargs):
        raise FileNotFoundError("deleted by the UI at the same moment")

    monkeypatch.setattr(store, "purge", gone)
    assert janitor.run_once() is None and janitor.failures == 1
    assert "clean-up" in caplog.text and "deleted by the UI" in caplog.text
    monkeypatch.undo()
    assert janitor.run_once() == 0 and janitor.failures == 1


def test_expired_inputs_exports_and_gifs_go_fresh_ones_stay(store, tmp_path):
    renders = tmp_path / "renders"
    boards = board_store(store)
    board = boards.create("kept board", session=SID)
    used = _file(renders / SID / "inputs" / "used.png", age_days=3)  # a live board's shot still points at it
    boards.add_shot(board.id, "a shot", mode="i2v", image=str(used))
    expired = [_file(renders / SID / "inputs" / "old.png", 3), _file(renders / SID / "exports" / "b1" / "b.json", 3),
               _file(renders / SID / "exports" / "b1" / "b-finals.mp4", 3),
               _file(renders / SID / "2020-01-01" / "r1.gif", 3), _file(renders / "2020-01-01" / "cli.gif", 3)]
    fresh = [_file(renders / SID / "inputs" / "new.png"), _file(renders / SID / "exports" / "b2" / "b.json"),
             _file(renders / SID / "2020-01-01" / "r2.gif")]
    history_owned = _file(renders / SID / "2020-01-01" / "r3.mp4", 3)  # a render's video: History's to purge
    assert purge_expired_files(renders, ttl_hours=24, keep=boards.input_files()) == len(expired)
    assert not any(p.exists() for p in expired)
    assert all(p.exists() for p in fresh) and used.exists() and history_owned.exists()


def test_purge_expired_counts_files_when_given_the_folder(store, tmp_path):
    renders = tmp_path / "renders"
    _render(store, renders, "old", old=True)
    gif = _file(renders / SID / "2020-01-01" / "old.gif", 3)
    boards = board_store(store)
    assert purge_expired(store, 24, boards=boards, renders_dir=renders) == 2
    assert not gif.exists()
    assert purge_expired(store, 24, boards=boards, renders_dir=renders) == 0


def test_a_file_deleted_meanwhile_is_no_error(tmp_path, monkeypatch):
    renders = tmp_path / "renders"
    a = _file(renders / SID / "inputs" / "a.png", 3)
    b = _file(renders / SID / "inputs" / "b.png", 3)
    a.unlink()  # gone between the listing and the delete, as when the UI deletes it at the same moment
    real_rglob = type(renders).rglob
    monkeypatch.setattr(type(renders), "rglob", lambda self, pattern: iter([a, b]) if self == renders
                        else real_rglob(self, pattern))
    assert purge_expired_files(renders, ttl_hours=24) == 1 and not b.exists()
