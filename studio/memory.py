"""How much memory a render needs, estimated before it starts, so what cannot fit is refused with a reason.

The estimate is deliberately simple and errs high. Per render:
- weights: the model's measured (or, before loading, file-based) size;
- transformer activations: tokens x (4 x hidden + ffn) x bytes, doubled for guidance;
- attention scores where they are materialised (the causal FAR model runs flex_attention unfused off
  CUDA: heads x chunk tokens x context tokens x 4 bytes);
- the VAE decode: a few frames of full-resolution features, plus the decoded video in float32;
- the output: frames x H x W x 3 float32, twice (post-processing copies).
"""

from __future__ import annotations

GB = 1024**3


def available_bytes(device: str) -> int:
    """Free memory on the device now (system RAM available, or free GPU memory)."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil ships with gradio
        return 8 * GB


def estimate_render_bytes(*, frames: int, height: int, width: int, temporal_factor: int, family: str,
                          transformer: dict, vae: dict, guidance: bool, dtype_bytes: int,
                          device: str) -> dict:
    latent_frames = (frames - 1) // temporal_factor + 1
    spatial = getattr_scale(vae)
    patch = transformer.get("patch_size") or (1, 2, 2)
    per_frame = (height // spatial // patch[1]) * (width // spatial // patch[2])
    tokens = latent_frames * per_frame
    heads = int(transformer.get("num_attention_heads", 12))
    hidden = heads * int(transformer.get("attention_head_dim", 128))
    ffn = int(transformer.get("ffn_dim", 4 * hidden))
    batch = 2 if guidance else 1
    activations = batch * tokens * (4 * hidden + ffn) * dtype_bytes * 2
    attention = 0
    if family == "causal" and not device.startswith("cuda"):
        chunk = max(transformer.get("chunk_partition") or (3,)) * per_frame
        attention = batch * heads * chunk * tokens * 4 * 3  # scores, softmax, mask
    elif not device.startswith("cuda"):
        attention = batch * heads * min(tokens, 4096) * tokens * 4 // 8  # CPU SDPA works in blocks
    base = int(vae.get("base_dim", 96)) * max(vae.get("dim_mult") or [4])
    decode = 4 * height * width * base * 4 + frames * height * width * 3 * 4
    output = 2 * frames * height * width * 3 * 4
    total = activations + attention + decode + output
    return {"tokens": tokens, "activations": activations, "attention": attention, "decode": decode,
            "output": output, "total": total}


def getattr_scale(vae: dict) -> int:
    """The VAE's spatial downscale (8 for Wan; fewer levels in tiny VAEs)."""
    if "scale_factor_spatial" in vae:
        return int(vae["scale_factor_spatial"])
    return 2 ** (len(vae.get("dim_mult") or [1, 1, 1, 1]) - 1)
