"""Faults as tests: a full disk (a small tmpfs; where none can be mounted, writes that fail with ENOSPC), and a
studio stopped or killed under a CLI render."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
from conftest import _models_toml, wait_for_query  # noqa: E402

FULL = r"The disk holding .* is full \(\d+ MB free\): free space and press Render again\."


class Disk:
    """A small file system for a data folder: a 4 MB tmpfs where this process may mount one (root), else a folder
    whose writes ``fill()`` makes fail with ENOSPC (the encoder and SQLite's writes, and free space read as 0)."""

    def __init__(self, root: Path, monkeypatch):
        self.root, self.monkeypatch, self.filler = root, monkeypatch, root / "filler"
        root.mkdir(parents=True, exist_ok=True)
        self.tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)],
                                    capture_output=True).returncode == 0

    def fill(self) -> None:
        if self.tmpfs:
            subprocess.run(["dd", "if=/dev/zero", f"of={self.filler}", "bs=1k"], capture_output=True)
            return
        from studio.store import disk, queue as queue_store
        from studio.engine import media

        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        self.monkeypatch.setattr(media, "write_video", no_space)
        self.monkeypatch.setattr(disk, "free_mb", lambda path: 0)
        self.monkeypatch.setattr(queue_store.QueueStore, "add", no_space)

    def free(self) -> None:
        if self.tmpfs:
            self.filler.unlink()
        else:
            self.monkeypatch.undo()

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.root)], capture_output=True)


@pytest.fixture()
def small_disk(tmp_path, monkeypatch):
    d = Disk(tmp_path / "disk", monkeypatch)
    yield d
    d.close()


def _follow(studio, prompt: str) -> list:
    from studio.jobs import following as jobs

    job = {"request": {"prompt": prompt, "steps": 1, "seed": 1, "model": "t-far"}}
    return list(jobs.follow_job(studio, job, source="cli"))


def test_a_full_disk_is_one_message_and_renders_work_again_once_space_is_freed(small_disk, models_file, tiny_dirs):
    from studio.engine import media
    from studio.config import Settings
    from studio.errors import DiskFull
    from studio.engine.events import Failed, Result
    from studio.store.history import Query
    from studio.app.services import Studio

    studio = Studio.open(Settings(data_dir=small_disk.root / "data", default_model="t-far", models_file=models_file,
                                  device="cpu"))
    try:
        assert studio.claim_data_folder()
        dispatcher = studio.start_dispatcher(slots=1)
        first = _follow(studio, "before the disk fills")[-1]
        assert isinstance(first, Result)
        write = media.write_video

        def fill_then_write(*args, **kwargs):  # the disk fills while the render runs
            small_disk.fill()
            return write(*args, **kwargs) if small_disk.tmpfs else media.write_video(*args, **kwargs)

        small_disk.monkeypatch.setattr(media, "write_video", fill_then_write)
        last = _follow(studio, "as the disk fills")[-1]
        if small_disk.tmpfs:
            small_disk.monkeypatch.setattr(media, "write_video", write)  # the disk stays full: no more filling
        assert isinstance(last, Failed) and __import__("re").fullmatch(FULL, last.message), last
        with pytest.raises(DiskFull, match=FULL):  # Render pressed again on the full disk: the same message
            _follow(studio, "on a full disk")
        ok = studio.history.get(first.record_id)
        assert ok["status"] == "ok" and Path(ok["video_path"]).is_file()  # the finished render is untouched
        small_disk.free()
        deadline = time.monotonic() + 30
        while any(j["state"] == "running" for j in dispatcher.store.list()) and time.monotonic() < deadline:
            time.sleep(0.1)  # the failed job's end is written once there is room
        states = sorted(j["state"] for j in dispatcher.store.list())
        assert states == ["done", "failed"], states
        assert isinstance(_follow(studio, "after space is freed")[-1], Result)
        assert studio.history.get(first.record_id)["status"] == "ok"
        assert len(studio.history.search(Query(status="ok"))) == 2
    finally:
        studio.close()


def test_app_on_a_full_disk_says_so_in_one_line(small_disk, tiny_dirs):
    data = small_disk.root / "data"
    data.mkdir()
    small_disk.fill() if small_disk.tmpfs else None
    fake = "" if small_disk.tmpfs else (
        "import sqlite3, studio.history as h\n"
        "def full(*a, **k): raise sqlite3.OperationalError('database or disk is full')\n"
        "h.sqlite3 = type('S', (), {'connect': staticmethod(full), 'Error': sqlite3.Error, "
        "'DatabaseError': sqlite3.DatabaseError, 'OperationalError': sqlite3.OperationalError})\n"
        "import studio.store.disk as d; d.free_mb = lambda p: 0\n")
    code = fake + "import sys, app; sys.exit(app.main(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", code, "--data-dir", str(data), "--port", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "is full" in errors[0] and "free space" in errors[0], out.stderr


# ---- a studio stopped under a CLI render -----------------------------------------------------------------
def _start_studio(root: Path, tiny_dirs) -> tuple[subprocess.Popen, Path]:
    models = root / "models.toml"
    models.write_text(_models_toml(tiny_dirs), encoding="utf-8")
    data = root / "data"
    env = dict(os.environ, HF_HUB_OFFLINE="1", STUDIO_MODELS_FILE=str(models), STUDIO_MODEL="t-far",
               STUDIO_DEVICE="cpu", PYTHONUNBUFFERED="1")
    with socket.socket() as probe:  # a free port (Gradio refuses port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(root / "studio.log", "w")  # a file, not a pipe nobody reads while it runs
    proc = subprocess.Popen([sys.executable, "app.py", "--data-dir", str(data), "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300  # a start takes seconds; far longer on a loaded 2-core machine
    while time.monotonic() < deadline:
        note = data / "studio.json"
        if note.is_file() and json.loads(note.read_text()).get("token"):
            return proc, data
        assert proc.poll() is None, (root / "studio.log").read_text()
        time.sleep(0.2)
    raise AssertionError("the studio did not announce itself")


def _render_under(data: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", STUDIO_MODEL="t-far")
    return subprocess.Popen([sys.executable, "-m", "studio", "render", "--data-dir", str(data), "--prompt",
                             "a long render", "--steps", "128", "--frames", "33", "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_cli_render_says_what_became_of_its_job_when_the_studio_stops(tmp_path, tiny_dirs, how):
    studio, data = _start_studio(tmp_path, tiny_dirs)
    cli = None
    try:
        cli = _render_under(data)
        wait_for_query("SELECT count(*) FROM jobs WHERE state = 'running' AND progress > 0", data / "history.db")
        studio.send_signal(how)
        out, err = cli.communicate(timeout=60)
        studio.wait(timeout=60)
    finally:
        for proc in (cli, studio):
            if proc is not None and proc.poll() is None:
                proc.kill()
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert cli.returncode == 2 and "Traceback" not in err and out == "", err
    assert "Traceback" not in (tmp_path / "studio.log").read_text()
    (jid,) = __import__("sqlite3").connect(data / "history.db").execute("SELECT id FROM jobs").fetchone()
    assert errors == [f"error: the studio stopped; job {jid} waits in the queue and runs when it starts again"], err
    if how == signal.SIGTERM:  # the same clean-up as Ctrl+C: the announcement goes, the job is back in the queue
        assert not (data / "studio.json").exists()
        state = __import__("sqlite3").connect(data / "history.db").execute("SELECT state FROM jobs").fetchone()[0]
        assert state == "queued"
