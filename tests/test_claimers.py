"""Recovery touches only the dead (issue 22, items 5 and 7): a claimer is its pid *and* its start time, so a new
owner never marks a live process's rows interrupted nor deletes its partial files, a reused pid never passes for
the process that died, and a dead process's job runs again at the next start and while the studio runs."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from studio.jobs import dispatcher as dispatcher_module
from studio.store import liveness
from studio.jobs.shot_rules import board_store
from studio.store.history import HistoryStore
from studio.store.queue import QueueStore
from studio.app.services import Studio

ROOT = Path(__file__).resolve().parent.parent
JOB = {"request": {"prompt": "a render beside the owner", "steps": 1, "seed": 0, "model": "t-bidi"}, "policy": None}

# A command-line render beside the owner, frozen mid-render: a running row, its partial file, a running board
# batch and a claimed job, all in its own name; it holds on until its stdin closes.
BESIDE = f"""
import json, sys
from pathlib import Path
from studio.jobs.shot_rules import board_store
from studio.store.history import HistoryStore
from studio.store.liveness import identity
from studio.store.queue import QueueStore
data = Path(sys.argv[1])
store = HistoryStore(data / "history.db")
queue = QueueStore(store)
queue.add({JOB!r}, source="cli")
job = queue.claim(identity())
rid = store.start({{"prompt": "mid-render", "mode": "t2v", "model": "t-bidi"}}, 1, job["id"], "single", 0)
boards = board_store(store)
batch = boards.start_batch(boards.create("a board").id, "preview")
partial = data / "renders" / "2026-01-01" / f".{{rid}}.part.mp4"
partial.parent.mkdir(parents=True, exist_ok=True)
partial.write_bytes(b"half an mp4")
print(json.dumps([rid, job["id"], batch, str(partial)]), flush=True)
sys.stdin.read()
"""


def _beside(data_dir):
    proc = subprocess.Popen([sys.executable, "-c", BESIDE, str(data_dir)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    import json

    return proc, json.loads(proc.stdout.readline())


def _dead_claimer() -> str:
    """A claimer whose pid lives (our parent) but started at another time: a pid reused after a reboot."""
    return f"local:{socket.gethostname()}:{os.getppid()}:00000000.1"


def test_a_claimer_is_its_pid_and_start_time():
    me = liveness.identity()
    assert liveness.alive(me) and not liveness.alive_elsewhere(me)
    host, pid, start = liveness.parse(me)
    assert (host, pid) == (socket.gethostname(), os.getpid()) and start == liveness.start_time(os.getpid()) != ""
    parent = f"local:{host}:{os.getppid()}"
    assert liveness.alive_elsewhere(parent + ":" + liveness.start_time(os.getppid()))
    assert liveness.alive_elsewhere(parent)  # a name from before start times: the pid alone decides
    assert not liveness.alive(_dead_claimer())  # same pid, another start: a reused pid
    assert not liveness.alive(f"local:another-host:{os.getpid()}:{start}")
    for junk in (None, "", "ray:node", "local:h:abc", "local:h:99999999999999999999:x"):
        assert not liveness.alive(junk)


def test_a_reused_pid_does_not_keep_a_dead_job_running(tmp_path):
    history = HistoryStore(tmp_path / "history.db")
    try:
        store = QueueStore(history)
        jid = store.add(JOB)
        assert store.claim(_dead_claimer())["id"] == jid
        rid = history.start({"prompt": "x", "mode": "t2v", "model": "m"}, 1, jid, "single", 0)
        with history.lock, history.db.conn:
            history.db.execute("UPDATE renders SET claimed_by = ? WHERE id = ?", [_dead_claimer(), rid])
        assert store.requeue_running(at_start=False) == 1 and store.get(jid)["state"] == "queued"
        assert history.mark_interrupted(liveness.alive) == 1 and history.get(rid)["status"] == "interrupted"
    finally:
        history.close()


def test_a_live_non_owners_partial_file_survives_a_new_owners_start_up(settings, monkeypatch):
    proc, (rid, jid, batch, partial) = _beside(settings.data_dir)
    partial = Path(partial)
    orphan = partial.with_name(".export.part.gif")  # named after no render: it may be the live process's
    orphan.write_bytes(b"half a gif")
    studio = Studio.open(settings)
    try:
        assert studio.claim_data_folder()
        report = studio.recover_after_crash()
        assert (report.renders, report.batches, report.partial_files, report.jobs) == (0, 0, 0, 0)
        assert partial.exists() and orphan.exists() and studio.history.get(rid)["status"] == "running"
        queue = QueueStore(studio.history)
        assert queue.get(jid)["state"] == "running"
        assert board_store(studio.history).batches(status=None)[0]["status"] == "running"
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0  # the render beside it dies (here: ends without finishing anything)
        monkeypatch.setattr(dispatcher_module, "SWEEP_S", 0.2)
        studio.start_dispatcher()  # the owner's sweep finds it dead within SWEEP_S and runs its job again
        deadline = time.monotonic() + 120
        while queue.get(jid)["state"] != "done" and time.monotonic() < deadline:
            time.sleep(0.2)
        job = queue.get(jid)
        assert job["state"] == "done" and job["attempts"] == 2, job
        assert not partial.exists() and orphan.exists()  # the sweep removes only the dead rows' files
        assert studio.history.get(rid)["status"] == "ok"  # its row taken back by the re-run
        assert board_store(studio.history).batches(status=None)[0]["status"] == "interrupted"
    finally:
        studio.close()
        if proc.poll() is None:
            proc.kill()
