"""FAR renders with diffusers' stock causal attention vs the studio's (studio/models/far_attention.py), not a test.

    .venv/bin/python bench/far_attention.py [--folder assets/models/anyflow-tiny-far] [--steps 4] [--frames 17]
                                            [--seed 0] [--repeats 7]

One bare pipeline, loaded once; its self-attention processors are swapped between runs. Prints the frame
difference (float frames on a 0-1 scale, and the uint8 frames a user sees) and the seconds per denoising step:
the median over ``repeats`` interleaved runs (stock, ours, stock, ...) of the denoising call alone
(``output_type="latent"``, no VAE decode) divided by steps x chunks. Each run's time includes the KV-cache
prefill between chunks, which both processors run through the same stock masked path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def use(pipe, processor) -> None:
    for block in pipe.transformer.blocks:
        block.attn1.set_processor(processor)


def render(pipe, args, partition, output_type: str):
    import torch

    return pipe(prompt="a red circle moving left on a black background", height=args.height, width=args.width,
                num_frames=args.frames, num_inference_steps=args.steps, chunk_partition=partition,
                generator=torch.Generator("cpu").manual_seed(args.seed), output_type=output_type).frames


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", default=str(ROOT / "assets" / "models" / "anyflow-tiny-far"))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.models.transformers.transformer_anyflow_far import AnyFlowCausalAttnProcessor

    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    from studio.engine import chunks, media
    from studio.models import far_attention

    dlogging.set_verbosity_error()
    dlogging.disable_progress_bar()
    tlogging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning)  # flex attention runs uncompiled on the CPU: it says so
    pipe = DiffusionPipeline.from_pretrained(args.folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    partition = chunks.chunk_partition(chunks.latent_frames(args.frames, pipe.vae_scale_factor_temporal),
                                       pipe.transformer.config.chunk_partition)
    processors = {"stock": AnyFlowCausalAttnProcessor(), "studio": far_attention.MaskedPaddingCausalAttnProcessor()}

    frames = {}
    for name, processor in processors.items():  # also the warm-up (flex attention's first call is slow)
        use(pipe, processor)
        with torch.no_grad():
            frames[name] = render(pipe, args, partition, "np")[0]
    diff = np.abs(frames["stock"] - frames["studio"])
    diff8 = np.abs(media.to_uint8(frames["stock"]).astype(int) - media.to_uint8(frames["studio"]).astype(int))

    seconds = {name: [] for name in processors}
    for _ in range(args.repeats):
        for name, processor in processors.items():
            use(pipe, processor)
            t = time.perf_counter()
            with torch.no_grad():
                render(pipe, args, partition, "latent")
            seconds[name].append((time.perf_counter() - t) / (args.steps * len(partition)))
    per_step = {name: statistics.median(s) for name, s in seconds.items()}

    print(f"{Path(args.folder).name}: {args.frames} frames, {args.steps} steps, seed {args.seed}, "
          f"chunks {partition}, {args.height}x{args.width}, torch threads {torch.get_num_threads()}")
    print(f"frame difference, stock vs studio (0-1 scale): mean {diff.mean():.4f}, max {diff.max():.4f}; "
          f"uint8: mean {diff8.mean():.2f}, max {diff8.max()} of 255")
    for name in processors:
        runs = ", ".join(f"{s * 1000:.0f}" for s in seconds[name])
        print(f"seconds per step, {name:6s}: median {per_step[name] * 1000:.1f} ms  (runs: {runs} ms)")
    return {"mean_abs": float(diff.mean()), "max_abs": float(diff.max()), "per_step": per_step}


if __name__ == "__main__":
    main()
