"""The GPU path, checked on the CPU: the real-size benchmark's code at tiny size, memory-mode choice, tiling."""

import sys
from pathlib import Path

import pytest

from studio.models import GB, MEMORY_MODES, apply_memory_mode, choose_memory_mode

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


def test_vae_tiling_is_applied_and_decodes(studio):
    from studio.render import RenderRequest

    pipe = studio.models.get("t-bidi").pipe
    apply_memory_mode(pipe, "none", "cpu", vae_tiling=True)
    assert pipe.vae.use_tiling
    res = studio.engine.run(RenderRequest(prompt="tiled", model="t-bidi", steps=1, seed=0))[0]
    assert res.frames.shape == (9, 32, 32, 3)
    with pytest.raises(Exception, match="Unknown memory mode"):
        apply_memory_mode(pipe, "turbo", "cpu")
    assert set(MEMORY_MODES) == {"none", "model", "group", "sequential"}
