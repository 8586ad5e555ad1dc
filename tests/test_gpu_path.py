"""The GPU path, checked on the CPU: the real-size benchmark's code at tiny size, memory-mode choice, tiling."""

import sys
from pathlib import Path

import pytest

from studio.models.manager import GB, MEMORY_MODES, apply_memory_mode, choose_memory_mode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))


def test_gpu_benchmark_runs_small_on_cpu(tmp_path):
    import gpu

    out = tmp_path / "gpu.json"
    results = gpu.main(["--small", "--steps", "1,2", "--json", str(out)])
    assert out.is_file() and {f["family"] for f in results["families"]} == {"bidirectional", "causal"}
    for fam in results["families"]:
        assert [b["steps"] for b in fam["budgets"]] == [1, 2]
        assert all(b["end_to_end_s"] > 0 and b["s_per_call"] > 0 for b in fam["budgets"])
        assert fam["floor_s_per_call"] > 0 and fam["text_encode_s"] > 0
    causal = next(f for f in results["families"] if f["family"] == "causal")
    assert causal["budgets"][1]["transformer_calls"] == 2 * 3  # 2 steps x 3 chunks at 17 frames


@pytest.mark.parametrize("free, weights, largest, act, decode, mode, tiling", [
    (80, 17, 11, 2, 3, "none", False),        # an 80 GB GPU holds a 1.3B model and its work
    (24, 30, 11, 2, 3, "model", False),       # weights too big together; one component fits
    (16, 30, 11, 2, 8, "model", True),        # the decode alone is half the GPU: tile it
    (8, 30, 11, 2, 3, "group", True),         # not even the largest component: stream blocks; tile the decode
    (12, 30, 11, 2, 1, "group", False),       # ... with a decode small enough not to tile
    (3, 30, 11, 2, 3, "sequential", True),    # almost nothing free
])
def test_memory_mode_choice(free, weights, largest, act, decode, mode, tiling):
    got_mode, got_tiling, reason = choose_memory_mode(free * GB, weights * GB, largest * GB, act * GB, decode * GB)
    assert (got_mode, got_tiling) == (mode, tiling) and reason


def test_memory_modes_on_cpu_keep_everything_in_ram(studio):
    loaded = studio.models.get("t-far")
    assert loaded.memory_mode == "none" and "CPU" in loaded.memory_reason
    row = next(r for r in studio.models.describe() if r["id"] == "t-far")
    assert row["memory_mode"] == "CPU (all in RAM)" and row["loaded"]


def _plan_on_a_simulated_gpu(monkeypatch, settings, spec, pipe, free):
    """plan_memory for this (CPU) pipeline as a CUDA manager with ``free`` bytes would make it."""
    from dataclasses import replace
    from types import SimpleNamespace

    import torch

    from studio.models.manager import ModelManager

    with monkeypatch.context() as m:
        m.setattr(torch.cuda, "is_available", lambda: True)
        m.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * GB))
        m.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(total_memory=80 * GB))
        return ModelManager(replace(settings, device="cuda")).plan_memory(spec, pipe)


def test_vae_tiling_follows_the_memory_plan_and_really_tiles(studio, monkeypatch):
    """The tiling decision comes from the figures (the decode would take over a quarter of a GPU too small
    for everything), and a render with it decodes through the VAE's tiled path.

    The tiny VAE's tiles are shrunk to 16 px (the default 256 px never tiles a 32x32 frame). Its random
    weights make a tiled decode differ from an untiled one, so only the path is checked, not the pixels."""
    from studio.models import memory
    from studio.models.manager import _component_bytes
    from studio.engine.render import RenderRequest

    spec, pipe = studio.registry.get("t-bidi"), studio.models.get("t-bidi").pipe
    est = memory.estimate_render_bytes(
        frames=spec.frames, height=spec.height, width=spec.width, temporal_factor=spec.temporal_factor,
        family=spec.family, transformer=dict(pipe.transformer.config), vae=dict(pipe.vae.config), guidance=False,
        dtype_bytes=4, device="cuda")
    decode = est["decode"] + est["output"]
    everything = sum(_component_bytes(pipe)) + est["activations"] + decode
    assert decode > 0.25 * everything  # so with `everything` free, nothing fits in 90% of it and the decode tiles
    assert _plan_on_a_simulated_gpu(monkeypatch, studio.settings, spec, pipe, 100 * everything)[:2] == ("none", False)
    mode, tiling, _reason = _plan_on_a_simulated_gpu(monkeypatch, studio.settings, spec, pipe, everything)
    assert mode != "none" and tiling

    apply_memory_mode(pipe, "none", "cpu", vae_tiling=tiling)  # placed on this CPU, with the plan's tiling
    assert pipe.vae.use_tiling
    pipe.vae.enable_tiling(tile_sample_min_height=16, tile_sample_min_width=16, tile_sample_stride_height=8,
                           tile_sample_stride_width=8)
    tiled_calls = []
    untiled_decode = pipe.vae.tiled_decode
    monkeypatch.setattr(pipe.vae, "tiled_decode", lambda *a, **k: tiled_calls.append(1) or untiled_decode(*a, **k))
    res = studio.engine.run(RenderRequest(prompt="tiled", model="t-bidi", steps=1, seed=0))[0]
    assert tiled_calls and res.frames.shape == (9, 32, 32, 3)


def test_unknown_memory_mode_is_refused(studio):
    pipe = studio.models.get("t-bidi").pipe
    with pytest.raises(Exception, match="Unknown memory mode"):
        apply_memory_mode(pipe, "turbo", "cpu")
    assert set(MEMORY_MODES) == {"none", "model", "group", "sequential"}
