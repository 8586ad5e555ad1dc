"""The training recipe (training/, issue 4): every stage runs for a few iterations on tiny settings, and what
it writes loads through the stock diffusers pipelines. Also the judge on ground-truth clips."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.engine import judge  # noqa: E402
from training import data  # noqa: E402


def test_world_and_held_out_split():
    assert len(data.ALL_COMBOS) == 144
    assert len(data.HELD_OUT) == 14 and len(set(data.HELD_OUT)) == 14
    assert len(data.TRAIN_COMBOS) == 130 and not set(data.TRAIN_COMBOS) & set(data.HELD_OUT)
    for i, values in enumerate((data.COLOURS, data.SHAPES, data.DIRECTIONS, data.BACKGROUNDS)):
        assert {c[i] for c in data.TRAIN_COMBOS} == set(values)  # every word is still seen in training
    p = data.sample_params(np.random.default_rng(0), ("red", "circle", "left", "white"))
    assert p.caption == "a red circle moving left on a white background"
    clip = data.render_clip(p)
    assert clip.shape == (17, 64, 64, 3) and clip.dtype == np.uint8


def test_judge_palette_matches_world():
    assert judge.COLOURS == data.COLOURS and judge.BACKGROUNDS == data.BACKGROUNDS
    assert set(judge.SHAPES) == set(data.SHAPES) and set(judge.DIRECTIONS) == set(data.DIRECTIONS)


@pytest.mark.parametrize("held_out", [False, True])
def test_judge_is_right_on_ground_truth(held_out):
    params = data.eval_params(48, held_out)
    scores = judge.score_batch([data.render_clip(p) for p in params], params)
    assert all(scores[m] == 1.0 for m in judge.METRICS), scores


def test_judge_rejects_a_still_or_empty_clip():
    p = data.sample_params(np.random.default_rng(1), ("blue", "square", "up", "gray"))
    clip = data.render_clip(p)
    still = np.repeat(clip[:1], 17, axis=0)
    s = judge.score_clip(still, p)
    assert s["colour"] and s["background"] and s["shape"] and not s["direction"]
    empty = np.full_like(clip, 128)
    s = judge.score_clip(empty, p)
    assert s["background"] and not (s["colour"] or s["direction"] or s["shape"])
    assert judge.score_clip(clip.astype(np.float32) / 255.0, p) == {m: True for m in judge.METRICS}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Runs the four stages on tiny settings once; the tests below inspect the results."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    os.environ["HF_HUB_OFFLINE"] = "1"
    from training import export, student, teacher, vae

    w = tmp_path_factory.mktemp("runs")
    vae.main(["--workdir", str(w), "--clips", "16"])
    tiny = ["--workdir", str(w), "--pool", "32", "--batch", "2", "--ckpt-every", "2", "--eval-every", "0"]
    phases = ["--narrow-pool", "32", "--narrow-from", "2", "--free-pool", "16", "--free-from", "3"]  # all data phases
    teacher.main(tiny + phases + ["--iters", "2", "--warmup", "1", "--t2i-batch", "2"])
    teacher.main(tiny + phases + ["--iters", "3", "--warmup", "1", "--t2i-batch", "2"])  # resumes from step 2
    st_args = tiny + ["--iters", "2", "--warmup", "1", "--traj", "4", "--traj-chunk", "2", "--traj-keyframes", "3",
                      "--kf-batch", "2", "--free-pool", "16"]
    student.main(st_args + ["--low-iters", "1"])
    student.main(st_args + ["--low-iters", "2"])  # resumes inside the low-noise phase
    export.main(["--workdir", str(w), "--dest", str(w / "assets")])
    return w


def test_vae_codec_is_exact_in_autoencoder_kl_wan(work):
    from diffusers import AutoencoderKLWan

    from training.vae import Codec, clips_to_tensor

    codec = Codec.load(work / "vae" / "codec.npz")
    vae = AutoencoderKLWan.from_pretrained(work / "vae")
    assert vae.config.scale_factor_temporal == 1 and vae.config.patch_size == 8
    clips, _ = data.sample_batch(np.random.default_rng(3), 2)
    with torch.no_grad():
        mu = vae.encode(clips_to_tensor(clips)).latent_dist.mode()
        rec = vae.decode(mu).sample
    lat = (mu - codec.lat_mean.view(1, -1, 1, 1, 1)) / codec.lat_std.view(1, -1, 1, 1, 1)
    assert torch.allclose(lat.permute(0, 2, 1, 3, 4), codec.encode(clips), atol=1e-3)
    rec_u8 = ((rec.permute(0, 2, 3, 4, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    assert np.abs(rec_u8.astype(int) - codec.decode(codec.encode(clips)).astype(int)).max() <= 2


def test_stages_checkpoint_and_resume(work):
    assert torch.load(work / "teacher" / "ckpt.pt", weights_only=False)["step"] == 3
    assert "resumed from step 2" in (work / "teacher" / "log.txt").read_text()
    assert torch.load(work / "student" / "ckpt.pt", weights_only=False)["step"] == 4
    log = (work / "student" / "log.txt").read_text()
    assert log.count("low-noise phase:") == 1 and "resumed from step 3" in log
    assert len(list((work / "student" / "traj").glob("0*.pt"))) == 2
    kf = torch.load(work / "student" / "traj" / "keyframes.pt")
    assert kf["paths"].shape[:3] == (3, 17, 1)  # 3 single-frame paths, 16 steps + the noise


def test_student_segments_feed_the_clean_prefix_like_the_pipeline():
    from training.student import segment_batch

    paths = torch.randn(3, 17, 5, 16, 2, 2)  # (trajectory, grid point, frame, C, h, w)
    ks = torch.tensor([0, 1, 3])
    j, i0, i1 = torch.tensor([2, 1, 0]), torch.tensor([0, 0, 8]), torch.tensor([16, 4, 12])
    z_i, z_j, is_ctx = segment_batch(paths, ks, j, i0, i1)
    assert is_ctx.tolist() == [[True] * 3 + [False] * 2, [True] + [False] * 4, [False] * 5]
    assert torch.equal(z_i[0, :3], paths[2, -1, :3]) and torch.equal(z_i[0, 3:], paths[2, 0, 3:])
    assert torch.equal(z_i[1, :1], paths[1, -1, :1]) and torch.equal(z_j[1, 1:], paths[1, 4, 1:])
    assert torch.equal(z_i[2], paths[0, 8]) and torch.equal(z_j[2], paths[0, 12])


def test_low_noise_phase_draws_segments_from_the_end_of_the_path():
    from training.common import grid_sigmas
    from training.student import FINE, low_segment_table, mixed_segments

    sig = grid_sigmas(FINE)
    table = low_segment_table(sig, 0.75)
    assert (sig[table[:, 0]] <= 0.75 + 1e-6).all() and (table[:, 1] - table[:, 0] >= 1).all()
    assert [8, 16] in table.tolist() and [15, 16] in table.tolist() and [0, 16] not in table.tolist()
    g = torch.Generator().manual_seed(0)
    i0, _ = mixed_segments(4000, g, table, 1.0)
    assert (sig[i0] <= 0.75 + 1e-6).all()
    i0, _ = mixed_segments(4000, g, table, 0.0)
    assert 0.3 < (sig[i0] <= 0.75 + 1e-6).float().mean() < 0.45  # phase 2: about 37% (the nested grids)


def test_training_forward_matches_the_pipeline(work):
    """The deduplicated 512-token text padding used in training gives the pipeline's numbers (T2V and V2V)."""
    from training.common import use_dedup_cross_attention
    from training.export import build_pipeline
    from training.sampling import encode_text, sample
    from training.vae import Codec

    pipe = build_pipeline(work, work / "student" / "ema" / "transformer", work / "teacher" / "ema" / "text_encoder")
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a red circle moving right on a black background", "a blue square moving up on a gray background"]
    clips, _ = data.sample_batch(np.random.default_rng(0), 2)
    video = torch.from_numpy(clips[:, :5]).float().div(255).permute(0, 1, 4, 2, 3)
    for ctx in (None, video):
        g = torch.Generator().manual_seed(0)
        lat = pipe(prompts, video=ctx, num_frames=16, height=64, width=64, num_inference_steps=2, generator=g,
                   output_type="latent").frames
        noise = torch.randn(2, 16, 17, 8, 8, generator=torch.Generator().manual_seed(0)).permute(0, 2, 1, 3, 4)
        states, bias = encode_text(pipe.text_encoder, pipe.tokenizer, prompts)
        use_dedup_cross_attention(pipe.transformer, True)
        c = None if ctx is None else Codec.load(work / "vae" / "codec.npz").encode(clips[:, :5])
        z = sample(pipe.transformer, states, bias, noise, 2, ctx=c)
        use_dedup_cross_attention(pipe.transformer, False)
        assert torch.allclose(z.permute(0, 2, 1, 3, 4), lat, atol=1e-4)


@pytest.mark.parametrize("name", ["anyflow-shapes", "anyflow-shapes-teacher"])
def test_exported_folders_reload_offline_and_render(work, name):
    from diffusers import AnyFlowPipeline, DiffusionPipeline

    folder = work / "assets" / name
    pipe = DiffusionPipeline.from_pretrained(folder)
    assert isinstance(pipe, AnyFlowPipeline)
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 20e6
    pipe.set_progress_bar_config(disable=True)
    frames = pipe("a green triangle moving down on a white background", num_frames=16, height=64, width=64,
                  num_inference_steps=1, guidance_scale=1.0).frames[0]
    assert frames.shape == (17, 64, 64, 3)
    first = torch.from_numpy(data.render_clip(data.eval_params(1, False)[0])[:1]).float().div(255)
    frames = pipe("a green triangle moving down on a white background", video=first.permute(0, 3, 1, 2)[None],
                  num_frames=16, height=64, width=64, num_inference_steps=2).frames[0]
    assert frames.shape == (17, 64, 64, 3)
    assert np.abs(frames[0] - first[0].numpy()).mean() < 0.03  # I2V keeps the first frame (through the codec)


def test_any_step_bench_runs_on_the_exported_folders(work, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("any_step", ROOT / "bench" / "any_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--models", str(work / "assets"), "--out", str(tmp_path), "--n", "2", "--steps", "1", "2",
                "--i2v-steps", "1"])
    table = (tmp_path / "any_step.md").read_text()
    for row in ("| student | seen | 2 |", "| teacher | held_out | 1 |", "| student | seen, one-call T2V | 1 |",
                "| teacher | I2V (first frame) | 1 |"):
        assert row in table
    res = json.loads((tmp_path / "any_step.json").read_text())
    assert res["student"]["seen"]["2"]["n"] == 2 and res["student"]["timing"]["2"]["render_s"] > 0
    assert (tmp_path / "any_step.png").stat().st_size > 1000
