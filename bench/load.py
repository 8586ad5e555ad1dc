"""Load benchmark: N concurrent users rendering through the UI at once, on the embedded model.

    .venv/bin/python bench/load.py                       # N = 1, 4, 8; embedded default model; 1 step
    .venv/bin/python bench/load.py --clients 1,4,8 --concurrency 2 --steps 2 --per-client 2

Starts the studio in-process on 127.0.0.1 (a fresh data folder, offline), warms the model with one
render (not counted), then for each N starts N gradio_client clients (N browser sessions) that each
submit ``--per-client`` T2V renders one after another, all clients at once. Latency is client-side,
from submit to the final video (queue wait included); throughput is renders finished per minute of
wall clock for the level. Bounded: at most 16 clients, 5 renders each, and ``--timeout`` seconds a level.
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

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MAX_CLIENTS, MAX_PER_CLIENT = 16, 5


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def render_args(model: str, prompt: str, seed: int, steps: int):
    # mode, model, prompt, negative, image, video, steps, seed, random seed, resolution, frames, preview first, preview
    return ("t2v", model, prompt, "", None, None, steps, seed, False, None, None, False, 1)


def one_client(url: str, model: str, index: int, per_client: int, steps: int, out: list, errors: list,
               deadline: float) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    for k in range(per_client):
        if time.monotonic() > deadline:
            errors.append(f"client {index}: out of time")
            return
        seed = 1000 * index + k
        started = time.perf_counter()
        try:
            job = client.submit(*render_args(model, f"load test client {index} render {k}", seed, steps),
                                api_name="/render")
            job.result(timeout=max(1.0, deadline - time.monotonic()))
            infos = [o[4] for o in job.outputs() if isinstance(o[4], dict) and o[4].get("role")]
            if not infos or infos[-1].get("seed") != seed:
                errors.append(f"client {index} render {k}: no result ({str(job.outputs()[-1:])[:200]})")
                continue
            out.append(time.perf_counter() - started)
        except Exception as exc:  # report, don't hang the benchmark
            errors.append(f"client {index} render {k}: {type(exc).__name__}: {exc}")


def run_level(url: str, model: str, n: int, per_client: int, steps: int, timeout: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    threads = [threading.Thread(target=one_client, args=(url, model, i, per_client, steps, latencies, errors, deadline),
                                daemon=True) for i in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    wall = time.perf_counter() - started
    return {"n": n, "renders": len(latencies), "latencies": latencies, "errors": errors, "wall": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model id (default: the embedded default model)")
    ap.add_argument("--clients", default="1,4,8", help="comma-separated client counts (default 1,4,8)")
    ap.add_argument("--per-client", type=int, default=2, help="renders each client submits in turn (default 2)")
    ap.add_argument("--steps", type=int, default=1, help="steps per render (default 1)")
    ap.add_argument("--concurrency", type=int, default=None, help="renders at once (default: app.py's default)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per level (default 300)")
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",") if x.strip()]
    if not levels or any(not 1 <= n <= MAX_CLIENTS for n in levels) or not 1 <= args.per_client <= MAX_PER_CLIENT:
        ap.error(f"clients must be 1-{MAX_CLIENTS} and --per-client 1-{MAX_PER_CLIENT}")

    from gradio_client import Client

    from studio.app.services import Studio
    from studio.ui import build_app, launch_options
    from studio.ui.serving import auto_concurrency, render_concurrency, set_concurrency

    studio = Studio.open(data_dir=tempfile.mkdtemp(prefix="studio-load-"), device="cpu")
    model = args.model or studio.settings.default_model
    spec = studio.registry.get(model)
    concurrency = args.concurrency or auto_concurrency(studio.models.device)
    demo = set_concurrency(build_app(studio), concurrency)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                            **launch_options(studio))
    assert url.startswith("http://127.0.0.1:"), url  # never anything but this machine
    try:
        t = time.perf_counter()
        warm = Client(url, verbose=False).submit(*render_args(model, "warm-up", 0, args.steps), api_name="/render")
        warm.result(timeout=args.timeout)
        warm_s = time.perf_counter() - t
        print(f"model {model} ({spec.width}x{spec.height}, {spec.frames} frames), {args.steps} step(s) per render, "
              f"{args.per_client} render(s) per client; render concurrency {render_concurrency(demo)} "
              f"(--concurrency {args.concurrency or 'default'}); {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.2f}; warm-up render incl. model load {warm_s:.2f} s")
        print(f"{'clients':>7} {'renders':>7} {'p50 s':>7} {'p90 s':>7} {'max s':>7} {'wall s':>7} "
              f"{'renders/min':>11} {'errors':>6}")
        for n in levels:
            r = run_level(url, model, n, args.per_client, args.steps, args.timeout)
            lat = r["latencies"]
            p50, p90, mx = ((percentile(lat, 50), percentile(lat, 90), max(lat)) if lat else (float("nan"),) * 3)
            per_min = 60.0 * r["renders"] / r["wall"] if r["wall"] > 0 else float("nan")
            print(f"{n:>7} {r['renders']:>7} {p50:>7.2f} {p90:>7.2f} {mx:>7.2f} {r['wall']:>7.2f} {per_min:>11.1f} "
                  f"{len(r['errors']):>6}", flush=True)
            for e in r["errors"][:3]:
                print(f"        ! {e}")
        rows = studio.history.count()
        print(f"history rows: {rows} (warm-up + every render above); model loads: {dict(studio.models.load_counts)}")
        if lat:
            print(f"median render time inside the engine (last level): "
                  f"{statistics.median(r.get('total_seconds') or 0 for r in studio.history.search(limit=50)):.2f} s")
    finally:
        demo.close()
        studio.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
