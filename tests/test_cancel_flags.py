"""Cancel flags crossing to a worker process live in a folder only this user owns and can reach."""

import os
import pickle
import stat
import threading

from studio.engine import cancel


def test_the_flag_folder_is_this_users_and_private(monkeypatch, tmp_path):
    monkeypatch.setattr(cancel, "FLAG_DIR", tmp_path / "flags")
    assert str(os.getuid()) in cancel.default_flag_dir().name
    token = cancel.CancelToken()
    worker = pickle.loads(pickle.dumps(token))
    worker.set()
    assert worker.is_set() and worker.path.parent == cancel.FLAG_DIR
    mode = cancel.FLAG_DIR.stat()
    assert mode.st_uid == os.getuid() and stat.S_IMODE(mode.st_mode) == 0o700


def test_a_flag_folder_someone_else_owns_is_not_trusted(monkeypatch, tmp_path):
    theirs = tmp_path / "flags"
    theirs.mkdir(mode=0o777)
    monkeypatch.setattr(cancel, "FLAG_DIR", theirs)
    worker = pickle.loads(pickle.dumps(cancel.CancelToken()))
    worker.path.touch()  # "another user" put a flag there
    monkeypatch.setattr(cancel, "_uid", lambda: os.getuid() + 1)  # the folder is now not ours
    assert not worker.is_set()
    worker.path.unlink()
    worker.set()
    assert not worker.path.exists()


def test_crossing_in_a_worker_does_not_spin(monkeypatch, tmp_path):
    monkeypatch.setattr(cancel, "FLAG_DIR", tmp_path / "flags")
    worker = pickle.loads(pickle.dumps(cancel.CancelToken()))
    with worker.crossing():
        mirrors = [t for t in threading.enumerate() if t.name == "cancel-mirror"]
        for t in mirrors:
            t.join(timeout=1)
        assert not any(t.is_alive() for t in mirrors)
