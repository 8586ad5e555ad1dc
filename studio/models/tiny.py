"""Tiny AnyFlow pipelines built from config, offline.

Used by the tests and by ``scripts/make_embedded_model.py``: no hub, no files.
The component shapes are the small working values from diffusers' own tests
(see ../shared/NOTES.md). Weights are random (seeded), so the output is noise;
the point is that every code path a real checkpoint takes runs for real.
"""

from __future__ import annotations

import string

import torch

# A word-level vocabulary: special tokens first (T5 convention), then the
# lowercase words and characters a prompt is likely to contain.
_SPECIAL = ["<pad>", "</s>", "<unk>"]
_WORDS = (
    "a an the on in of and with moving left right up down circle square triangle "
    "red green blue yellow black white gray background cat dog fox forest snow "
    "city night sunset ocean sky camera slow fast shot"
).split()


def tiny_tokenizer():
    from transformers import T5Tokenizer

    pieces = _SPECIAL + ["\u2581" + w for w in _WORDS] + list(string.ascii_lowercase + string.digits)
    vocab = [(p, 0.0 if i < len(_SPECIAL) else -float(i)) for i, p in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab)


def tiny_text_encoder(vocab_size: int, d_model: int = 32):
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = UMT5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
    )
    return UMT5EncoderModel(cfg)


def tiny_vae():
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


_TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=16,
    out_channels=16,
    text_dim=32,
    freq_dim=256,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    gate_value=0.25,
    deltatime_type="r",
    rope_max_seq_len=64,
)


def tiny_transformer(family: str = "bidirectional"):
    if family == "causal":
        from diffusers import AnyFlowFARTransformer3DModel

        return AnyFlowFARTransformer3DModel(
            **_TRANSFORMER, compressed_patch_size=(1, 4, 4), full_chunk_limit=3, chunk_partition=(1, 3, 3, 3, 3, 3, 3, 2)
        )
    from diffusers import AnyFlowTransformer3DModel

    return AnyFlowTransformer3DModel(**_TRANSFORMER)


def tiny_pipeline(family: str = "bidirectional", seed: int = 0):
    """A complete, runnable AnyFlow pipeline with random weights."""
    from diffusers import AnyFlowFARPipeline, AnyFlowPipeline, FlowMapEulerDiscreteScheduler

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = tiny_text_encoder(len(tokenizer)).eval()
    vae = tiny_vae().eval()
    transformer = tiny_transformer(family).eval()
    scheduler = FlowMapEulerDiscreteScheduler(num_train_timesteps=1000, shift=5.0)
    cls = AnyFlowFARPipeline if family == "causal" else AnyFlowPipeline
    return cls(tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae, scheduler=scheduler)
