"""Time to the first streamed frames vs the whole video, and what per-step previews cost (not a test).

    .venv/bin/python bench/streaming.py [--model ID] [--steps 8] [--frames 33] [--repeats 3]

Causal (FAR) models decode each chunk as soon as it is final; this prints, for one render, when the first
chunk's frames arrive against when the whole video is done, and the render time with per-step previews on
against off (interleaved, same process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from studio.engine.render import RenderRequest
    from studio.app.services import Studio

    studio = Studio.open(data_dir=tempfile.mkdtemp(prefix="bench-stream-"), device="cpu")
    model = args.model or studio.settings.default_model
    spec = studio.registry.get(model)
    frames = args.frames or spec.frames
    req = RenderRequest(prompt="a red circle moving left on a black background", steps=args.steps, seed=0,
                        frames=frames, model=model)
    studio.engine.run(req)  # warm-up: load, first-call costs

    def once(previews: bool):
        t0 = time.perf_counter()
        first_chunk = first_preview = None
        for ev in studio.engine.render(req, previews=previews):
            if ev.kind == "chunk" and first_chunk is None:
                first_chunk = time.perf_counter() - t0
            if ev.kind == "preview" and first_preview is None:
                first_preview = time.perf_counter() - t0
            if ev.kind == "result":
                return first_chunk, first_preview, time.perf_counter() - t0, ev

    rows_off, rows_on = [], []
    for _ in range(args.repeats):
        rows_off.append(once(False))
        rows_on.append(once(True))
    med = statistics.median
    whole = med(r[2] for r in rows_off)
    print(f"model {model} ({spec.family}), {spec.width}x{spec.height}, {frames} frames, {args.steps} steps; "
          f"median of {args.repeats}")
    if rows_off[0][0] is not None:
        first = med(r[0] for r in rows_off)
        print(f"  first streamed frames at {first:.3f} s, whole video at {whole:.3f} s "
              f"(first chunk after {first / whole:.0%} of the render)")
    else:
        print(f"  whole video at {whole:.3f} s (bidirectional: no chunks to stream)")
    on = med(r[2] for r in rows_on)
    print(f"  per-step previews: first after {med(r[1] for r in rows_on):.3f} s; render {on:.3f} s with previews vs "
          f"{whole:.3f} s without (ratio {on / whole:.3f})")
    studio.close()


if __name__ == "__main__":
    main()
