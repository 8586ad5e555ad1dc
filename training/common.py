"""Shared pieces of the training recipe: paths, logging, checkpoints, the text side, model configs."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = REPO / "runs"
ASSETS = REPO / "assets" / "models"

# Text side: a word-level vocabulary (every caption word is one token).
SPECIAL = ["<pad>", "</s>", "<unk>"]
WORDS = (
    "a on moving background red green blue yellow circle square triangle left right up down black white gray"
).split()
MAX_SEQ = 512  # AnyFlowPipeline's default ``max_sequence_length``; training reproduces it exactly.

TEXT_CONFIG = dict(d_model=64, d_kv=32, d_ff=64, num_layers=1, num_heads=2, relative_attention_num_buckets=8,
                   relative_attention_max_distance=16, dropout_rate=0.0, feed_forward_proj="gated-gelu")

TRANSFORMER_CONFIG = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=4,
    attention_head_dim=32,
    in_channels=16,
    out_channels=16,
    text_dim=64,
    freq_dim=256,
    ffn_dim=512,
    num_layers=4,
    cross_attn_norm=True,
    gate_value=0.25,
    deltatime_type="r",
    rope_max_seq_len=64,
)

SCHEDULER_SHIFT = 3.0  # FlowMapEulerDiscreteScheduler(shift=...) of the shipped pipelines


def workdir(path: str | os.PathLike | None) -> Path:
    p = Path(path) if path else DEFAULT_WORKDIR
    p.mkdir(parents=True, exist_ok=True)
    return p


class Log:
    """Appends lines to ``<dir>/log.txt`` and echoes them."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()

    def __call__(self, msg: str):
        line = f"[{time.strftime('%H:%M:%S')} +{time.time() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def save_json(path: Path, obj):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def atomic_torch_save(obj, path: Path):
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def build_tokenizer():
    from transformers import T5Tokenizer

    pieces = SPECIAL + ["\u2581" + w for w in WORDS]
    vocab = [(p, 0.0 if i < len(SPECIAL) else -1.0) for i, p in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab)


def build_text_encoder(vocab_size: int, seed: int = 0, bag_of_words: bool = True):
    """A tiny UMT5 encoder. With ``bag_of_words`` (the recipe's choice) its weights are *written*, not learned:
    word i embeds as the one-hot e_i, the first layer attends uniformly over the prompt's tokens (q = 0, no
    relative bias) and adds the mean, everything else is the identity. Every output position then carries its own
    word plus the whole caption's bag of words, so colour, shape, direction and background all reach any video
    token that attends to any caption token, with equal strength. (A jointly trained random encoder broadcast
    colour only; shape and direction stayed at chance.)"""
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    model = UMT5EncoderModel(UMT5Config(vocab_size=vocab_size, **TEXT_CONFIG))
    if not bag_of_words:
        return model
    d = TEXT_CONFIG["d_model"]
    with torch.no_grad():
        emb = torch.zeros(vocab_size, d)
        emb[torch.arange(vocab_size), torch.arange(vocab_size) % d] = 1.0
        model.shared.weight.copy_(emb)
        model.encoder.embed_tokens.weight.copy_(emb)
        for i, block in enumerate(model.encoder.block):
            att = block.layer[0].SelfAttention
            att.q.weight.zero_()
            att.k.weight.zero_()
            att.relative_attention_bias.weight.zero_()
            inner = att.v.weight.shape[0]
            att.v.weight.copy_(torch.eye(inner, d))
            att.o.weight.copy_(torch.eye(d, inner) if i == 0 else torch.zeros(d, inner))
            block.layer[0].layer_norm.weight.fill_(1.0)
            block.layer[1].layer_norm.weight.fill_(1.0)
            block.layer[1].DenseReluDense.wo.weight.zero_()
        model.encoder.final_layer_norm.weight.fill_(1.0)
    return model


def build_transformer(seed: int = 0, **overrides):
    from diffusers import AnyFlowTransformer3DModel

    torch.manual_seed(seed)
    cfg = dict(TRANSFORMER_CONFIG)
    cfg.update(overrides)
    return AnyFlowTransformer3DModel(**cfg)


def build_scheduler():
    from diffusers import FlowMapEulerDiscreteScheduler

    return FlowMapEulerDiscreteScheduler(num_train_timesteps=1000, shift=SCHEDULER_SHIFT)


def shift_sigma(s: torch.Tensor, shift: float = SCHEDULER_SHIFT) -> torch.Tensor:
    return shift * s / (1 + (shift - 1) * s)


def grid_sigmas(n: int, shift: float = SCHEDULER_SHIFT) -> torch.Tensor:
    """The n+1 sigmas (1 .. 0) the pipeline visits with ``num_inference_steps=n``."""
    s = torch.linspace(1.0, 0.0, n + 1, dtype=torch.float64)
    return shift_sigma(s, shift).float()


def tokenize(tokenizer, prompts: list[str]):
    """Token ids and mask, exactly as ``AnyFlowPipeline._get_t5_prompt_embeds`` builds them (before padding)."""
    enc = tokenizer(prompts, padding="longest", add_special_tokens=True, return_attention_mask=True,
                    return_tensors="pt")
    return enc.input_ids, enc.attention_mask


class DedupPadCrossAttnProcessor:
    """Training-time cross-attention equal to the stock one over ``MAX_SEQ`` text tokens, at a fraction of the cost.

    The pipeline pads every prompt to ``max_sequence_length`` (512) and zeroes the padded embeddings, so all
    padded keys/values are identical. Attending over the L real tokens plus *one* padded token whose logit is
    raised by log(512 - L) gives exactly the same softmax. Only used while training; the saved model runs the
    stock processor.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        q = attn.norm_q(attn.to_q(hidden_states))
        k = attn.norm_k(attn.to_k(encoder_hidden_states))
        v = attn.to_v(encoder_hidden_states)
        b, lq, _ = q.shape
        h = attn.heads
        q = q.unflatten(2, (h, -1)).transpose(1, 2)
        k = k.unflatten(2, (h, -1)).transpose(1, 2)
        v = v.unflatten(2, (h, -1)).transpose(1, 2)
        bias = getattr(attn, "_bias", None)  # (B, 1, 1, Lk) additive, set by ``forward`` below
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.transpose(1, 2).flatten(2, 3).type_as(q)
        return attn.to_out[1](attn.to_out[0](out))


def text_states(text_encoder, ids, mask, max_seq: int = MAX_SEQ):
    """(states, bias): the L real token states followed by one zero "pad" state, and the additive attention bias
    that stands for the (max_seq - len) identical padded positions (and masks the padding of shorter prompts)."""
    states = text_encoder(ids, mask).last_hidden_state * mask[..., None]
    b, l, d = states.shape
    states = torch.cat([states, states.new_zeros(b, 1, d)], 1)
    lens = mask.sum(1)
    bias = torch.zeros(b, l + 1, dtype=states.dtype)
    bias[:, :l] = torch.where(mask.bool(), 0.0, -math.inf)
    bias[:, l] = torch.log((max_seq - lens).clamp(min=1).to(states.dtype))
    return states, bias[:, None, None, :]


def use_dedup_cross_attention(transformer, on: bool = True):
    from diffusers.models.transformers.transformer_anyflow import AnyFlowCrossAttnProcessor

    for blk in transformer.blocks:
        blk.attn2.set_processor(DedupPadCrossAttnProcessor() if on else AnyFlowCrossAttnProcessor())


def silence_padding(transformer, init: bool = True, qk_gain: float = 2.0):
    """Make the 500-odd padded text positions contribute nothing but a softmax constant.

    The pipeline zeroes the embeddings of padded positions; with the text projection's biases and the
    cross-attention key/value biases held at zero, a padded position has key 0 (logit 0) and value 0. A first
    probe with these biases free put 77-89% of every cross-attention's mass on the padding after 1,350 steps and
    only colour reached the video (shape and direction stayed at chance). ``init`` also raises the
    cross-attention query/key RMS-norm gains so that real tokens can outbid the ~500 padded ones early.
    Returns the parameters that must stay frozen.
    """
    te = transformer.condition_embedder.text_embedder
    frozen = [te.linear_1.bias, te.linear_2.bias]
    for blk in transformer.blocks:
        frozen += [blk.attn2.to_k.bias, blk.attn2.to_v.bias]
        if init:
            with torch.no_grad():
                blk.attn2.norm_q.weight.fill_(qk_gain)
                blk.attn2.norm_k.weight.fill_(qk_gain)
    with torch.no_grad():
        for p in frozen:
            p.zero_()
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def forward(transformer, latents, t, r, states, bias):
    """Transformer call with the deduplicated cross-attention bias threaded through."""
    for blk in transformer.blocks:
        blk.attn2._bias = bias
    return transformer(hidden_states=latents, timestep=t, r_timestep=r, encoder_hidden_states=states,
                       return_dict=False)[0]
