"""Extending by N frames against a fresh render of the joined length (prints seconds, median of --repeat).

    python bench/extend.py --model anyflow-shapes --source-frames 33 --new 16 --steps 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.jobs import extend  # noqa: E402
from studio.engine.render import RenderRequest
from studio.app.services import Studio  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model")
    p.add_argument("--data-dir")
    p.add_argument("--models-file")
    p.add_argument("--device")
    p.add_argument("--source-frames", type=int, default=33)
    p.add_argument("--new", type=int, default=16)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    studio = Studio.open(data_dir=a.data_dir, models_file=a.models_file, device=a.device)
    try:
        req = RenderRequest(prompt="a red ball rolls across the floor", model=a.model, frames=a.source_frames,
                            steps=a.steps, seed=0)
        source = studio.engine.run(req)[-1]  # also warms the model
        ext, fresh = [], []
        for _ in range(a.repeat):
            t = time.perf_counter()
            result, plan = extend.extend_once(studio.engine, source.record_id, a.new, steps=a.steps)
            ext.append(time.perf_counter() - t)
            t = time.perf_counter()
            studio.engine.run(RenderRequest(prompt=req.prompt, model=a.model, frames=plan.joined_frames,
                                            steps=a.steps, seed=1))
            fresh.append(time.perf_counter() - t)
        print(f"model {source.request['model']}: {plan.source_frames} frames + {plan.new_frames} new "
              f"(context {plan.context}, V2V render of {plan.render_frames}) -> {plan.joined_frames} frames")
        print(f"extend: {statistics.median(ext):.2f} s   fresh {plan.joined_frames}-frame render: "
              f"{statistics.median(fresh):.2f} s   ratio {statistics.median(ext) / statistics.median(fresh):.2f}")
    finally:
        studio.close()


if __name__ == "__main__":
    main()
