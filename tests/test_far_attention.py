"""FAR renders attend over real tokens only (issue 18): the studio's render equals one computed with plain
scaled-dot-product attention and no padding, and the stock diffusers processor still differs."""

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_anyflow_far import AnyFlowCausalAttnProcessor, apply_rotary_emb

from studio.engine import chunks
from studio.models.far_attention import MaskedPaddingCausalAttnProcessor
from studio.models.registry import ModelSpec
from studio.engine.request import RenderRequest

FRAMES = 29  # 8 latent frames: chunks [1, 3, 3, 1], the last one beside a compressed (FAR) context chunk


class SDPAReference:
    """FAR self-attention as NVIDIA computes it: torch SDPA over the real tokens, nothing padded. With a block
    mask (KV-cache prefill) the mask's own rule, evaluated token by token, is the dense mask; without one (an
    inference step) every query sees the cached tokens and its whole chunk, as in the stock processor."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None,
                 kv_cache=None, kv_cache_flag=None):
        q = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1)).transpose(1, 2)
        k = attn.norm_k(attn.to_k(hidden_states)).unflatten(2, (attn.heads, -1)).transpose(1, 2)
        v = attn.to_v(hidden_states).unflatten(2, (attn.heads, -1)).transpose(1, 2)
        flag = kv_cache_flag
        if kv_cache is not None and flag["is_cache_step"]:  # prefill writes the un-rotated keys into the cache
            nc, nf = flag["num_compressed_tokens"], flag["num_full_tokens"]
            for i, x in enumerate((k, v)):
                kv_cache["compressed_cache"][i, :, :, :nc] = x[:, :, :nc]
                kv_cache["full_cache"][i, :, :, :nf] = x[:, :, nc:]
        elif kv_cache is not None:  # a step reads the cached compressed and full tokens before its own
            nc, nf = flag["num_cached_compressed_tokens"], flag["num_cached_full_tokens"]
            k = torch.cat([kv_cache["compressed_cache"][0, :, :, :nc], kv_cache["full_cache"][0, :, :, :nf], k], 2)
            v = torch.cat([kv_cache["compressed_cache"][1, :, :, :nc], kv_cache["full_cache"][1, :, :, :nf], v], 2)
        q, k = apply_rotary_emb(q, rotary_emb["query"]), apply_rotary_emb(k, rotary_emb["key"])
        mask = None
        if attention_mask is not None:
            qi, ki = torch.arange(q.shape[2])[:, None], torch.arange(k.shape[2])[None, :]
            mask = attention_mask.mask_mod(torch.tensor(0), torch.tensor(0), qi, ki)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).flatten(2, 3)
        return attn.to_out[1](attn.to_out[0](out))


def _self_attention(pipe):
    return [b.attn1 for b in pipe.transformer.blocks]


def _render(studio, model: str, req: RenderRequest) -> torch.Tensor:
    """The render's frames as floats on a 0-1 scale, read at the VAE decoder's output (before uint8)."""
    pipe = studio.models.get(model).pipe
    frames = []
    hook = pipe.vae.decoder.register_forward_hook(lambda _m, _a, out: frames.append(out.detach().clone()))
    try:
        studio.engine.run(RenderRequest(**dict(req.to_dict(), model=model)))
    finally:
        hook.remove()
    return torch.cat(frames, 2).clamp(-1, 1) / 2 + 0.5


def _reference_copy(studio, tiny_dirs, processor, name="t-far-ref"):
    """A fresh copy of the tiny FAR, its self-attention replaced by ``processor``."""
    family, folder, modes = tiny_dirs["t-far"]
    studio.registry.add(ModelSpec(id=name, source=f"local:{folder}", family=family, modes=modes, height=32,
                                  width=32, frames=9, fps=8))
    for attn in _self_attention(studio.models.get(name).pipe):
        attn.set_processor(processor)
    return name


def _request(mode, sample_media):
    video = str(sample_media["video"]) if mode == "v2v" else None
    return RenderRequest(prompt="a red circle", mode=mode, video=video, steps=2, seed=3, frames=FRAMES)


def test_studio_installs_the_processor_on_self_attention_only(studio):
    pipe = studio.models.get("t-far").pipe
    for block in pipe.transformer.blocks:
        assert isinstance(block.attn1.processor, MaskedPaddingCausalAttnProcessor)
        assert not isinstance(block.attn2.processor, AnyFlowCausalAttnProcessor)  # cross-attention untouched
    partition = chunks.chunk_partition(chunks.latent_frames(FRAMES), pipe.transformer.config.chunk_partition)
    assert len(partition) >= 3 and len(partition) > pipe.transformer.config.full_chunk_limit


@pytest.mark.parametrize("mode", ["t2v", "v2v"])
def test_far_render_equals_unpadded_sdpa_reference(studio, tiny_dirs, sample_media, mode):
    req = _request(mode, sample_media)
    ours = _render(studio, "t-far", req)
    reference = _render(studio, _reference_copy(studio, tiny_dirs, SDPAReference()), req)
    assert ours.shape == reference.shape and ours.shape[2] == FRAMES
    diff = (ours - reference).abs().max().item()
    assert diff <= 1e-5, f"{mode}: the studio's FAR render differs from unpadded SDPA by {diff:.2e}"


def test_stock_processor_still_pads(studio, tiny_dirs, sample_media):
    """The day this fails, diffusers pads only under a mask: delete studio/models/far_attention.py and its call in
    ModelManager._load (and this file)."""
    req = _request("t2v", sample_media)
    reference = _render(studio, _reference_copy(studio, tiny_dirs, SDPAReference()), req)
    stock = _render(studio, _reference_copy(studio, tiny_dirs, AnyFlowCausalAttnProcessor(), "t-far-stock"), req)
    diff = (stock - reference).abs().max().item()
    assert diff > 1e-3, (
        f"diffusers' stock AnyFlowCausalAttnProcessor now matches unpadded attention (max diff {diff:.1e}): "
        "upstream no longer pads without a mask, so studio/models/far_attention.py and its call in "
        "ModelManager._load can go (and this test with them)."
    )
