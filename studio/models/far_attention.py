"""FAR self-attention over the real tokens only: a stopgap for a defect in diffusers 0.42.1.

``AnyFlowCausalAttnProcessor`` (diffusers/models/transformers/transformer_anyflow_far.py, lines 171-181 in
0.42.1) pads q/k/v with zeros to a multiple of 128 tokens, flex attention's block size, whether or not a block
mask hides the padding. The pipeline's KV-cache inference step passes no mask (``_forward_inference``,
``attention_mask = None``, line 1329), so the zero keys join the softmax (score 0, value 0) and dilute every
attention row: a 4-token tiny chunk attends to 124 zeros, a 1-frame chunk at 480x832 to 104. NVIDIA's AnyFlow
code pads only under a block mask that excludes the padding.

``MaskedPaddingCausalAttnProcessor`` keeps the stock processor when a mask is given (KV-cache prefill,
training) and, without one, attends over the real tokens with torch's scaled_dot_product_attention.
``install(pipe)`` puts it on the FAR transformer's self-attention; cross-attention is left alone.

Remove this module, and its call in ``ModelManager._load``, once diffusers pads only under a mask (the lines
above): from that day ``tests/test_far_attention.py::test_stock_processor_still_pads`` fails and says so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_anyflow_far import AnyFlowCausalAttnProcessor, apply_rotary_emb


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, H*D) -> (B, H, L, D)."""
    return x.unflatten(2, (heads, -1)).transpose(1, 2)


def _with_cache(key: torch.Tensor, value: torch.Tensor, kv_cache: dict | None, flag: dict | None):
    """The stock processor's KV-cache semantics: a cache step writes this step's keys/values into the cache;
    a read step attends to the cached compressed and full tokens, then to this chunk's own."""
    if kv_cache is None:
        return key, value
    comp, full = kv_cache["compressed_cache"], kv_cache["full_cache"]  # each (2: key/value, B, H, L, D)
    if flag["is_cache_step"]:
        n, m = flag["num_compressed_tokens"], flag["num_full_tokens"]
        for i, x in enumerate((key, value)):
            comp[i, :, :, :n] = x[:, :, :n]
            full[i, :, :, :m] = x[:, :, n:]
        return key, value
    n, m = flag["num_cached_compressed_tokens"], flag["num_cached_full_tokens"]
    key = torch.cat([comp[0, :, :, :n], full[0, :, :, :m], key], dim=2)
    value = torch.cat([comp[1, :, :, :n], full[1, :, :, :m], value], dim=2)
    return key, value


class MaskedPaddingCausalAttnProcessor(AnyFlowCausalAttnProcessor):
    """The stock FAR causal processor, except that without a mask nothing is padded (see the module docstring)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None,
                 kv_cache=None, kv_cache_flag=None) -> torch.Tensor:
        if attention_mask is not None:  # a block mask hides the padding: the stock path is right
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb,
                                    kv_cache, kv_cache_flag)
        source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        dtype = hidden_states.dtype
        query, key, value = attn.to_q(hidden_states), attn.to_k(source), attn.to_v(source)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        query, key, value = (_heads(x.to(dtype), attn.heads) for x in (query, key, value))
        key, value = _with_cache(key, value, kv_cache, kv_cache_flag)
        if rotary_emb is not None:
            query = apply_rotary_emb(query, rotary_emb["query"])
            key = apply_rotary_emb(key, rotary_emb["key"])
        out = F.scaled_dot_product_attention(query, key, value)  # every query sees every real key
        out = out.transpose(1, 2).flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


def patch_transformer(transformer) -> int:
    """Put the processor on every causal self-attention of a FAR transformer; return how many were replaced.

    diffusers 0.42.1's ``AnyFlowFARTransformer3DModel`` has no ``set_attn_processor`` (it lacks
    ``AttentionMixin``), so this calls each attention module's ``set_processor``, the per-module step that
    ``set_attn_processor`` takes. Cross-attention processors stay as they are. Idempotent."""
    processor = MaskedPaddingCausalAttnProcessor()
    replaced = 0
    for module in transformer.modules():
        current = getattr(module, "processor", None)
        stock = isinstance(current, AnyFlowCausalAttnProcessor)
        if stock and not isinstance(current, MaskedPaddingCausalAttnProcessor):
            module.set_processor(processor)
            replaced += 1
    return replaced


def install(pipe) -> int:
    """``patch_transformer`` on a pipeline's transformer; a no-op (0) for pipelines without causal attention."""
    transformer = getattr(pipe, "transformer", None)
    return patch_transformer(transformer) if transformer is not None else 0
