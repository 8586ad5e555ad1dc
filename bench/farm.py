"""Render farm benchmarks (not a test: prints figures). Needs Ray: bash scripts/setup.sh --farm.

    .venv/bin/python bench/farm.py [--model ID] [--shots 12] [--repeats 7]

1. A board's preview stage (``--shots`` shots, the board's preview policy) on a local Ray farm with 1 worker,
   then 2 workers: wall time and the throughput ratio. Each worker runs torch on 1 thread (2 workers on 2 cores);
   every worker renders once before the clock starts, so model loads are not counted. One batch, as the
   Storyboard tab starts it: every shot a job in the studio's queue, the dispatcher running one per worker.
2. The per-render overhead of the Ray path over the local path for the same 1-step render: ``engine.run`` with
   the GPU work in this process vs on one Ray worker, both on 1 torch thread, interleaved (A B A B ...), medians;
   and the same render as a queued job (queue, dispatcher thread, follower) in this process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--shots", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            board_stage(Path(tmp), args)
            overhead(Path(tmp), args)
    finally:
        ray.shutdown()


def _studio(root: Path, name: str, model: str | None, workers: int | None):
    from studio.config import Settings
    from studio.farm.ray_farm import RayFarm
    from studio.app.services import Studio

    settings = Settings(data_dir=root / name, device="cpu", **({"default_model": model} if model else {}))
    studio = Studio.open(settings)
    if workers:
        studio.engine.executor = RayFarm(settings, workers=workers).start()
    return studio


def _warm(studio, workers: int) -> None:
    """One render on every worker at once, so each has loaded the model before the clock starts."""
    from studio.engine.request import RenderRequest

    threads = [threading.Thread(target=studio.engine.run, args=(RenderRequest(prompt="warm", seed=i, steps=1),))
               for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def board_stage(root: Path, args) -> None:
    from studio.jobs.boards import BoardRunner

    seconds = {}
    for workers in (1, 2):
        studio = _studio(root, f"board{workers}", args.model, workers)
        try:
            _warm(studio, workers)
            runner = BoardRunner(studio)
            board = runner.boards.create("bench", model=studio.settings.default_model)
            shots = [runner.boards.add_shot(board.id, f"shot {i}", seed=i).id for i in range(args.shots)]
            started = time.perf_counter()
            list(runner.run(board.id, "preview", shot_ids=shots))  # every shot a queued job, one per worker at once
            seconds[workers] = time.perf_counter() - started
            workers_used = {r["timings"].get("worker") for r in _rows(studio)}
            print(f"board preview stage, {args.shots} shots, {workers} worker(s): {seconds[workers]:.2f} s "
                  f"({args.shots / seconds[workers]:.2f} shots/s; workers used: {len(workers_used - {None})})")
        finally:
            studio.close()
    print(f"  throughput 2 workers / 1 worker: {seconds[1] / seconds[2]:.2f}x")


def _rows(studio) -> list[dict]:
    import json
    import sqlite3

    with sqlite3.connect(studio.settings.history_path) as db:
        return [{"timings": json.loads(t or "{}")} for (t,) in db.execute("SELECT timings FROM renders")]


def _queued(studio):
    """``engine.run`` as a job: queued, claimed by the dispatcher's thread, followed here."""
    from studio.jobs import following as jobs
    from studio.engine.events import Result

    def run(req):
        _, _, _, stream = jobs.queue_job(studio, {"request": req.to_dict()}, source="cli")
        return [e for e in stream.events() if isinstance(e, Result)]

    return run


def overhead(root: Path, args) -> None:
    from studio.engine.request import RenderRequest

    local, farm = _studio(root, "local", args.model, None), _studio(root, "farm", args.model, 1)
    try:
        req = RenderRequest(prompt="overhead", seed=1, steps=1)
        for studio in (local, farm):
            studio.engine.run(req)  # loads the model (here, and on the worker)
        times: dict[str, list[float]] = {"local": [], "ray": [], "queued": []}
        parts: dict[str, list[dict]] = {"local": [], "ray": [], "queued": []}
        for _ in range(args.repeats):
            for name, run in (("local", local.engine.run), ("ray", farm.engine.run), ("queued", _queued(local))):
                started = time.perf_counter()
                result = run(req)[0]
                times[name].append(time.perf_counter() - started)
                parts[name].append(result.timings)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"1-step render of {req.model or local.settings.default_model}, engine.run wall time (median of "
              f"{args.repeats}): local {med['local'] * 1000:.0f} ms, ray {med['ray'] * 1000:.0f} ms, "
              f"ratio {med['ray'] / med['local']:.2f}")
        print(f"  the same render as a queued job in this process: {med['queued'] * 1000:.0f} ms, ratio to local "
              f"{med['queued'] / med['local']:.2f}")
        for name in ("local", "ray", "queued"):
            keys = ("encode", "denoise", "decode", "write", "total")
            print(f"  {name:5s} parts (median ms): " + ", ".join(
                f"{k} {statistics.median(p.get(k, 0) for p in parts[name]) * 1000:.0f}" for k in keys))
        inside = statistics.median(p["total"] for p in parts["ray"])
        print(f"  outside the render's own timed parts on the ray path: {(med['ray'] - inside) * 1000:.0f} ms "
              f"(local: {(med['local'] - statistics.median(p['total'] for p in parts['local'])) * 1000:.0f} ms)")
    finally:
        local.close()
        farm.close()


if __name__ == "__main__":
    main()
