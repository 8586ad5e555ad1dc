"""Real-size AnyFlow benchmark without downloads: the published architectures with random weights.

    python bench/gpu.py                 # CUDA, 480x832, 81 frames, bf16: 1.3B bidirectional and FAR
    python bench/gpu.py --modes         # also peak memory and time per memory mode (see studio/models/manager.py)
    python bench/gpu.py --small         # the same code at a tiny size on the CPU (a test runs this)

Builds AnyFlowTransformer3DModel / AnyFlowFARTransformer3DModel (1.3B: 30 layers, 12 heads of 128,
ffn 8960, text_dim 4096), the Wan VAE (AutoencoderKLWan defaults) and a UMT5-XXL-shaped text encoder,
then measures text encoding, seconds per step, VAE decode, peak memory and end-to-end time for
1, 2, 4, 8 and 16 steps. Random weights render noise, but cost exactly what trained ones do.
The floor printed beside seconds per step is FLOPs per step / the device's measured matmul rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REAL = {
    "transformer": dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                        out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
                        cross_attn_norm=True, eps=1e-6, rope_max_seq_len=1024, gate_value=0.25, deltatime_type="r"),
    "far": dict(compressed_patch_size=(1, 4, 4), full_chunk_limit=3, chunk_partition=(1, 3, 3, 3, 3, 3, 3, 2)),
    "vae": {},  # AutoencoderKLWan defaults are Wan2.1's VAE
    "text": dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32,
                 feed_forward_proj="gated-gelu", vocab_size=256384),
    "size": (480, 832, 81),
}
SMALL = {
    "transformer": dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
                        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                        rope_max_seq_len=64, gate_value=0.25, deltatime_type="r"),
    "far": dict(compressed_patch_size=(1, 4, 4), full_chunk_limit=3, chunk_partition=(1, 3, 3, 3, 3, 3, 3, 2)),
    "vae": dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]),
    "text": dict(d_model=32, d_kv=8, d_ff=32, num_layers=1, num_heads=2, relative_attention_num_buckets=8,
                 feed_forward_proj="gated-gelu"),
    "size": (64, 64, 17),
}


def build(cfg: dict, family: str, device, dtype):
    """A complete pipeline with random weights, allocated straight on ``device``."""
    import torch
    from diffusers import (AnyFlowFARPipeline, AnyFlowFARTransformer3DModel, AnyFlowPipeline,
                           AnyFlowTransformer3DModel, AutoencoderKLWan, FlowMapEulerDiscreteScheduler)
    from transformers import UMT5Config, UMT5EncoderModel

    from studio.models.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    text_cfg = dict(cfg["text"])
    text_cfg.setdefault("vocab_size", len(tokenizer))
    with torch.device(device):
        text_encoder = UMT5EncoderModel(UMT5Config(**text_cfg)).to(dtype).eval()
        if family == "causal":
            transformer = AnyFlowFARTransformer3DModel(**cfg["transformer"], **cfg["far"])
        else:
            transformer = AnyFlowTransformer3DModel(**cfg["transformer"])
        transformer = keep_fp32_modules(transformer.to(dtype)).eval()
        vae = AutoencoderKLWan(**cfg["vae"]).to(torch.float32).eval()
    scheduler = FlowMapEulerDiscreteScheduler(num_train_timesteps=1000, shift=5.0)
    cls = AnyFlowFARPipeline if family == "causal" else AnyFlowPipeline
    pipe = cls(tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    if family == "causal":
        from studio.models import far_attention

        far_attention.install(pipe)  # time the attention the studio runs (see studio/models/far_attention.py)
    return pipe


def keep_fp32_modules(model):
    """Cast back the modules diffusers keeps in fp32 (as from_pretrained does for a real checkpoint)."""
    import torch

    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, module in model.named_modules():
        if any(k in name.split(".") for k in keep):
            module.to(torch.float32)
    return model


def matmul_rate(device, dtype, n: int) -> float:
    """Measured dense matmul throughput in FLOP/s."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    reps = 10 if device.type == "cuda" else 3
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def flops_per_step(transformer, tokens: int, text_tokens: int = 512) -> float:
    """Linear layers 2 x params x tokens, plus self-attention 4 x tokens^2 x hidden and cross-attention per layer."""
    cfg = transformer.config
    hidden = cfg.num_attention_heads * cfg.attention_head_dim
    params = sum(p.numel() for p in transformer.blocks.parameters())
    return 2 * params * tokens + cfg.num_layers * (4 * tokens * tokens * hidden + 4 * tokens * text_tokens * hidden)


def measure(pipe, family: str, height: int, width: int, frames: int, steps_list, device) -> dict:
    import torch

    from studio.engine import chunks

    extra = {}
    latent = chunks.latent_frames(frames, pipe.vae_scale_factor_temporal)
    if family == "causal":
        extra["chunk_partition"] = chunks.chunk_partition(latent, list(pipe.transformer.config.chunk_partition))
    tokens = latent * (height // 16) * (width // 16)
    out = {"family": family, "tokens": tokens}

    def peak_reset():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def peak() -> float | None:
        return torch.cuda.max_memory_allocated() / 1024**3 if device.type == "cuda" else None

    # text encoding
    pipe.encode_prompt("a fox running through snow", do_classifier_free_guidance=False, max_sequence_length=512,
                       device=device)
    sync(device)
    t = time.perf_counter()
    embeds, _ = pipe.encode_prompt("a fox running through snow", do_classifier_free_guidance=False,
                                   max_sequence_length=512, device=device)
    sync(device)
    out["text_encode_s"] = time.perf_counter() - t

    # warm-up, then end-to-end per budget with per-step timing from the callback
    def run(steps):
        stamps = []

        def cb(_p, _i, _t, _k):
            sync(device)
            stamps.append(time.perf_counter())
            return {}

        peak_reset()
        sync(device)
        t0 = time.perf_counter()
        pipe(prompt_embeds=embeds, height=height, width=width, num_frames=frames, num_inference_steps=steps,
             generator=torch.Generator("cpu").manual_seed(0), output_type="np", callback_on_step_end=cb,
             callback_on_step_end_tensor_inputs=[], **extra)
        sync(device)
        t1 = time.perf_counter()
        return t1 - t0, stamps, t0, t1, peak()

    run(1)
    rows = []
    for steps in steps_list:
        total, stamps, t0, t1, pk = run(steps)
        calls = len(stamps)
        per_call = (stamps[-1] - stamps[0]) / (calls - 1) if calls > 1 else (stamps[0] - t0)
        rows.append({"steps": steps, "transformer_calls": calls, "end_to_end_s": total, "s_per_call": per_call,
                     "decode_s": t1 - stamps[-1], "peak_gb": pk})
    out["budgets"] = rows
    rate = matmul_rate(device, pipe.transformer.dtype, 8192 if device.type == "cuda" else 512)
    flops = flops_per_step(pipe.transformer, tokens)
    if family == "causal":  # chunked: each call sees one chunk's tokens against a cached prefix
        flops = flops / len(extra["chunk_partition"])
    out["matmul_tflops"] = rate / 1e12
    out["floor_s_per_call"] = flops / rate
    return out


def measure_modes(cfg, family, device, dtype, height, width, frames) -> list[dict]:
    """Peak GPU memory and 4-step time per memory mode (CUDA only)."""
    import torch

    from studio.models.manager import apply_memory_mode

    rows = []
    for mode, tiling in (("none", False), ("none", True), ("model", False), ("group", False), ("sequential", False)):
        pipe = build(cfg, family, "cpu" if mode != "none" else device, dtype)
        apply_memory_mode(pipe, mode, str(device), vae_tiling=tiling)
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        t = time.perf_counter()
        try:
            measure_once = measure(pipe, family, height, width, frames, [4], device)
            rows.append({"mode": mode, "vae_tiling": tiling, "s_4_steps": measure_once["budgets"][0]["end_to_end_s"],
                         "peak_gb": torch.cuda.max_memory_allocated() / 1024**3})
        except torch.OutOfMemoryError:
            rows.append({"mode": mode, "vae_tiling": tiling, "s_4_steps": None, "peak_gb": "OOM"})
        rows[-1]["wall_s"] = time.perf_counter() - t
        del pipe
        torch.cuda.empty_cache()
    return rows


def main(argv=None) -> dict:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="tiny configs on the CPU (checks the code path)")
    ap.add_argument("--steps", default="1,2,4,8,16")
    ap.add_argument("--families", default="bidirectional,causal")
    ap.add_argument("--modes", action="store_true", help="also peak memory per memory mode (CUDA)")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)

    from studio.app.services import quiet_libraries

    quiet_libraries()
    cfg = SMALL if args.small else REAL
    if args.small:
        device, dtype = torch.device("cpu"), torch.float32
    else:
        if not torch.cuda.is_available():
            sys.exit("No CUDA GPU here: run with --small for the CPU check, or on a GPU machine.")
        device, dtype = torch.device("cuda"), torch.bfloat16
    height, width, frames = cfg["size"]
    steps_list = [int(s) for s in args.steps.split(",")]
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {width}x{height}, {frames} frames, {str(dtype).replace('torch.', '')}")
    results = {"device": name, "size": [width, height, frames], "families": []}
    for family in args.families.split(","):
        pipe = build(cfg, family, device, dtype)
        n_params = sum(p.numel() for p in pipe.transformer.parameters()) / 1e9
        r = measure(pipe, family, height, width, frames, steps_list, device)
        r["transformer_params_b"] = n_params
        results["families"].append(r)
        print(f"\n{family}: transformer {n_params:.3f}B params, {r['tokens']:,} tokens; text encoding "
              f"{r['text_encode_s']:.3f} s; matmul {r['matmul_tflops']:.1f} TFLOP/s; floor {r['floor_s_per_call']:.4f} s/call")
        print(f"{'steps':>5} {'calls':>5} {'s/call':>8} {'decode s':>9} {'end-to-end s':>13} {'peak GB':>8}")
        for row in r["budgets"]:
            pk = f"{row['peak_gb']:.1f}" if row["peak_gb"] is not None else "-"
            print(f"{row['steps']:>5} {row['transformer_calls']:>5} {row['s_per_call']:>8.4f} {row['decode_s']:>9.3f} "
                  f"{row['end_to_end_s']:>13.3f} {pk:>8}")
        del pipe
        if args.modes and device.type == "cuda":
            modes = measure_modes(cfg, family, device, dtype, height, width, frames)
            r["modes"] = modes
            for m in modes:
                print(f"  mode {m['mode']:<10} tiling {str(m['vae_tiling']):<5} 4 steps {m['s_4_steps']} s, peak {m['peak_gb']} GB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
