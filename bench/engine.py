"""Engine benchmarks for the embedded default model (not a test: prints figures).

    .venv/bin/python bench/engine.py [--model ID] [--steps 4] [--repeats 5]

1. Cold load (a fresh ModelManager: from_pretrained + move to device) vs a warm cache hit.
2. The engine's overhead over a bare diffusers call for the same job: prompt -> frames -> mp4.
   Bare: pipe(prompt, ...) then diffusers.utils.export_to_video. Engine: engine.run(request), which also
   validates, records history, writes metadata and a thumbnail. Runs are interleaved (A B A B ...) in one
   process so machine noise hits both alike; medians and their ratio are printed. The engine runs pipelines
   on a worker thread, so the baselines run on one too: on a loaded 2-core machine a main-thread call with
   2 OpenMP threads was measured 6-20x slower (spin-waiting on the busy core), which would flatter the engine.
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
import threading
import time
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
    from studio.models import ModelManager
    from studio.render import RenderRequest
    from studio.services import Studio

    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    settings = Settings.from_env(data_dir=tmp, device="cpu")
    model = args.model or settings.default_model
    studio = Studio.open(settings)
    spec = studio.registry.get(model)
    print(f"model {model} ({spec.family}), native {spec.width}x{spec.height}x{spec.frames}@{spec.fps}, "
          f"torch threads {torch.get_num_threads()}")

    # 1. cold load vs warm hit
    cold, warm = [], []
    for _ in range(args.repeats):
        manager = ModelManager(settings, studio.registry)
        t = time.perf_counter()
        manager.get(model)
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        manager.get(model)
        warm.append(time.perf_counter() - t)
        del manager
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"\n[load] cold {c * 1000:.1f} ms, warm hit {w * 1000:.4f} ms, ratio {c / w:,.0f}x (median of {args.repeats})")

    # 2. engine overhead over a bare pipeline call, same job
    prompt = "a red circle moving left on a black background"
    loaded = studio.models.get(model)
    pipe = loaded.pipe
    extra = {}
    if spec.family == "causal":
        from studio import chunks

        template = list(pipe.transformer.config.chunk_partition)
        extra["chunk_partition"] = chunks.chunk_partition(chunks.latent_frames(spec.frames, spec.temporal_factor), template)
    num_frames = spec.frames - 1 if pipe.vae_scale_factor_temporal == 1 else spec.frames

    def bare(i: int) -> float:
        t = time.perf_counter()
        out = pipe(prompt=prompt, height=spec.height, width=spec.width, num_frames=num_frames,
                   num_inference_steps=args.steps, generator=torch.Generator("cpu").manual_seed(i),
                   output_type="np", **extra)
        export_to_video(list(out.frames[0]), str(tmp / f"bare{i}.mp4"), fps=spec.fps)
        return time.perf_counter() - t

    def in_worker(fn, i: int) -> float:
        """Run fn(i) on a worker thread, as the engine runs pipelines (see the note in the docstring)."""
        box = {}
        th = threading.Thread(target=lambda: box.setdefault("t", fn(i)))
        th.start()
        th.join()
        return box["t"]

    def bare_same_writer(i: int) -> float:
        from studio import media

        t = time.perf_counter()
        out = pipe(prompt=prompt, height=spec.height, width=spec.width, num_frames=num_frames,
                   num_inference_steps=args.steps, generator=torch.Generator("cpu").manual_seed(i),
                   output_type="np", **extra)
        media.write_video(out.frames[0], tmp / f"same{i}.mp4", fps=spec.fps)
        return time.perf_counter() - t

    def engine(i: int) -> float:
        t = time.perf_counter()
        studio.engine.run(RenderRequest(prompt=prompt, model=model, steps=args.steps, seed=i))
        return time.perf_counter() - t

    bare(0), in_worker(bare, 0), in_worker(bare_same_writer, 0), engine(0)  # warm-up (compile/allocate)
    m, a, s, b = [], [], [], []
    for i in range(args.repeats * 2):
        m.append(bare(i))
        a.append(in_worker(bare, i))
        s.append(in_worker(bare_same_writer, i))
        b.append(engine(i))
    mm, ma, ms, mb = (statistics.median(x) for x in (m, a, s, b))
    print(f"[overhead] {args.steps} steps, {len(a)} interleaved rounds (medians):")
    print(f"  bare diffusers + export_to_video, main thread     {mm * 1000:7.0f} ms")
    print(f"  bare diffusers + export_to_video, worker thread   {ma * 1000:7.0f} ms")
    print(f"  bare diffusers + studio mp4 writer, worker thread {ms * 1000:7.0f} ms")
    print(f"  engine.run (worker thread; validate, history, metadata, thumbnail) {mb * 1000:7.0f} ms")
    print(f"  ratio engine / bare+export_to_video: {mb / ma:.3f}; engine / bare+same writer: {mb / ms:.3f}")
    ratios = sorted(y / x for x, y in zip(s, b))
    print(f"  per-round engine / bare+same writer: min {ratios[0]:.3f}, median {statistics.median(ratios):.3f}, "
          f"max {ratios[-1]:.3f}")
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
