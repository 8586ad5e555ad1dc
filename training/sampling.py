"""A fast in-process sampler that mirrors ``AnyFlowPipeline.__call__`` step for step (used for progress
checks during training and for distillation trajectories; the benchmark uses the real pipeline)."""

from __future__ import annotations

import torch

from .common import MAX_SEQ, forward, grid_sigmas, text_states, tokenize


@torch.no_grad()
def encode_text(text_encoder, tokenizer, prompts):
    ids, mask = tokenize(tokenizer, prompts)
    return text_states(text_encoder, ids, mask, MAX_SEQ)


@torch.no_grad()
def sample(transformer, states, bias, noise, steps: int, ctx=None, mean_velocity=True, cfg=1.0,
           uncond=None, return_path=False):
    """Euler flow-map sampling on the pipeline's grid.

    noise: (B, T, C, h, w); ctx: optional clean prefix latents (B, k, C, h, w) (I2V / V2V), handled exactly as
    the pipeline does (prefix overwritten, its timestep set to 0). ``uncond``: (states, bias) for CFG.
    Returns the final latents (and the list of latents at every grid point if ``return_path``).
    """
    sig = grid_sigmas(steps)
    z = noise.clone()
    b, t_len = z.shape[:2]
    k = 0 if ctx is None else ctx.shape[1]
    path = [z.clone()]
    for i in range(steps):
        t = torch.full((b, t_len), float(sig[i] * 1000))
        r = torch.full((b, t_len), float(sig[i + 1] * 1000)) if mean_velocity else t.clone()
        x = z.clone()
        if k:
            x[:, :k] = ctx
            t[:, :k] = 0
        if cfg != 1.0:
            s2 = _cat_states(uncond, (states, bias), b)
            u_un, u_c = forward(transformer, torch.cat([x, x]), torch.cat([t, t]), torch.cat([r, r]), *s2).chunk(2)
            u = u_un + cfg * (u_c - u_un)
        else:
            u = forward(transformer, x, t, r, states, bias)
        z = z - float(sig[i] - sig[i + 1]) * u.float()
        if return_path:
            zz = z.clone()
            if k:
                zz[:, :k] = ctx
            path.append(zz)
    if k:
        z[:, :k] = ctx
    return (z, path) if return_path else z


def _cat_states(a, b, n):
    sa, ba = a
    sb, bb = b
    if sa.shape[0] == 1 and n > 1:
        sa, ba = sa.expand(n, -1, -1), ba.expand(n, -1, -1, -1)
    la, lb = sa.shape[1], sb.shape[1]
    L = max(la, lb)

    def pad(s, bias, l):
        if l == L:
            return s, bias
        s = torch.cat([s[:, :-1], s.new_zeros(s.shape[0], L - l, s.shape[2]), s[:, -1:]], 1)
        bias = torch.cat([bias[..., :-1], bias.new_full((*bias.shape[:-1], L - l), float("-inf")), bias[..., -1:]], -1)
        return s, bias

    sa, ba = pad(sa, ba, la)
    sb, bb = pad(sb, bb, lb)
    return torch.cat([sa, sb]), torch.cat([ba, bb])
