"""Time to the first preview vs time to the final video, through the UI, measured client-side.

    python bench/ui_latency.py [--model ID] [--runs 3] [--preview 2] [--steps 8]

Starts the studio in-process on a fresh data folder, drives the Create tab's render
endpoint with gradio_client (the same calls the browser makes) and times, from submit,
when the preview video and the final video arrive. The first run includes the model load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = "a red circle moving left on a black background"


def one_run(client, model, steps, preview, seed):
    started = time.perf_counter()
    job = client.submit("t2v", model, PROMPT, "", None, None, steps, seed, False, None, None, True, preview,
                        api_name="/render")
    marks = {}
    for out in job:
        info = out[4]
        if isinstance(info, dict) and info.get("role") and info["role"] not in marks:
            marks[info["role"]] = (time.perf_counter() - started, info.get("seconds"))
    job.result(timeout=600)
    return marks


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None)
    p.add_argument("--runs", type=int, default=3, help="warm runs after the first (cold) one")
    p.add_argument("--preview", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args()

    from gradio_client import Client

    from studio.app.services import Studio
    from studio.ui import build_app, launch_options

    studio = Studio.open(data_dir=tempfile.mkdtemp(prefix="studio-bench-"))
    model = args.model or studio.settings.default_model
    demo = build_app(studio)
    _, url, _ = demo.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                                    **launch_options(studio))
    client = Client(url, verbose=False)
    spec = studio.registry.get(model)
    print(f"model {model} ({spec.width}x{spec.height}, {spec.frames} frames), preview {args.preview} steps, "
          f"final {args.steps} steps, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'run':>6} {'first preview s':>16} {'final video s':>14} {'preview render s':>17} {'final render s':>15}")
    warm = []
    try:
        for i in range(args.runs + 1):
            marks = one_run(client, model, args.steps, args.preview, seed=i)
            pv, fv = marks.get("preview", (None, None)), marks.get("final", (None, None))
            name = "cold" if i == 0 else f"warm{i}"
            print(f"{name:>6} {pv[0]:16.2f} {fv[0]:14.2f} {pv[1]:17.2f} {fv[1]:15.2f}")
            if i:
                warm.append((pv[0], fv[0]))
        if warm:
            mp, mf = statistics.median(w[0] for w in warm), statistics.median(w[1] for w in warm)
            print(f"median warm: first preview {mp:.2f} s, final {mf:.2f} s (preview at {mp / mf:.0%} of the wait)")
    finally:
        demo.close()
        studio.close()


if __name__ == "__main__":
    main()
