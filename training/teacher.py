"""Stage 2: the flow-matching teacher. ``python -m training.teacher [--workdir runs] [--iters N]``

Trains an ``AnyFlowTransformer3DModel`` (r = t: plain flow matching, velocity target eps - x0) on latents of
procedural clips (stage 1's codec), conditioned by a tiny ``UMT5EncoderModel`` over a word-level tokenizer whose
weights are written as a bag-of-words encoder (``common.build_text_encoder``) and kept frozen.

- Text conditioning reproduces the pipeline exactly: prompts padded to 512 tokens whose embeddings are zero.
  (Computed with a deduplicated pad key, see ``common.DedupPadCrossAttnProcessor``.) Two earlier probes
  (a frozen random encoder; a jointly trained one) let colour through but left shape and direction at chance.
- 10% caption dropout (empty prompt) so classifier-free guidance is available to the distillation stage.
- Random clean-prefix conditioning, exactly as ``AnyFlowPipeline(video=...)`` feeds it at inference: with
  probability 0.5 no prefix (T2V), 0.3 one frame (I2V), 0.2 five or nine frames (V2V); prefix frames get
  timestep 0 and no loss. One model serves T2V, I2V and V2V.
- The r-embedding is switched off (``delta_embedder.linear_1`` frozen at zero), so the teacher ignores r and
  the stock pipeline (which always passes r) samples it as a plain Euler flow-matching model.
- Data: the shipped world's "narrow" variation (near the centre line); ``--narrow-from N`` would first train
  N steps on the "wide" variation (anywhere across the frame), which this small model could not render crisply.
- Padded text positions are silenced (``common.silence_padding``): without it 77-89% of the cross-attention
  mass sat on the 500-odd padded positions and only colour got through.
- AdamW, warmup, constant, linear decay over the last quarter; EMA of weights; checkpoint every ``--ckpt-every`` iterations; resumes from
  ``<workdir>/teacher/ckpt.pt``. EMA weights are also saved as diffusers folders at each checkpoint, and exported to ``assets/models`` every
  ``--export-every`` steps.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from . import data
from .common import (Log, atomic_torch_save, build_text_encoder, build_tokenizer, build_transformer, forward,
                     save_json, shift_sigma, silence_padding, text_states, tokenize, use_dedup_cross_attention, workdir)
from .pool import build_or_load, captions_for
from .vae import Codec


def sample_sigmas(n, g):
    """Half uniform, half logit-normal in the un-shifted variable, then the scheduler's shift."""
    u = torch.rand(n, generator=g)
    ln = torch.sigmoid(torch.randn(n, generator=g))
    pick = torch.rand(n, generator=g) < 0.5
    u = torch.where(pick, u, ln).clamp(1e-3, 1.0)
    return shift_sigma(u)


def sample_context_lengths(n, g, frames, p_t2v=0.5, p_i2v=0.3):
    """0 (T2V) w.p. ``p_t2v``, 1 (I2V) w.p. ``p_i2v``, else 5 or 9 (V2V) (0.5 / 0.3 / 0.2 for the teacher)."""
    u = torch.rand(n, generator=g)
    k = torch.zeros(n, dtype=torch.long)
    k[(u >= p_t2v) & (u < p_t2v + p_i2v)] = 1
    v2v = u >= p_t2v + p_i2v
    k[v2v] = torch.where(torch.rand(n, generator=g) < 0.5, 5, 9)[v2v]
    return k.clamp(max=frames - 1)


def keyframe_loss(transformer, text_encoder, tokenizer, src, n, g):
    """Flow matching on first frames alone (one latent frame, no prefix): the keyframe that keyframe-first T2V
    generates before continuing it as I2V (see the module docstring)."""
    idx = torch.randint(len(src["latents"]), (n,), generator=g)
    x0 = src["latents"][idx, :1].float()
    caps = captions_for(src["combo"][idx])
    drop = torch.rand(n, generator=g) < 0.1
    caps = ["" if d else c for c, d in zip(caps, drop.tolist())]
    ids, mask = tokenize(tokenizer, caps)
    states, bias = text_states(text_encoder, ids, mask)
    sig = sample_sigmas(n, g)
    eps = torch.randn(x0.shape, generator=g)
    s = sig.view(-1, 1, 1, 1, 1)
    zt = (1 - s) * x0 + s * eps
    t = (sig.view(-1, 1) * 1000)
    pred = forward(transformer, zt, t, t.clone(), states, bias)
    return ((pred.float() - (eps - x0)) ** 2).mean()


def ema_update(ema, model, decay):
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)


def lr_at(step, total, base, warmup, decay_frac=0.25):
    """Warmup, constant, then a linear decay to 10% over the last ``decay_frac`` of the run (so a run can be
    extended with a larger ``--iters`` without changing the steps already taken, until the decay starts)."""
    if step < warmup:
        return base * (step + 1) / warmup
    start = int(total * (1 - decay_frac))
    if step < start:
        return base
    return base * (1.0 - 0.9 * min(1.0, (step - start) / max(1, total - start)))


def quick_eval(transformer, text_encoder, tokenizer, codec, n=32, steps=8, seed=0, held_out=False, keyframe=False):
    """Judge scores of n clips sampled with the in-process sampler (EMA weights)."""
    from studio.engine.judge import score_batch

    from .sampling import encode_text, sample

    params = data.eval_params(n, held_out, seed=seed)
    states, bias = encode_text(text_encoder, tokenizer, [p.caption for p in params])
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, data.FRAMES, 16, 8, 8, generator=g)
    use_dedup_cross_attention(transformer, True)
    if keyframe:  # keyframe-first T2V: the first frame alone, then the clip continued from it (I2V)
        key = sample(transformer, states, bias, noise[:, :1].clone(), steps)
        lat = sample(transformer, states, bias, noise, steps, ctx=key)
    else:
        lat = sample(transformer, states, bias, noise, steps)
    return score_batch(list(codec.decode(lat)), params)


def export_intermediate(work, log):
    """Export the current EMA weights to assets/models (so an interrupted run still leaves usable folders)."""
    from . import export

    try:
        export.main(["--workdir", str(work)])
    except Exception as exc:  # noqa: BLE001 - an export failure must not stop training
        log(f"intermediate export failed: {exc!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--iters", type=int, default=6600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--pool", type=int, default=4096)
    ap.add_argument("--narrow-from", type=int, default=0, help="step from which the narrow pool is used")
    ap.add_argument("--narrow-pool", type=int, default=2048)
    ap.add_argument("--free-pool", type=int, default=0, help="clips of the free variation (0: none)")
    ap.add_argument("--free-from", type=int, default=4300, help="step from which half the clips are free ones")
    ap.add_argument("--ckpt-every", type=int, default=150)
    ap.add_argument("--eval-every", type=int, default=600)
    ap.add_argument("--export-every", type=int, default=600, help="export assets/models folders (0: never)")
    ap.add_argument("--t2i-batch", type=int, default=16,
                    help="extra single-frame (first frame, no prefix) samples per step: the keyframe of T2V")
    ap.add_argument("--t2i-weight", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = workdir(args.workdir)
    out = work / "teacher"
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "log.txt")
    codec = Codec.load(work / "vae" / "codec.npz")
    pool = build_or_load(work, codec, args.pool, args.seed, log)
    narrow = build_or_load(work, codec, args.narrow_pool, args.seed, log, variation="narrow")
    if args.free_pool:  # from --free-from on, half the clips come from the "free" variation
        free = build_or_load(work, codec, args.free_pool, args.seed, log, variation="free")
        mixed = {key: torch.cat([narrow[key], free[key]]) for key in ("latents", "combo")}
    frames = pool["latents"].shape[1]

    tokenizer = build_tokenizer()
    text_encoder = build_text_encoder(len(tokenizer), seed=args.seed)  # bag-of-words weights, written
    text_encoder.requires_grad_(False)
    transformer = build_transformer(seed=args.seed)
    with torch.no_grad():
        transformer.condition_embedder.delta_embedder.linear_1.weight.zero_()
    transformer.condition_embedder.delta_embedder.linear_1.weight.requires_grad_(False)
    silence_padding(transformer, init=True)
    use_dedup_cross_attention(transformer, True)
    ema_tr, ema_te = copy.deepcopy(transformer), copy.deepcopy(text_encoder)
    params = [p for p in list(transformer.parameters()) + list(text_encoder.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    step = 0
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        st = torch.load(ckpt, weights_only=False)
        transformer.load_state_dict(st["transformer"])
        text_encoder.load_state_dict(st["text_encoder"])
        ema_tr.load_state_dict(st["ema_transformer"])
        ema_te.load_state_dict(st["ema_text_encoder"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        log(f"resumed from step {step}")
    n_params = sum(p.numel() for p in transformer.parameters())
    log(f"teacher: {n_params / 1e6:.2f}M transformer params, "
        f"{sum(p.numel() for p in text_encoder.parameters()) / 1e6:.2f}M text params; pools {args.pool} wide + "
        f"{args.narrow_pool} narrow (from step {args.narrow_from}); "
        f"{args.iters} iters of batch {args.batch}; threads {torch.get_num_threads()}")

    def save(final=False):
        atomic_torch_save({"step": step, "transformer": transformer.state_dict(),
                           "text_encoder": text_encoder.state_dict(), "ema_transformer": ema_tr.state_dict(),
                           "ema_text_encoder": ema_te.state_dict(), "opt": opt.state_dict(), "args": vars(args)},
                          ckpt)
        use_dedup_cross_attention(ema_tr, False)
        ema_tr.save_pretrained(out / "ema" / "transformer")
        use_dedup_cross_attention(ema_tr, True)
        ema_te.save_pretrained(out / "ema" / "text_encoder")
        tokenizer.save_pretrained(out / "ema" / "tokenizer")
        save_json(out / "ema" / "step.json", {"step": step, "final": final})

    t_last, losses = time.time(), []
    transformer.train()
    text_encoder.train()
    while step < args.iters:
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        src = narrow if step >= args.narrow_from else pool
        if args.free_pool and step >= args.free_from:
            src = mixed
        lat_pool, combo_pool = src["latents"], src["combo"]
        idx = torch.randint(len(lat_pool), (args.batch,), generator=g)
        x0 = lat_pool[idx].float()
        caps = captions_for(combo_pool[idx])
        drop = torch.rand(args.batch, generator=g) < 0.1
        caps = ["" if d else c for c, d in zip(caps, drop.tolist())]
        ids, mask = tokenize(tokenizer, caps)
        states, bias = text_states(text_encoder, ids, mask)
        sig = sample_sigmas(args.batch, g)
        k = sample_context_lengths(args.batch, g, frames)
        eps = torch.randn(x0.shape, generator=g)
        s = sig.view(-1, 1, 1, 1, 1)
        zt = (1 - s) * x0 + s * eps
        target = eps - x0
        fr = torch.arange(frames).view(1, -1)
        is_ctx = fr < k.view(-1, 1)  # (B, T)
        zt = torch.where(is_ctx[..., None, None, None], x0, zt)
        t = (sig.view(-1, 1) * 1000).expand(-1, frames).clone()
        r = t.clone()
        t[is_ctx] = 0.0
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.iters, args.lr, args.warmup)
        pred = forward(transformer, zt, t, r, states, bias)
        w = (~is_ctx).float()[..., None, None, None]
        loss = (((pred.float() - target) ** 2) * w).sum() / (w.sum() * x0[0, 0].numel())
        if args.t2i_batch:
            loss = loss + args.t2i_weight * keyframe_loss(transformer, text_encoder, tokenizer, src, args.t2i_batch, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        ema_update(ema_tr, transformer, decay)
        ema_update(ema_te, text_encoder, decay)
        losses.append(loss.item())
        if step % 25 == 0:
            dt = (time.time() - t_last) / 25
            t_last = time.time()
            log(f"step {step} loss {np.mean(losses[-25:]):.4f} lr {opt.param_groups[0]['lr']:.2e} {dt:.2f}s/it")
        if step % args.ckpt_every == 0 or step == args.iters:
            save(final=step == args.iters)
            log(f"checkpoint at step {step}")
        if args.export_every and step % args.export_every == 0 and step < args.iters:
            export_intermediate(work, log)
        if args.eval_every and (step % args.eval_every == 0 or step == args.iters):
            ema_tr.eval()
            for kf in (False, True):
                sc = quick_eval(ema_tr, ema_te, tokenizer, codec, keyframe=kf)
                log(f"eval (EMA, 8 steps, 32 seen clips, {'keyframe-first' if kf else 'one call'} T2V): " + ", ".join(
                    f"{m} {sc[m]:.2f}" for m in ("colour", "background", "direction", "shape")))
    save_json(out / "done.json", {"step": step})
    log("teacher done")


if __name__ == "__main__":
    main()
