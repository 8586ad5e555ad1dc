"""How much memory a render needs, estimated before it starts, so what cannot fit is refused with a reason.

The estimate is deliberately simple and errs high. Per render:
- weights: the model's measured (or, before loading, file-based) size;
- transformer activations: tokens x (4 x hidden + ffn) x bytes, doubled for guidance;
- attention scores where they are materialised (the causal FAR model runs flex_attention unfused off
  CUDA: heads x chunk tokens x context tokens x 4 bytes);
- the VAE decode: a few frames of full-resolution features, plus the decoded video in float32;
- the output: frames x H x W x 3 float32, twice (post-processing copies).

Weights count only as far as the memory mode keeps them on the device (``resident_bytes``): all of them with
no offload, the largest component with model offload, a few transformer blocks with group offload, about one
submodule with sequential offload. ``check_render_fits`` is the pre-check the engine runs before a render.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ..errors import NotEnoughMemory

GB = 1024**3

# Memory modes, from fastest to most frugal (GPU only; on a CPU everything stays in RAM):
#   none        every component on the GPU
#   model       diffusers model CPU offload: one whole component on the GPU at a time
#   group       block-level group offload: transformer blocks stream to the GPU as they run
#   sequential  diffusers sequential offload: one submodule at a time (slowest, least memory)
MEMORY_MODES = ("none", "model", "group", "sequential")
MODE_LABELS = {"none": "all on the GPU", "model": "model CPU offload", "group": "group offload (block level)",
               "sequential": "sequential offload"}


def resident_bytes(mode: str, weights: int, largest_component: int) -> int:
    """The weights a memory mode keeps on the device while a render runs.

    group: one block on the GPU and the next one prefetched, plus the component's embeddings and head; a
    tenth of the largest component bounds that for Wan (30-40 blocks). sequential: one submodule (the text
    encoder's token embedding is the largest: about a fortieth of a Wan pipeline's largest component)."""
    return {"none": weights, "model": largest_component, "group": largest_component // 10,
            "sequential": largest_component // 40}[mode]


def choose_memory_mode(free: int, weights: int, largest_component: int, activations: int,
                       decode: int) -> tuple[str, bool, str]:
    """(mode, vae_tiling, reason) for a GPU with ``free`` bytes. Pure: the rule, in one place.

    Keep 10% headroom. Everything resident if it fits; else tile the decode when it alone would take over a
    quarter of the GPU; then the cheapest offload whose resident set fits: the largest component (model
    offload), one transformer block (group offload), or one submodule (sequential)."""
    room = 0.9 * free
    if weights + activations + decode <= room:
        return "none", False, f"all fits: needs {(weights + activations + decode) / GB:.1f} GB of {free / GB:.1f} GB free"
    tiling = decode > 0.25 * free
    decode_cost = decode / 8 if tiling else decode
    if resident_bytes("model", weights, largest_component) + activations + decode_cost <= room:
        return "model", tiling, (f"{weights / GB:.1f} GB of weights do not fit beside the work in {free / GB:.1f} GB; "
                                 f"the largest component ({largest_component / GB:.1f} GB) does")
    if resident_bytes("group", weights, largest_component) + activations + decode_cost <= room:
        return "group", tiling, "the largest component does not fit: its blocks are streamed to the GPU"
    return "sequential", True, "very little GPU memory: one submodule at a time (slow)"


def device_memory(device: str) -> tuple[int, int]:
    """(free, total) bytes on the device now: the GPU's, or the system RAM's."""
    if device.startswith("cuda"):
        import torch

        free, total = torch.cuda.mem_get_info(torch.device(device))
        return int(free), int(total)
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.available), int(vm.total)
    except ImportError:  # pragma: no cover - psutil ships with gradio
        return 8 * GB, host_memory_bytes()


def available_bytes(device: str) -> int:
    """Free memory on the device now (system RAM available, or free GPU memory)."""
    return device_memory(device)[0]


def host_memory_bytes() -> int:
    """The machine's RAM (where offloaded weights wait)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * GB


def estimate_render_bytes(*, frames: int, height: int, width: int, temporal_factor: int, family: str,
                          transformer: dict, vae: dict, guidance: bool, dtype_bytes: int,
                          device: str) -> dict:
    latent_frames = (frames - 1) // temporal_factor + 1
    spatial = vae_spatial_scale(vae)
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


def vae_spatial_scale(vae: dict) -> int:
    """The VAE's spatial downscale (8 for Wan; fewer levels in tiny VAEs)."""
    if "scale_factor_spatial" in vae:
        return int(vae["scale_factor_spatial"])
    return 2 ** (len(vae.get("dim_mult") or [1, 1, 1, 1]) - 1)


@dataclass(frozen=True)
class Placement:
    """Where a model's weights are during a render: its memory mode, VAE tiling, and sizes in bytes."""

    mode: str
    tiling: bool
    weights: int
    largest_component: int
    loaded: bool

    @property
    def resident(self) -> int:
        return resident_bytes(self.mode, self.weights, self.largest_component)

    @property
    def already_on_device(self) -> int:
        """Weights that a loaded model keeps on the device between renders (so free memory excludes them)."""
        return self.weights if self.loaded and self.mode == "none" else 0


def render_need(place: Placement, est: dict) -> int:
    """Bytes on the device during a render: the resident weights plus the work (a tiled decode takes ~1/8)."""
    decode = est["decode"] + est["output"]
    return place.resident + est["activations"] + est["attention"] + (decode // 8 if place.tiling else decode)


def check_render_fits(models, spec, req) -> None:
    """Refuse, before any work, a render that cannot fit the budget or the free memory. Raises NotEnoughMemory.

    ``models`` is the ModelManager: it knows the model's configs, sizes, memory mode and the budget."""
    transformer = models.component_config(req.model, "transformer")
    if not transformer:  # weights not on this machine: loading will say so
        return
    device = models.device
    est = estimate_render_bytes(
        frames=req.frames, height=req.height, width=req.width, temporal_factor=spec.temporal_factor,
        family=spec.family, transformer=transformer, vae=models.component_config(req.model, "vae"),
        guidance=req.guidance_scale > 1.0, dtype_bytes=models.dtype_for().itemsize, device=device)
    place = models.placement(req.model, est["activations"] + est["attention"], est["decode"] + est["output"])
    need = render_need(place, est)
    budget, free = models.budget_bytes, available_bytes(device)
    what = f"{req.width}x{req.height}, {req.frames} frames; {est['tokens']:,} tokens"
    if device.startswith("cuda"):
        what += f"; {MODE_LABELS[place.mode]}"
    if need > budget:
        raise NotEnoughMemory(f"This render needs about {need / GB:.1f} GB ({what}) but the memory budget is "
                              f"{budget / GB:.1f} GB. {_advice(place, est, budget, device)}")
    if need - place.already_on_device > free:
        raise NotEnoughMemory(f"This render needs about {need / GB:.1f} GB ({what}) but only {free / GB:.1f} GB "
                              f"is free on {device}. {_advice(place, est, free, device)}")


def _advice(place: Placement, est: dict, room: int, device: str) -> str:
    """Name the fastest memory mode that would fit, where one would."""
    if device.startswith("cuda"):
        for mode in MEMORY_MODES[MEMORY_MODES.index(place.mode) + 1:]:
            if render_need(replace(place, mode=mode, loaded=False), est) <= room:
                return (f"Start the studio with --offload {mode} ({MODE_LABELS[mode]}), "
                        "or try fewer frames or a smaller size.")
    return "Try fewer frames or a smaller size."
