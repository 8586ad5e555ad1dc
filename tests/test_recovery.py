"""Crash recovery is an explicit step, run only by the process that owns the data folder (studio/app/ownership.py).

Opening a studio, its history or its boards changes nothing; the owner's ``recover_after_crash`` marks what a dead
process left running and removes its partial files. The lock is free again when its holder dies, even by SIGKILL.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli import commands as cli
from studio.app import ownership
from studio.jobs.shot_rules import board_store
from studio.store.history import HistoryStore
from studio.app.ownership import FolderLock
from studio.app.services import Studio

ROOT = Path(__file__).resolve().parent.parent
# A process that tries to own a data folder, says whether it does, and holds on until its stdin closes.
HOLDER = ("import sys; from studio.app.ownership import FolderLock; lock = FolderLock(*sys.argv[1:]); "
          "print('owned' if lock.acquire('http://127.0.0.1:7999') else 'busy', flush=True); sys.stdin.read()")


def _holder(data_dir, *kind):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(data_dir), *kind], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return proc, proc.stdout.readline().strip()  # the line orders us after its acquire


def _leftovers(data_dir):
    """What a process killed mid-render leaves: a running row, a running board batch, a partial file."""
    store = HistoryStore(data_dir / "history.db")
    rid = store.start({"prompt": "cut short", "mode": "t2v", "model": "t-far"}, 4, "p", "single", 0)
    boards = board_store(store)
    batch = boards.start_batch(boards.create("a board").id, "preview")
    store.close()
    partial = data_dir / "renders" / "2026-01-01" / ".cut.part.mp4"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half an mp4")
    return rid, batch, partial


def _state(data_dir, rid, batch):
    store = HistoryStore(data_dir / "history.db")
    try:
        return store.get(rid)["status"], board_store(store).batches(status=None)[0]["status"]
    finally:
        store.close()


def test_opening_changes_nothing(settings):
    rid, batch, partial = _leftovers(settings.data_dir)
    studio = Studio.open(settings)
    board_store(studio.history)
    studio.close()
    assert _state(settings.data_dir, rid, batch) == ("running", "running") and partial.exists()


def test_the_owner_recovers(settings):
    rid, batch, partial = _leftovers(settings.data_dir)
    studio = Studio.open(settings)
    try:
        assert studio.claim_data_folder()
        report = studio.recover_after_crash()
        assert (report.renders, report.batches, report.partial_files) == (1, 1, 1)
        assert studio.history.get(rid)["status"] == "interrupted" and not partial.exists()
        assert not studio.recover_after_crash()  # nothing left the second time
    finally:
        studio.close()
    assert _state(settings.data_dir, rid, batch) == ("interrupted", "interrupted")


def test_only_the_owner_may_recover(settings):
    _leftovers(settings.data_dir)
    proc, said = _holder(settings.data_dir)
    studio = Studio.open(settings)
    try:
        assert said == "owned" and not studio.claim_data_folder()
        with pytest.raises(RuntimeError, match="owns the data folder"):
            studio.recover_after_crash()
        assert studio.folder_owner().pid == proc.pid
    finally:
        studio.close()
        proc.stdin.close()
        proc.wait(timeout=30)


def test_the_lock_is_one_process_at_a_time_and_freed_by_sigkill(tmp_path):
    first, said = _holder(tmp_path)
    assert said == "owned"
    owner = ownership.current_owner(tmp_path)
    assert owner.pid == first.pid and owner.url == "http://127.0.0.1:7999"
    second, said = _holder(tmp_path)
    second.stdin.close()
    assert said == "busy" and second.wait(timeout=30) == 0
    assert not FolderLock(tmp_path).acquire()  # nor this process
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    assert ownership.read_announcement(tmp_path).pid == first.pid  # left behind by the dead owner ...
    assert ownership.current_owner(tmp_path) is None  # ... and known stale: the lock is free
    third, said = _holder(tmp_path)
    third.stdin.close()
    assert said == "owned" and third.wait(timeout=30) == 0


def test_a_released_lock_takes_its_announcement_along(tmp_path):
    lock = FolderLock(tmp_path)
    assert lock.acquire() and ownership.current_owner(tmp_path).pid == os.getpid()
    lock.announce("http://127.0.0.1:7860/")
    assert ownership.read_announcement(tmp_path).url == "http://127.0.0.1:7860/"
    lock.release()
    assert ownership.read_announcement(tmp_path) is None and not ownership.is_owned(tmp_path)
    assert FolderLock(tmp_path).acquire()


def _cli(*argv):
    return cli.main(list(argv))


def test_history_beside_an_owner_touches_nothing(settings, capsys):
    rid, batch, partial = _leftovers(settings.data_dir)
    owner = FolderLock(settings.data_dir)
    assert owner.acquire()
    try:
        assert _cli("history", "--data-dir", str(settings.data_dir)) == 0
        assert "running" in capsys.readouterr().out
        assert _state(settings.data_dir, rid, batch) == ("running", "running") and partial.exists()
        assert ownership.current_owner(settings.data_dir).pid == os.getpid()  # still announced
    finally:
        owner.release()


def test_history_never_takes_the_lock_nor_recovers(settings, monkeypatch):
    rid, batch, partial = _leftovers(settings.data_dir)
    monkeypatch.setattr(FolderLock, "acquire", lambda self, url=None: pytest.fail("a read-only command took the lock"))
    for command in ("history", "stats", "models", "policies"):
        assert _cli(command, "--data-dir", str(settings.data_dir), "--models-file", str(settings.models_file)) == 0
    assert _state(settings.data_dir, rid, batch) == ("running", "running") and partial.exists()


def _render(settings):
    return _cli("render", "--prompt", "a fox", "--steps", "1", "--seed", "0", "--model", "t-far", "--device", "cpu",
                "--data-dir", str(settings.data_dir), "--models-file", str(settings.models_file), "--quiet")


def test_a_render_beside_an_owner_leaves_its_rows_and_files_alone(settings, capsys):
    rid, batch, partial = _leftovers(settings.data_dir)
    proc, said = _holder(settings.data_dir, "cli")  # another command-line render (a studio: test_owner_api.py)
    try:
        assert said == "owned"
        assert _render(settings) == 0
        err = capsys.readouterr().err
        assert f"pid {proc.pid}" in err and "http://127.0.0.1:7999" in err
        assert _state(settings.data_dir, rid, batch) == ("running", "running") and partial.exists()
        assert ownership.current_owner(settings.data_dir).pid == proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_a_render_with_no_owner_owns_recovers_and_lets_go(settings, capsys):
    rid, batch, partial = _leftovers(settings.data_dir)
    assert _render(settings) == 0
    assert "1 render(s) and 1 board batch(es) marked interrupted" in capsys.readouterr().err
    assert _state(settings.data_dir, rid, batch) == ("interrupted", "interrupted") and not partial.exists()
    assert not ownership.is_owned(settings.data_dir)  # released when the command ended


def test_the_app_refuses_a_folder_another_studio_owns(settings, capsys):
    import app

    proc, said = _holder(settings.data_dir)
    try:
        assert said == "owned"
        assert app.main(["--data-dir", str(settings.data_dir), "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "already" in err[0] and f"pid {proc.pid}" in err[0]
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
