"""Sweeps without a model: the metrics against known answers, the intervals, the cliff detector on synthetic curves,
and the policy proposal and its writing."""

import math
import tomllib

import numpy as np
import pytest

from studio.engine import metrics as sm
from studio.jobs import sweep_policies, sweep_report
from studio.engine.policy import Policies

RNG = np.random.default_rng(0)
CLIP = RNG.integers(0, 256, (9, 32, 40, 3), dtype=np.uint8)


def test_a_clip_against_itself_is_perfect():
    assert sm.psnr(CLIP, CLIP) == sm.PSNR_CAP
    assert sm.ssim(CLIP, CLIP) == pytest.approx(1.0)
    conv = sm.convergence(CLIP, CLIP)
    assert conv["convergence_mad"] == 0.0 and conv["convergence_ssim"] == pytest.approx(1.0)


def test_a_noisy_clip_has_the_psnr_of_its_noise():
    flat = np.full((4, 48, 48, 3), 128, np.uint8)
    noisy = np.clip(flat + RNG.normal(0, 10, flat.shape), 0, 255).round().astype(np.uint8)
    assert sm.psnr(flat, noisy) == pytest.approx(20 * math.log10(255 / 10), abs=0.3)  # MSE = sigma^2 = 100
    assert sm.ssim(flat, noisy) < 0.9


def test_a_shifted_clip_is_further_than_a_slightly_noisy_one():
    smooth = np.stack([np.tile(np.linspace(0, 255, 40, dtype=np.float32), (32, 1))] * 3, -1)
    smooth = np.stack([np.roll(smooth, t, axis=1) for t in range(5)]).astype(np.uint8)
    shifted = np.roll(smooth, 6, axis=2)
    noisy = np.clip(smooth + RNG.normal(0, 2, smooth.shape), 0, 255).round().astype(np.uint8)
    assert sm.convergence(shifted, smooth)["convergence_mad"] > sm.convergence(noisy, smooth)["convergence_mad"]
    assert sm.psnr(shifted, smooth) < sm.psnr(noisy, smooth)


def test_temporal_change_and_flicker():
    still = np.repeat(CLIP[:1], 6, axis=0)
    assert sm.temporal(still) == {"change": 0.0, "flicker": 0.0}
    ramp = np.stack([np.full((8, 8, 3), 10 * t, np.uint8) for t in range(6)])  # steady change: no flicker
    t = sm.temporal(ramp)
    assert t["change"] == pytest.approx(10 / 255, abs=1e-6) and t["flicker"] == pytest.approx(0.0, abs=1e-6)
    flash = np.stack([np.full((8, 8, 3), 200 * (t % 2), np.uint8) for t in range(6)])
    assert sm.temporal(flash)["flicker"] == pytest.approx(400 / 255, abs=1e-5)


def test_sharpness_drops_when_blurred():
    from scipy.ndimage import uniform_filter

    board = (np.indices((32, 32)).sum(0) % 2 * 255).astype(np.uint8)
    sharp = np.stack([board] * 3, -1)[None]
    blurred = uniform_filter(sharp.astype(np.float32), size=(1, 5, 5, 1)).astype(np.uint8)
    assert sm.sharpness(sharp)[0] > 10 * sm.sharpness(blurred)[0]


def test_image_and_video_fidelity():
    assert sm.image_to_video(CLIP, CLIP[0]) == {"i2v_psnr": sm.PSNR_CAP, "i2v_ssim": pytest.approx(1.0)}
    frozen = np.concatenate([CLIP[:3], np.repeat(CLIP[2:3], 4, axis=0)])
    out = sm.video_to_video(frozen, CLIP[:3])
    assert out["v2v_context_psnr"] == sm.PSNR_CAP and out["v2v_move"] == 0.0
    assert sm.video_to_video(CLIP, CLIP[:3])["v2v_move"] > 0.1


def test_the_judge_scores_a_clip_of_its_world():
    from training import data

    params = data.ClipParams("red", "square", "right", "black", 22.0, 18.0, 32.0, 28.0)
    scores = sm.judged(data.render_clip(params), params.caption)
    assert scores["judge_all"] == 1.0 and scores["judge_colour"] == 1.0
    assert sm.judged(CLIP, "a cat on a sofa") == {}


def test_wilson_and_t_intervals():
    w = sweep_report.wilson(5, 10)
    assert (round(w["low"], 3), round(w["high"], 3)) == (0.237, 0.763)
    assert sweep_report.wilson(0, 0)["rate"] is None
    m = sweep_report.mean_interval([1.0, 2.0, 3.0])
    assert m["mean"] == 2.0 and m["low"] == pytest.approx(2 - 4.303 / math.sqrt(3), abs=1e-3)
    assert sweep_report.mean_interval([5.0])["low"] is None


def _series(means, noise=0.01):
    rng = np.random.default_rng(1)
    return {b: list(m + rng.normal(0, noise, 4)) for b, m in zip((1, 2, 4, 8, 16), means)}


def test_cliffs_on_synthetic_curves():
    assert sweep_report.find_cliffs(_series([0.2, 0.4, 0.6, 0.8, 0.9])) == []  # rising
    assert sweep_report.find_cliffs(_series([0.5] * 5)) == []  # flat within its noise
    dip = sweep_report.find_cliffs(_series([0.3, 0.5, 0.7, 0.4, 0.75]))
    assert [(c["at_steps"], c["from_steps"]) for c in dip] == [(8, 4)]
    assert dip[0]["drop"] == pytest.approx(0.3, abs=0.05) and dip[0]["noise"] < 0.1
    # lower is better: flicker rising at 8
    assert [c["at_steps"] for c in sweep_report.find_cliffs(_series([0.3, 0.2, 0.1, 0.4, 0.1]), -1)] == [8]
    assert sweep_report.find_cliffs(_series([0.3, 0.5, 0.7, 0.4, 0.75]), 0) == []  # neutral metric


def _summary(conv: dict, accepted: dict | None = None) -> list[dict]:
    out = []
    for steps, value in conv.items():
        acc = sweep_report.wilson(*(accepted or {}).get(steps, (0, 0)))
        out.append({"model": "m", "steps": steps, "renders": 4, "seconds": {"median": steps * 0.5},
                    "metrics": {"convergence_ssim": {"mean": value}}, "accepted": acc})
    return out


def test_policies_from_convergence_then_from_reviews():
    proposal = sweep_policies.propose(_summary({1: 0.6, 2: 0.8, 4: 0.9, 8: 0.97, 16: 1.0}))
    assert {p["name"]: p["steps"] for p in proposal["policies"]} == {"draft": 2, "preview": 4, "final": 8}
    assert proposal["signal"].startswith("convergence") and all(p["reason"] for p in proposal["policies"])
    reviewed = sweep_policies.propose(_summary({1: 0.6, 2: 0.8, 4: 0.9, 8: 0.97, 16: 1.0},
                                               {1: (1, 4), 2: (3, 4), 4: (4, 4), 8: (4, 4), 16: (4, 4)}))
    assert reviewed["signal"] == "accepted rate"
    assert {p["name"]: p["steps"] for p in reviewed["policies"]} == {"draft": 2, "preview": 4, "final": 4}


def test_writing_policies_keeps_the_rest_of_the_file(tmp_path):
    path = tmp_path / "policies.toml"
    path.write_text("# mine\n[queue]\nthreshold = 9\n\n[policies.final]\nsteps = 20\nwidth = 320\n", encoding="utf-8")
    proposal = sweep_policies.propose(_summary({1: 0.6, 2: 0.8, 4: 0.9, 8: 0.97, 16: 1.0}))
    sweep_policies.write(path, proposal, "sw-1")
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    assert text.startswith("# mine") and data["queue"]["threshold"] == 9
    assert data["policies"]["final"] == {"steps": 8, "width": 320, "description": data["policies"]["final"]["description"],
                                         "source": "sweep:sw-1"}
    assert Policies.load(path).get("draft").steps == 2  # the studio reads what was written


def test_the_cli_reads_prompt_files_boards_and_image_folders(tmp_path):
    from types import SimpleNamespace

    from studio.cli.sweep_commands import sweep_spec
    from studio.errors import StudioError

    text = tmp_path / "p.txt"
    text.write_text("# mine\n\na red circle\n  a blue square  \n", encoding="utf-8")
    flags = dict(board=None, prompts=str(text), mode="t2v", seeds=2, model=None, name=None, budgets=[1, 4],
                 frames=None, images=None, videos=None)
    spec = sweep_spec(SimpleNamespace(**flags))
    assert spec["prompts"] == ["a red circle", "a blue square"] and spec["budgets"] == [1, 4] and spec["seeds"] == 2
    images = tmp_path / "images"
    images.mkdir()
    for name in ("b.png", "a.png"):
        (images / name).write_bytes(b"x")
    spec = sweep_spec(SimpleNamespace(**dict(flags, mode="i2v", images=str(images))))
    assert [p["image"].rsplit("/", 1)[-1] for p in spec["prompts"]] == ["a.png", "b.png"]  # name order
    (images / "c.png").write_bytes(b"x")
    with pytest.raises(StudioError, match="3 files for 2 prompts"):
        sweep_spec(SimpleNamespace(**dict(flags, mode="i2v", images=str(images))))
    board = tmp_path / "board.json"
    board.write_text('{"name": "b", "shots": [{"prompt": "one", "image": "images/a.png"}, {"prompt": "two"}]}',
                     encoding="utf-8")
    spec = sweep_spec(SimpleNamespace(**dict(flags, prompts=None, board=str(board), mode="i2v")))
    assert spec["prompts"][0] == {"prompt": "one", "image": str(images / "a.png")} and spec["name"] == "board"
    assert spec["prompts"][1] == {"prompt": "two"}  # the studio says it needs an image


def test_peak_memory_is_measured_on_cuda_only(monkeypatch):
    import torch

    from studio.engine import denoise

    budget = lambda: ("frames", {"denoise": 1.0})  # noqa: E731
    assert denoise._with_peak_memory("cpu", budget) == ("frames", {"denoise": 1.0})  # nothing guessed on a CPU
    calls = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device: calls.append(device))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 3 * 2**30)
    frames, timings = denoise._with_peak_memory("cuda:0", budget)
    assert calls == ["cuda:0"] and timings == {"denoise": 1.0, "peak_memory_bytes": 3 * 2**30}
    rows = [{"timings": timings}, {"timings": {"peak_memory_bytes": 2**30}}]
    assert sweep_report._memory(rows) == 3.0 and sweep_report._memory([{"timings": {}}]) == "not measured"
