"""Crash injection: a studio killed at random moments must still end every job once, lose no finished work and
leave a sound database (issue 22, item 8). Not a test: prints one line per violation, then a summary.

    .venv/bin/python bench/crash.py --trials 5 --seed 1 [--farm ray --workers 2] [--kills 3] [--keep DIR]

Each trial: a fresh data folder on tiny models; the studio (``app.py``, a subprocess that owns the folder) gets a
mixed workload through its owner API, the path the CLI takes (``queue add``: single renders, a refine plan, a
compare plan; ``board run``: a board whose second shot continues the first, its preview stage then its final
stage; an extension of a finished render (the owner API's ``extend``, as ``render --extend`` sends it); a
``queue cancel``; a step change of a waiting job; a star on a finished render). It is killed at random moments
(SIGKILL; SIGTERM in some trials; with ``--farm ray``, a random farm worker SIGKILLed instead in some) and started
again, until the work is done; a board stage whose studio died is run again, as a user would. Then the invariants
of crash_invariants.py are checked. Last line: ``trials N, kills K, violations V``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from crash_invariants import check  # noqa: E402

STARTUP_S = 300.0  # a studio (Gradio, torch, maybe Ray) starting on a loaded 2-core machine
DRAIN_S = 600.0  # the work left after the last kill
POLICIES = "[policies.preview]\nsteps = 1\n[policies.final]\nsteps = 3\n"
NATIVE = dict(height=32, width=32, frames=9, fps=8)


def build_models(root: Path) -> Path:
    """Tiny pipelines saved once (causal and bidirectional) and a models file naming them."""
    from studio.models.tiny import tiny_pipeline

    lines = []
    for model_id, family, modes in (("t-far", "causal", ("t2v", "i2v", "v2v")), ("t-bidi", "bidirectional", ("t2v",))):
        folder = root / model_id
        if not folder.is_dir():
            tiny_pipeline(family, seed=0).save_pretrained(folder)
        lines += [f'[models."{model_id}"]', f'source = "local:{folder.as_posix()}"', f'family = "{family}"',
                  "modes = [" + ", ".join(f'"{m}"' for m in modes) + "]", *(f"{k} = {v}" for k, v in NATIVE.items()),
                  "memory_gb = 0.01", 'license = "test"', ""]
    path = root / "models.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Studio:
    """The studio subprocess on one data folder: start, wait until it answers, kill, stop."""

    def __init__(self, data: Path, models: Path, farm: list[str], log):
        self.data, self.models, self.farm, self.log = data, models, farm, log
        self.proc: subprocess.Popen | None = None

    def start(self):
        from studio.app import owner_client, ownership

        env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", STUDIO_MODELS_FILE=str(self.models))
        self.proc = subprocess.Popen([sys.executable, "app.py", "--data-dir", str(self.data), "--model", "t-far",
                                      "--device", "cpu", "--port", str(_free_port()), *self.farm], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the studio exited with {self.proc.returncode} on start (see the log)")
            owner = ownership.current_owner(self.data)
            if owner is not None and owner.url and owner.pid == self.proc.pid:
                try:
                    owner_client.ping(owner)
                    return owner
                except Exception:
                    pass
            time.sleep(0.3)
        raise RuntimeError("the studio did not answer in time")

    def kill(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=60)

    def farm_workers(self) -> list[int]:
        """Pids of this studio's Ray farm workers (its descendants whose command line names FarmWorker)."""
        if not self.proc:
            return []
        kids, pids, found = {}, [self.proc.pid], []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(entry.name))
        while pids:
            pid = pids.pop()
            for kid in kids.get(pid, []):
                pids.append(kid)
                try:
                    if b"FarmWorker" in Path(f"/proc/{kid}/cmdline").read_bytes():
                        found.append(kid)
                except OSError:
                    pass
        return found


class Workload:
    """What a user does, through the owner API (the CLI's path); remembers what it cancelled and starred."""

    def __init__(self, data: Path, rng: random.Random, small: bool = False):
        self.data, self.rng, self.small = data, rng, small
        self.cancelled: set[str] = set()
        self.stars: set[str] = set()
        self.jobs: list[str] = []
        self.board_file = data.parent / f"{data.name}-board.json"
        self.board_file.write_text(json.dumps({"name": "crash board", "model": "t-far", "shots": [
            {"prompt": "a red circle moving left", "seed": 1},
            {"prompt": "the circle keeps moving", "seed": 2, "continues": True},
            {"prompt": "a blue square moving up", "seed": 3}][:2 if small else 3]}), encoding="utf-8")
        self.stages = ["preview"] if small else ["preview", "final"]
        self._board: threading.Thread | None = None
        self.extension: str | None = None  # its job id, once queued

    def queue(self, owner) -> None:
        """The renders, once: two singles, a refine, a compare."""
        from studio.app import owner_client

        base = {"mode": "t2v", "model": "t-far", "negative_prompt": "", **NATIVE}
        jobs = [{"request": dict(base, prompt="refined", steps=6, seed=13), "preview": 1},
                {"request": dict(base, prompt="compared", steps=4, seed=14), "compare": [1, 2, 4]}]
        if not self.small:
            jobs += [{"request": dict(base, prompt="single one", steps=2, seed=11)},
                     {"request": dict(base, prompt="single two", steps=6, seed=12)}]
        for job in jobs:
            for event in owner_client.send(owner, "queue-add", dict({"policy": None, "gif": False}, **job)):
                if event.get("type") == "queued":
                    self.jobs.append(event["id"])

    def extend(self, owner) -> None:
        """Extend a finished render by 4 frames, once (the job copies its source when queued)."""
        from studio.app import owner_client
        from studio.errors import StudioError
        from studio.store.history import HistoryStore

        if self.extension is not None:
            return
        done = self._sources()
        if not done:
            return
        try:
            for event in owner_client.send(owner, "extend", {"source": self.rng.choice(done), "frames": 4,
                                                             "steps": 2, "queue": True}):
                if event.get("type") == "queued":
                    self.extension = event["id"]
                    self.jobs.append(event["id"])
        except StudioError:  # the studio died under it: queued again after the next start
            pass

    def _sources(self) -> list[str]:
        """Finished renders of the single, refine and compare jobs (what an extension may continue)."""
        from studio.store.history import HistoryStore

        history = HistoryStore(self.data / "history.db")
        try:
            return [r["id"] for r in history.search(limit=50) if r["status"] == "ok" and r["mode"] == "t2v"
                    and r["prompt"] in ("refined", "compared", "single one", "single two")]
        finally:
            history.close()

    def board(self, owner) -> None:
        """Run the board's stages (again after a crash: resumable) on a thread of its own."""
        if self.stages and (self._board is None or not self._board.is_alive()):
            self._board = threading.Thread(target=self._stages, args=(owner,), daemon=True)
            self._board.start()

    def _stages(self, owner) -> None:
        from studio.app import owner_client
        from studio.errors import StudioError

        job = {"board": json.loads(self.board_file.read_text()), "source": str(self.board_file), "export_dir": None}
        while self.stages:
            try:
                events = list(owner_client.send(owner, "board-run", dict(job, stage=self.stages[0])))
            except StudioError:  # the studio died under it: the next start runs the stage again
                return
            if any(e.get("type") == "batch_done" for e in events):
                self.stages.pop(0)
            else:
                return

    def poke(self, owner) -> None:
        """A user's actions between kills: a cancel, a step change of a waiting job, a star."""
        from studio.app import owner_client
        from studio.store.history import HistoryStore
        from studio.store.queue import QueueStore

        history = HistoryStore(self.data / "history.db")
        try:
            store = QueueStore(history)
            waiting = [j["id"] for j in store.list(states=("queued",))]
            if waiting and self.rng.random() < 0.5:
                try:
                    store.set_steps(self.rng.choice(waiting), self.rng.choice((1, 2, 3)))
                except Exception:  # it started meanwhile, or compares budgets: nothing to change
                    pass
            live = [j["id"] for j in store.list(states=("queued", "running")) if j["source"] == "cli"]
            if live and not self.cancelled and self.rng.random() < 0.5:
                jid = self.rng.choice(live)
                for event in owner_client.send(owner, "queue-cancel", {"id": jid}):
                    if event.get("type") == "cancel":
                        self.cancelled.add(jid)
        finally:
            history.close()
        self.star()

    def star(self) -> None:
        """Star a finished render (the History tab's star), if there is one."""
        from studio.store.history import HistoryStore

        history = HistoryStore(self.data / "history.db")
        try:
            ok = [r["id"] for r in history.search(limit=50) if r["status"] == "ok"]
            if ok:
                rid = self.rng.choice(ok)
                history.set_accepted(rid, True)
                self.stars.add(rid)
        finally:
            history.close()

    def done(self) -> bool:
        from studio.store.history import HistoryStore
        from studio.store.queue import QueueStore

        history = HistoryStore(self.data / "history.db")
        try:
            busy = QueueStore(history).list(states=("queued", "running"))
        finally:
            history.close()
        # the extension is queued once a render it can continue exists (none may: the user cancelled them all)
        return not busy and not self.stages and (self.extension is not None or not self._sources())


def trial(number: int, rng: random.Random, root: Path, models: Path, args) -> tuple[int, list[str]]:
    """One trial: (kills, violations)."""
    data = root / f"trial-{number}"
    data.mkdir(parents=True)
    (data / "policies.toml").write_text(POLICIES, encoding="utf-8")
    farm = ["--farm", "ray", "--workers", str(args.workers)] if args.farm == "ray" else []
    with open(root / f"trial-{number}.log", "ab") as log:
        studio, work = Studio(data, models, farm, log), Workload(data, rng, args.small)
        kills, planned = 0, rng.randint(1, args.kills)
        sigterm = rng.random() < 0.25
        try:
            owner = studio.start()
            work.queue(owner)
            while kills < planned:
                work.board(owner)
                time.sleep(rng.uniform(0.5, args.window))
                work.extend(owner)
                work.poke(owner)
                if farm and rng.random() < 0.4 and (pids := studio.farm_workers()):
                    os.kill(rng.choice(pids), signal.SIGKILL)  # a farm worker dies; the studio carries on
                else:
                    studio.kill(signal.SIGTERM if sigterm else signal.SIGKILL)
                    owner = studio.start()
                kills += 1
            deadline = time.monotonic() + DRAIN_S
            while not work.done() and time.monotonic() < deadline:
                work.board(owner)
                work.extend(owner)
                if not work.stars:
                    work.star()
                time.sleep(1.0)
        finally:
            studio.kill(signal.SIGINT)
            studio.kill(signal.SIGKILL)
    return kills, check(data, work.cancelled, work.stars)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--farm", choices=["local", "ray"], default="local")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--kills", type=int, default=3, help="at most this many kills per trial (at least one)")
    p.add_argument("--window", type=float, default=6.0, help="seconds of work, at most, between kills")
    p.add_argument("--small", action="store_true", help="a smaller workload (the test suite's short run): a refine, "
                   "a compare, a board of two shots (the second continues the first), its preview stage")
    p.add_argument("--keep", default=None, help="keep the trials' folders and logs here (default: a temp folder)")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    root = Path(args.keep or tempfile.mkdtemp(prefix="studio-crash-"))
    root.mkdir(parents=True, exist_ok=True)
    models = build_models(root / "models")
    kills = violations = 0
    try:
        for number in range(1, args.trials + 1):
            k, found = trial(number, rng, root, models, args)
            kills += k
            violations += len(found)
            for line in found:
                print(f"trial {number}: {line}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"trials {args.trials}, kills {kills}, violations {violations}", flush=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
