"""A fixed pool of training clips, rendered once and stored as latents (rendering is the slow part on CPU)."""

from __future__ import annotations

import numpy as np
import torch

from . import data
from .common import Log
from .vae import Codec


def build_or_load(work, codec: Codec, n: int, seed: int, log: Log, variation: str = "wide"):
    path = work / (f"pool_{n}_{seed}.pt" if variation == "wide" else f"pool_{variation}_{n}_{seed}.pt")
    if path.exists():
        return torch.load(path)
    rng = np.random.default_rng({"wide": [seed, 7], "narrow": [seed, 8]}.get(variation, [seed, 9]))
    lats, combos = [], []
    index = {c: i for i, c in enumerate(data.ALL_COMBOS)}
    for start in range(0, n, 256):
        clips, params = data.sample_batch(rng, min(256, n - start), variation=variation)
        lats.append(codec.encode(clips).half())
        combos += [index[(p.colour, p.shape, p.direction, p.background)] for p in params]
        log(f"pool ({variation}): {start + len(params)}/{n} clips")
    pool = {"latents": torch.cat(lats), "combo": torch.tensor(combos)}
    tmp = path.with_suffix(".tmp")
    torch.save(pool, tmp)
    tmp.replace(path)
    return pool


def captions_for(combo_idx) -> list[str]:
    return [data.caption(*data.ALL_COMBOS[int(i)]) for i in combo_idx]
