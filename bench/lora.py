"""LoRA costs on the embedded model (not a test: prints figures).

    .venv/bin/python bench/lora.py [--rank 16] [--repeats 5] [--steps 4]

A LoRA on every attention projection of every block (attn1/attn2 to_q, to_k, to_v, to_out.0), made here.
1. The engine's check of a file before a render (header, key conversion on meta tensors, shapes).
2. Load (first use on a pipeline), a warm switch (another cached adapter), re-use, and the exit (disable);
   full unload.
3. A warm render through the engine without and with a LoRA, interleaved (A B A B ...), medians.
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


def make_lora(path: Path, config: dict, rank: int, seed: int) -> Path:
    import torch
    from safetensors.torch import save_file

    inner = config["num_attention_heads"] * config["attention_head_dim"]
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for i in range(config["num_layers"]):
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                key = f"transformer.blocks.{i}.{attn}.{proj}"
                weights[f"{key}.lora_A.weight"] = torch.randn(rank, inner, generator=g) * 0.05
                weights[f"{key}.lora_B.weight"] = torch.randn(inner, rank, generator=g) * 0.05
    save_file(weights, str(path))
    return path


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()

    from studio.engine import lora
    from studio.config import Settings
    from studio.engine.render import RenderRequest
    from studio.app.services import Studio

    studio = Studio.open(Settings(data_dir=Path(tempfile.mkdtemp()), device="auto"))
    spec = studio.registry.get(studio.settings.default_model)
    config = studio.models.transformer_config(spec.id)
    folder = studio.settings.loras_dir
    folder.mkdir(parents=True, exist_ok=True)
    a = make_lora(folder / "a.safetensors", config, args.rank, 0)
    b = make_lora(folder / "b.safetensors", config, args.rank, 1)
    print(f"model {spec.id} on {studio.models.device}; LoRA rank {args.rank}, {a.stat().st_size / 1e6:.2f} MB")

    check = RenderRequest(prompt="x", loras=(("a.safetensors", 1.0),))
    import diffusers  # a render imports it anyway: not counted

    diffusers.AnyFlowPipeline, diffusers.AnyFlowTransformer3DModel
    first = timed(lambda: studio.engine.validate(check))
    again = statistics.median(timed(lambda: studio.engine.validate(check)) for _ in range(args.repeats))
    print(f"check before a render: first {first * 1e3:.1f} ms (builds the meta transformer), then {again * 1e3:.1f} ms")

    pipe = studio.models.get(spec.id).pipe
    ad_a, ad_b = lora.adapters([("a.safetensors", 1.0)], folder), lora.adapters([("b.safetensors", 1.0)], folder)

    def enter_exit(adapters) -> tuple[float, float]:
        ctx = lora.applied(pipe, adapters)
        t0 = time.perf_counter()
        ctx.__enter__()
        t1 = time.perf_counter()
        ctx.__exit__(None, None, None)
        return t1 - t0, time.perf_counter() - t1

    load, exit_s = enter_exit(ad_a)
    load_b, _ = enter_exit(ad_b)
    switch = [enter_exit(ad_a if i % 2 else ad_b) for i in range(args.repeats * 2)]
    print(f"load (first use): {load * 1e3:.1f} ms, a second file {load_b * 1e3:.1f} ms; exit (disable) {exit_s * 1e3:.1f} ms")
    print(f"warm switch between cached adapters: enter {statistics.median(s for s, _ in switch) * 1e3:.1f} ms, "
          f"exit {statistics.median(e for _, e in switch) * 1e3:.1f} ms")
    print(f"full unload: {timed(lambda: lora.unload(pipe)) * 1e3:.1f} ms")

    req = RenderRequest(prompt="a red circle moving left on a black background", seed=0, steps=args.steps)
    styled = RenderRequest(**{**req.to_dict(), "loras": (("a.safetensors", 1.0),)})
    studio.engine.run(req), studio.engine.run(styled)  # warm both
    base, with_lora = [], []
    for _ in range(args.repeats):
        base.append(timed(lambda: studio.engine.run(req)))
        with_lora.append(timed(lambda: studio.engine.run(styled)))
    mb, ml = statistics.median(base), statistics.median(with_lora)
    print(f"warm render, {args.steps} steps, native size: without {mb:.3f} s, with a cached LoRA {ml:.3f} s "
          f"(+{(ml - mb) * 1e3:.0f} ms, x{ml / mb:.2f})")
    studio.close()


if __name__ == "__main__":
    main()
