"""LoRA files made in a test, in the diffusers Wan format, for a transformer of ``inner`` = heads x head_dim."""

from pathlib import Path

import torch
from safetensors.torch import save_file


def make_lora(path: Path, inner: int, layers: int = 2, rank: int = 4, seed: int = 0, scale: float = 0.5,
              prefix: str = "transformer.blocks") -> Path:
    """LoRA on ``attn1.to_q`` of the first ``layers`` blocks: lora_A (rank x in), lora_B (out x rank)."""
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for i in range(layers):
        weights[f"{prefix}.{i}.attn1.to_q.lora_A.weight"] = torch.randn(rank, inner, generator=g) * scale
        weights[f"{prefix}.{i}.attn1.to_q.lora_B.weight"] = torch.randn(inner, rank, generator=g) * scale
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path))
    return path
