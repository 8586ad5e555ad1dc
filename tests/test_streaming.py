"""Fast previews and streamed chunks: cheap, early, and exactly the final video."""

import numpy as np
import pytest
import torch

from studio.engine import preview as pv
from studio.engine.render import RenderRequest


def _run(studio, req, **kw):
    return list(studio.engine.render(req, **kw))


@pytest.mark.parametrize("mode", ["t2v", "i2v", "v2v"])
def test_streamed_chunks_are_exactly_the_final_video(studio, sample_media, mode):
    extra = {"i2v": {"image": str(sample_media["image"])}, "v2v": {"video": str(sample_media["video"])}}.get(mode, {})
    req = RenderRequest(prompt="a red circle", mode=mode, steps=2, seed=4, frames=17, **extra)
    streamed = _run(studio, req)
    plain = _run(studio, req, stream_chunks=False)
    chunks = [e for e in streamed if e.kind == "chunk"]
    result = streamed[-1]
    assert result.kind == "result" and not [e for e in plain if e.kind == "chunk"]
    assert [c.chunk for c in chunks] == list(range(len(chunks))) and chunks[0].chunks == len(chunks) == 3
    assert np.array_equal(np.concatenate([c.frames for c in chunks]), result.frames)
    assert [c.first_frame for c in chunks] == [0, 1, 13]  # 17 frames: chunks of 1, 3, 1 latent frames
    assert np.abs(result.frames.astype(int) - plain[-1].frames.astype(int)).max() <= 1  # same decode, same video


def test_engine_output_equals_a_bare_pipeline_call(studio):
    res = studio.engine.run(RenderRequest(prompt="a blue square", steps=2, seed=7))[0]
    pipe = studio.models.get("t-far").pipe
    bare = pipe(prompt="a blue square", height=32, width=32, num_frames=9, num_inference_steps=2,
                generator=torch.Generator("cpu").manual_seed(7), output_type="np", chunk_partition=[1, 2]).frames[0]
    assert np.abs(res.frames.astype(int) - (bare * 255 + 0.5).astype(np.uint8).astype(int)).max() <= 1


def test_first_chunk_arrives_before_the_render_ends(studio):
    events = _run(studio, RenderRequest(prompt="a slow one", steps=3, seed=0, frames=17))
    kinds = [e.kind for e in events]
    first_chunk, last_progress = kinds.index("chunk"), len(kinds) - 1 - kinds[::-1].index("progress")
    assert first_chunk < last_progress  # shown while later chunks still denoise
    chunks = [e for e in events if e.kind == "chunk"]
    assert chunks[0].seconds < chunks[-1].seconds


def test_previews_each_step(studio):
    events = _run(studio, RenderRequest(prompt="a preview", steps=3, seed=0, model="t-bidi"), previews=True)
    previews = [e for e in events if e.kind == "preview"]
    assert [p.step for p in previews] == [1, 2, 3]
    assert previews[0].frames.shape == (3, 4, 4, 3) and previews[0].frames.dtype == np.uint8  # latent resolution
    far = _run(studio, RenderRequest(prompt="a preview", steps=2, seed=0), previews=True)
    assert [p.chunk for p in far if p.kind == "preview"] == [0, 0, 1, 1]


class LinearVAE(torch.nn.Module):
    """A stand-in VAE whose latents are a known linear function of colour (random-weight VAEs keep too little
    colour for a linear read-out to mean anything; trained ones, like the embedded codec, are near-linear)."""

    dtype = torch.float32

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.mix = torch.nn.Parameter(torch.randn(16, 3, generator=gen), requires_grad=False)
        self.config = type("C", (), {"latents_mean": [0.3] * 16, "latents_std": [2.5] * 16})()

    def _encode(self, x):
        pooled = torch.nn.functional.avg_pool3d(x, (1, 8, 8))  # (N, 3, 1, h, w)
        mu = torch.einsum("nct...,dc->ndt...", pooled, self.mix)
        return torch.cat([mu, torch.zeros_like(mu)], dim=1)  # (mean, logvar) moments


def test_projection_recovers_a_linear_codec_on_unseen_images():
    vae = LinearVAE()
    pipe = type("P", (), {"vae": vae, "vae_scale_factor_spatial": 8})()
    weight, bias = pv.fit_projection(pipe)
    images = pv._fit_images(64, seed=123)  # other colours and blocks than the fit saw
    latents = pv._normalise(vae, torch.chunk(vae._encode(images), 2, dim=1)[0]).permute(0, 2, 1, 3, 4)
    target = torch.nn.functional.avg_pool3d(images, (1, 8, 8)).permute(0, 2, 3, 4, 1)
    pred = torch.einsum("ntchw,cd->nthwd", latents, weight) + bias
    assert (pred - target).pow(2).mean() < 1e-3 * (target - target.mean()).pow(2).mean()
    frames = pv.project(latents[:1], weight, bias)  # uint8 read-out of the first image
    assert frames.shape == (1, 8, 8, 3) and frames.dtype == np.uint8
