"""How long one follower's pass over its waiting jobs takes (their places in the queue), as the queue grows.

    python bench/queue_scale.py [--sizes 100 1000 5000] [--runs 5] [--per-job]

For each size N: a fresh database with N waiting jobs, one JobStream following all of them (a big storyboard
batch), and the time of one pass (``JobStream._look``: every followed job's place, one Waiting event each),
min and median over --runs passes. A follower makes such a pass every PLACE_S (1 s) while it waits.
--per-job also times the old way (a place query per followed job, each counting the waiting jobs before it),
which grows with the square of N (2.5 s at 5000 on the 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.jobs.dispatcher import Dispatcher, JobStream  # noqa: E402
from studio.store.history import HistoryStore  # noqa: E402
from studio.store.queue import QueueStore  # noqa: E402


def queue_of(n: int, folder: Path) -> tuple[HistoryStore, QueueStore, list[str]]:
    history = HistoryStore(folder / f"queue-{n}.db")
    store = QueueStore(history)
    ids = [store.add({"request": {"prompt": f"shot {i}", "steps": 1}}, source="storyboard") for i in range(n)]
    return history, store, ids


def follow_pass_ms(store: QueueStore, ids: list[str], runs: int) -> tuple[float, float, float, int]:
    """(min wall ms, median wall ms, median CPU ms, Waiting events of the last pass) of one follower's pass over
    ``ids``. The CPU time is this thread's (time.thread_time): on a shared, loaded machine the wall time mostly
    measures the wait for a core."""
    stream = JobStream(Dispatcher(None, store))
    for jid in ids:
        stream.add(jid)
    walls, cpus, events = [], [], 0
    for _ in range(runs):
        stream._looked = -1e9  # a pass is due
        started, cpu = time.perf_counter(), time.thread_time()
        events = sum(1 for _ in stream._look())
        cpus.append(1000 * (time.thread_time() - cpu))
        walls.append(1000 * (time.perf_counter() - started))
    return min(walls), statistics.median(walls), statistics.median(cpus), events


def per_job_ms(store: QueueStore, ids: list[str]) -> float:
    started = time.perf_counter()
    for jid in ids:
        store.place(jid)
    return 1000 * (time.perf_counter() - started)


def follow_5000_ms(runs: int = 5) -> float:
    """The median pass's CPU ms at 5000 waiting jobs (bench/scale.py's figure)."""
    with tempfile.TemporaryDirectory(prefix="queue-scale-") as folder:
        history, store, ids = queue_of(5000, Path(folder))
        try:
            return follow_pass_ms(store, ids, runs)[2]
        finally:
            history.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--per-job", action="store_true", help="also time a place query per job (slow at 5000)")
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'waiting':>8} {'wall min ms':>12} {'wall median ms':>15} {'cpu median ms':>14} {'events':>7}"
          + (f" {'per-job ms':>11}" if args.per_job else ""))
    with tempfile.TemporaryDirectory(prefix="queue-scale-") as folder:
        for n in args.sizes:
            history, store, ids = queue_of(n, Path(folder))
            try:
                low, mid, cpu, events = follow_pass_ms(store, ids, args.runs)
                line = f"{n:>8} {low:>12.1f} {mid:>15.1f} {cpu:>14.1f} {events:>7}"
                if args.per_job:
                    line += f" {per_job_ms(store, ids):>11.1f}"
                print(line, flush=True)
            finally:
                history.close()


if __name__ == "__main__":
    main()
