"""Engine benchmarks for the embedded default model (not a test: prints figures).

    .venv/bin/python bench/engine.py [--model ID] [--steps 4] [--repeats 5]

1. Cold load (a fresh ModelManager: from_pretrained + move to device) vs a warm cache hit.
2. The engine's overhead over the bare recipe for the same job: prompt -> frames -> mp4. The bare recipe replays
   the pipeline calls engine.run made on a warm-up run (a T2V render is two: its first frame alone, then the
   clip), with the same inputs, and writes the frames with the studio's own mp4 writer; engine.run also
   validates, records history, writes metadata and a thumbnail. Runs are interleaved (A B A B ...) and every torch call runs on one worker
   thread (the engine runs pipelines on worker threads; in one process, once the main thread has called torch,
   worker-thread calls run 1.5-1.9x slower, and on a loaded 2-core machine a main-thread call was 6-20x slower).
   Medians and their ratio are printed.
3. CLI render time at the model's native size for 1, 4 and 16 steps (a subprocess each, wall clock,
   including Python start-up and imports, plus the engine's own total).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-cli", action="store_true")
    args = ap.parse_args()

    import torch
    from diffusers.utils import export_to_video

    from studio.config import Settings
    from studio.models.manager import ModelManager
    from studio.engine.render import RenderRequest
    from studio.app.services import Studio

    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    settings = Settings.from_env(data_dir=tmp, device="cpu")
    model = args.model or settings.default_model
    studio = Studio.open(settings)
    spec = studio.registry.get(model)
    print(f"model {model} ({spec.family}), native {spec.width}x{spec.height}x{spec.frames}@{spec.fps}, "
          f"torch threads {torch.get_num_threads()}")

    # every torch call of this bench runs on this one worker thread (see 2.)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-torch")

    # 1. cold load vs warm hit
    cold, warm = [], []

    def load_twice() -> None:
        manager = ModelManager(settings, studio.registry)
        t = time.perf_counter()
        manager.get(model)
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        manager.get(model)
        warm.append(time.perf_counter() - t)

    for _ in range(args.repeats):
        worker.submit(load_twice).result()
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"\n[load] cold {c * 1000:.1f} ms, warm hit {w * 1000:.4f} ms, ratio {c / w:,.0f}x (median of {args.repeats})")

    # 2. engine overhead over a bare pipeline call, same job
    prompt = "a red circle moving left on a black background"
    loaded = worker.submit(studio.models.get, model).result()
    pipe = loaded.pipe

    # Like with like (issue 27): the bare recipe replays the pipeline calls the engine made on its warm-up run (a
    # T2V render is two: its first frame alone, then the clip from it), with the same inputs, and writes the
    # frames with the same mp4 writer; and every torch call of this section runs on a worker thread, never the main one (in one process,
    # worker-thread calls run 1.5-1.9x slower once the main thread has called torch: same CPU, far more switches).
    pipe_class = type(pipe)
    calls: list[dict] = []  # the keyword arguments of each pipeline call the engine makes (its warm-up run)

    def counted(self, *a, **k):
        calls.append({key: v for key, v in k.items() if not key.startswith("callback_on_step_end")})
        return original(self, *a, **k)

    def bare_recipe(i: int) -> float:
        """The engine's pipeline calls replayed bare (the same inputs: embeddings, latents, sizes, steps; no
        step callbacks), each frames output written with the studio's own mp4 writer."""
        from studio.engine import media

        t = time.perf_counter()
        for n, kwargs in enumerate(calls):
            out = pipe(**kwargs)
            if kwargs.get("output_type") != "latent":
                media.write_video(media.to_uint8(out.frames[0]), tmp / f"bare{i}-{n}.mp4", fps=spec.fps)
        return time.perf_counter() - t

    def engine(i: int) -> float:
        t = time.perf_counter()
        studio.engine.run(RenderRequest(prompt=prompt, model=model, steps=args.steps, seed=i))
        return time.perf_counter() - t

    original = pipe_class.__call__
    pipe_class.__call__ = counted
    try:
        worker.submit(engine, 0).result()  # warm-up, and the pipeline calls the engine makes
    finally:
        pipe_class.__call__ = original
    worker.submit(bare_recipe, 0).result()  # warm-up
    bare_times, engine_times = [], []
    for i in range(args.repeats * 2):  # interleaved: machine noise hits both alike
        bare_times.append(worker.submit(bare_recipe, i).result())
        engine_times.append(worker.submit(engine, i).result())
    worker.shutdown()
    mb, me = statistics.median(bare_times), statistics.median(engine_times)
    shapes = [(k.get("num_frames"), k.get("output_type", "np")) for k in calls]
    print(f"[overhead] request of {args.steps} steps = {len(calls)} pipeline call(s) (frames, output): {shapes}; "
          f"{len(bare_times)} interleaved rounds, every torch call on one worker thread (medians):")
    print(f"  bare recipe: the same pipeline calls + the studio's mp4 writer  {mb * 1000:7.0f} ms")
    print(f"  engine.run (validate, history, metadata, thumbnail)             {me * 1000:7.0f} ms")
    ratios = sorted(e / b for b, e in zip(bare_times, engine_times))
    print(f"  per-round engine / bare recipe: min {ratios[0]:.3f}, median {statistics.median(ratios):.3f}, "
          f"max {ratios[-1]:.3f}")
    print(f"  ratio engine / bare recipe + same file writing: {me / mb:.3f}")
    studio.close()

    # 3. CLI at native size
    if args.skip_cli:
        return
    print("\n[cli] python -m studio render at native size (wall clock incl. start-up; engine total)")
    for steps in (1, 4, 16):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "studio", "render", "--prompt", prompt, "--steps", str(steps), "--seed", "0",
             "--model", model, "--json", "--data-dir", str(tmp / "cli")],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        wall = time.perf_counter() - t
        timings = json.loads(out.stdout)["results"][0]["timings"]
        print(f"  {steps:>2} steps: wall {wall:5.2f} s; engine total {timings['total']:.2f} s "
              f"(load {timings['load']:.2f}, encode {timings['encode']:.2f}, denoise {timings['denoise']:.2f}, "
              f"decode {timings['decode']:.2f}, write {timings['write']:.2f})")


if __name__ == "__main__":
    main()
