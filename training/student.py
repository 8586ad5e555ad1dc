"""Stage 3: the any-step flow-map student. ``python -m training.student [--workdir runs]``

Distils the teacher into an ``AnyFlowTransformer3DModel`` that takes both t and r (update
z_r = z_t - (sigma_t - sigma_r) u(z_t, t, r)):

1. Trajectories: the teacher (EMA) integrates ``--traj`` ODEs on the pipeline's 16-step grid (with
   classifier-free guidance ``--cfg``, folded into the student as NVIDIA's checkpoints do), conditioned like the
   teacher was trained (T2V / I2V / V2V clean prefixes taken from real clips). Every grid point is kept.
2. The 1, 2, 4, 8 and 16-step grids are nested in the 16-step one, so each segment [sigma_i, sigma_j] of any of
   them has an exact mean-velocity target u = (z_i - z_j) / (sigma_i - sigma_j) from the same trajectory.
   The student (initialised from the teacher, r-embedding switched on) regresses it at (z_i, t_i, r_j).
3. Low-noise phase (``--low-iters`` more steps, restarted from the EMA weights): ``--low-p`` of the segments are
   drawn from those that start at sigma <= ``--low-sigma`` (0.75: the second half of the 16-step grid). After
   phase 2 alone the 8- and 16-step renders were softer than the 4-step ones (judge shape 0.84 at 4 steps, 0.70
   at 16), although the teacher's guided 16-step path they regress scores 0.89: the student's own short segments
   near the end of the path were the weak part (fed the teacher's path down to sigma 0.5 and finishing on its own,
   it scored 0.77), and their loss kept falling when trained on alone.
Resumable: trajectories are stored in chunks under ``<workdir>/student/traj``; training from ``ckpt.pt``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import time

import numpy as np
import torch

from .common import (Log, atomic_torch_save, build_tokenizer, forward, grid_sigmas, save_json, silence_padding,
                     text_states,
                     tokenize, use_dedup_cross_attention, workdir)
from .pool import build_or_load, captions_for
from .sampling import encode_text, sample
from .teacher import ema_update, export_intermediate, lr_at, sample_context_lengths
from .teacher import quick_eval as teacher_quick_eval
from .vae import Codec

GRIDS = (1, 2, 4, 8, 16)
GRID_P = (0.25, 0.2, 0.2, 0.15, 0.2)
FINE = 16


def load_teacher(work):
    from diffusers import AnyFlowTransformer3DModel
    from transformers import UMT5EncoderModel

    src = work / "teacher" / "ema"
    tr = AnyFlowTransformer3DModel.from_pretrained(src / "transformer")
    te = UMT5EncoderModel.from_pretrained(src / "text_encoder")
    return tr, te, build_tokenizer()


def make_trajectories(work, out, teacher, text_encoder, tokenizer, pool, args, log):
    tdir = out / "traj"
    tdir.mkdir(parents=True, exist_ok=True)
    lat_pool, combo_pool = pool["latents"], pool["combo"]
    chunk = args.traj_chunk
    use_dedup_cross_attention(teacher, True)
    teacher.eval()
    uncond = encode_text(text_encoder, tokenizer, [""])
    for c in range(0, args.traj, chunk):
        f = tdir / f"{c:06d}.pt"
        if f.exists():
            continue
        t0 = time.time()
        g = torch.Generator().manual_seed(args.seed * 7919 + c)
        n = min(chunk, args.traj - c)
        idx = torch.randint(len(lat_pool), (n,), generator=g)
        # keyframe-first T2V continues a first frame, so I2V gets the largest share; one-call T2V keeps some
        k = sample_context_lengths(n, g, lat_pool.shape[1], p_t2v=0.3, p_i2v=0.45)
        states, bias = encode_text(text_encoder, tokenizer, captions_for(combo_pool[idx]))
        noise = torch.randn((n,) + tuple(lat_pool.shape[1:]), generator=g)
        clean = lat_pool[idx].float()
        paths = torch.empty((n, FINE + 1) + tuple(lat_pool.shape[1:]), dtype=torch.float16)
        for kk in k.unique().tolist():  # same prefix length per call (the pipeline's layout)
            sel = (k == kk).nonzero().flatten()
            ctx = clean[sel, :kk] if kk else None
            _, path = sample(teacher, states[sel], bias[sel], noise[sel], FINE, ctx=ctx, mean_velocity=False,
                             cfg=args.cfg, uncond=uncond, return_path=True)
            paths[sel] = torch.stack(path, 1).half()
        tmp = f.with_suffix(".tmp")
        torch.save({"idx": idx, "k": k, "paths": paths}, tmp)
        tmp.replace(f)
        log(f"trajectories {c + n}/{args.traj} ({time.time() - t0:.1f}s for {n})")
    parts = [torch.load(tdir / f"{c:06d}.pt") for c in range(0, args.traj, chunk)]
    traj = {key: torch.cat([p[key] for p in parts]) for key in ("idx", "k", "paths")}
    # Keyframe trajectories: first frames alone (one latent frame, no prefix), the first half of keyframe-first T2V.
    f = tdir / "keyframes.pt"
    if args.traj_keyframes and not f.exists():
        t0 = time.time()
        g = torch.Generator().manual_seed(args.seed * 7919 + 104729)
        n = args.traj_keyframes
        idx = torch.randint(len(lat_pool), (n,), generator=g)
        noise = torch.randn((n, 1) + tuple(lat_pool.shape[2:]), generator=g)
        paths = []
        for c in range(0, n, 256):
            states, bias = encode_text(text_encoder, tokenizer, captions_for(combo_pool[idx[c:c + 256]]))
            _, path = sample(teacher, states, bias, noise[c:c + 256], FINE, mean_velocity=False, cfg=args.cfg,
                             uncond=uncond, return_path=True)
            paths.append(torch.stack(path, 1).half())
        tmp = f.with_suffix(".tmp")
        torch.save({"idx": idx, "paths": torch.cat(paths)}, tmp)
        tmp.replace(f)
        log(f"{n} keyframe trajectories ({time.time() - t0:.1f}s)")
    if f.exists():
        kf = torch.load(f)
        traj["kf_idx"], traj["kf_paths"] = kf["idx"], kf["paths"]
    return traj


def segments(n, g):
    """n random segments of the nested 1/2/4/8/16-step grids: (start, end) indices into the 16-step grid."""
    grid = torch.tensor(GRIDS)[torch.multinomial(torch.tensor(GRID_P), n, replacement=True, generator=g)]
    seg = (torch.rand(n, generator=g) * grid).long()
    hop = FINE // grid
    return seg * hop, (seg + 1) * hop


def low_segment_table(sig, low_sigma):
    """Every segment of the nested grids that starts at sigma <= ``low_sigma``: (start, end) index pairs."""
    first = int((sig <= low_sigma + 1e-6).nonzero()[0])
    return torch.tensor([(s * (FINE // n), (s + 1) * (FINE // n)) for n in GRIDS for s in range(n)
                         if s * (FINE // n) >= first])


def mixed_segments(n, g, low_table=None, low_p=0.0):
    """``segments`` with a share ``low_p`` drawn uniformly from ``low_table`` instead (the low-noise phase)."""
    i0, i1 = segments(n, g)
    if low_table is None or low_p <= 0:
        return i0, i1
    q = low_table[torch.randint(len(low_table), (n,), generator=g)]
    low = torch.rand(n, generator=g) < low_p
    return torch.where(low, q[:, 0], i0), torch.where(low, q[:, 1], i1)


def segment_batch(paths, ks, j, i0, i1):
    """Start and end latents of segments [i0, i1] of stored paths j, and the mask of their clean prefix frames.

    The first point of a stored path is the raw noise, prefix included; the pipeline feeds the clean context
    latents at every step (prefix overwritten, timestep 0), and every later point of the path holds them, so the
    prefix is taken from the path's last point."""
    z_i = paths[j, i0].float()
    z_j = paths[j, i1].float()
    frames = paths.shape[2]
    is_ctx = torch.arange(frames).view(1, -1) < ks[j].view(-1, 1)
    m = is_ctx[..., None, None, None]
    clean = paths[j, -1].float()
    return torch.where(m, clean, z_i), torch.where(m, clean, z_j), is_ctx


def keyframe_loss(student, text_encoder, tokenizer, traj, pool, sig, n, g, pick=segments):
    """Mean-velocity regression on keyframe (single-frame) trajectory segments (``pick(n, g)`` draws them)."""
    j = torch.randint(len(traj["kf_idx"]), (n,), generator=g)
    i0, i1 = pick(n, g)
    z_i = traj["kf_paths"][j, i0].float()
    z_j = traj["kf_paths"][j, i1].float()
    target = (z_i - z_j) / (sig[i0] - sig[i1]).view(-1, 1, 1, 1, 1)
    ids, mask = tokenize(tokenizer, captions_for(pool["combo"][traj["kf_idx"][j]]))
    with torch.no_grad():
        states, bias = text_states(text_encoder, ids, mask)
    t = (sig[i0].view(-1, 1) * 1000)
    r = (sig[i1].view(-1, 1) * 1000)
    pred = forward(student, z_i, t, r, states, bias)
    return ((pred.float() - target) ** 2).mean()


def quick_eval(transformer, text_encoder, tokenizer, codec, n=32, steps=(1, 2, 4, 8, 16), seed=0):
    """The teacher's quick eval at each budget, keyframe-first (the studio's T2V for this model)."""
    return {s: teacher_quick_eval(transformer, text_encoder, tokenizer, codec, n=n, steps=s, seed=seed, keyframe=True)
            for s in steps}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--traj", type=int, default=1024)
    ap.add_argument("--traj-chunk", type=int, default=64)
    ap.add_argument("--traj-keyframes", type=int, default=1024, help="single-frame (keyframe) trajectories")
    ap.add_argument("--kf-batch", type=int, default=16, help="keyframe segments per step, besides the clip batch")
    ap.add_argument("--kf-weight", type=float, default=0.5)
    ap.add_argument("--cfg", type=float, default=1.5)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--low-iters", type=int, default=1200, help="steps of the low-noise phase, after --iters")
    ap.add_argument("--low-lr", type=float, default=3e-4)
    ap.add_argument("--low-p", type=float, default=0.7, help="share of low-noise segments in that phase")
    ap.add_argument("--low-sigma", type=float, default=0.75, help="low-noise segments start at sigma <= this")
    ap.add_argument("--low-ema", type=float, default=0.995)
    ap.add_argument("--pool", type=int, default=2048, help="size of the narrow pool (prefixes, captions)")
    ap.add_argument("--free-pool", type=int, default=0, help="clips of the free variation (0: none)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--export-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args, _ = ap.parse_known_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = workdir(args.workdir)
    out = work / "student"
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "log.txt")
    codec = Codec.load(work / "vae" / "codec.npz")
    pool = build_or_load(work, codec, args.pool, args.seed, log, variation="narrow")
    if args.free_pool:  # prefixes from anywhere in the frame too, as the teacher's last phase
        free = build_or_load(work, codec, args.free_pool, args.seed, log, variation="free")
        pool = {key: torch.cat([pool[key], free[key]]) for key in ("latents", "combo")}
    teacher, text_encoder, tokenizer = load_teacher(work)
    text_encoder.requires_grad_(False)
    t0 = time.time()
    traj = make_trajectories(work, out, teacher, text_encoder, tokenizer, pool, args, log)
    log(f"{len(traj['idx'])} trajectories ready ({time.time() - t0:.0f}s), cfg {args.cfg}")
    del teacher

    student, _, _ = load_teacher(work)
    student.condition_embedder.delta_embedder.linear_1.weight.requires_grad_(True)
    silence_padding(student, init=False)
    use_dedup_cross_attention(student, True)
    ema = copy.deepcopy(student)

    def new_opt(lr):
        return torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=lr, betas=(0.9, 0.99),
                                 weight_decay=0.0)

    opt = new_opt(args.lr)
    step = 0
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        st = torch.load(ckpt, weights_only=False)
        student.load_state_dict(st["student"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        log(f"resumed from step {step}")

    with torch.no_grad():
        all_caps = captions_for(pool["combo"][traj["idx"]])
    sig = grid_sigmas(FINE)
    paths, ks, n_traj = traj["paths"], traj["k"], len(traj["idx"])
    frames = paths.shape[2]
    low_table = low_segment_table(sig, args.low_sigma)
    total = args.iters + args.low_iters

    def save(final=False):
        atomic_torch_save({"step": step, "student": student.state_dict(), "ema": ema.state_dict(),
                           "opt": opt.state_dict(), "args": vars(args)}, ckpt)
        use_dedup_cross_attention(ema, False)
        ema.save_pretrained(out / "ema" / "transformer")
        use_dedup_cross_attention(ema, True)
        save_json(out / "ema" / "step.json", {"step": step, "final": final, "cfg": args.cfg})

    t_last, losses = time.time(), []
    student.train()
    while step < total:
        low = step >= args.iters  # phase 3: the low-noise phase
        if step == args.iters and args.low_iters:  # enter it: restart from the EMA weights, fresh optimiser
            student.load_state_dict(ema.state_dict())
            opt = new_opt(args.low_lr)
            log(f"low-noise phase: {args.low_iters} steps, {args.low_p:.0%} of segments from sigma <= "
                f"{args.low_sigma} ({len(low_table)} kinds), lr {args.low_lr:.1e}")
        g = torch.Generator().manual_seed(args.seed * 1_000_033 + step)
        b = args.batch
        pick = functools.partial(mixed_segments, low_table=low_table, low_p=args.low_p if low else 0.0)
        j = torch.randint(n_traj, (b,), generator=g)
        i0, i1 = pick(b, g)
        z_i, z_j, is_ctx = segment_batch(paths, ks, j, i0, i1)
        s0, s1 = sig[i0], sig[i1]
        target = (z_i - z_j) / (s0 - s1).view(-1, 1, 1, 1, 1)
        t = (s0.view(-1, 1) * 1000).expand(-1, frames).clone()
        r = (s1.view(-1, 1) * 1000).expand(-1, frames).clone()
        t[is_ctx] = 0.0
        # prefix frames of the stored path already hold the clean context latents
        ids, mask = tokenize(tokenizer, [all_caps[int(q)] for q in j])
        with torch.no_grad():
            states, bias = text_states(text_encoder, ids, mask)
        for group in opt.param_groups:
            if low:  # short warmup, then a linear decay to 10% (as the probe that chose these settings)
                k = step - args.iters
                group["lr"] = args.low_lr * min(1.0, (k + 1) / 20) * (1 - 0.9 * k / args.low_iters)
            else:
                group["lr"] = lr_at(step, args.iters, args.lr, args.warmup)
        pred = forward(student, z_i, t, r, states, bias)
        w = (~is_ctx).float()[..., None, None, None]
        loss = (((pred.float() - target) ** 2) * w).sum() / (w.sum() * z_i[0, 0].numel())
        if args.kf_batch and "kf_paths" in traj:
            loss = loss + args.kf_weight * keyframe_loss(student, text_encoder, tokenizer, traj, pool, sig, args.kf_batch, g,
                                                         pick)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in student.parameters() if p.requires_grad], 1.0)
        opt.step()
        step += 1
        if low:
            k = step - args.iters
            ema_update(ema, student, min(args.low_ema, (1 + k) / (10 + k)))
        else:
            ema_update(ema, student, min(args.ema, (1 + step) / (10 + step)))
        losses.append(loss.item())
        if step % 25 == 0:
            dt = (time.time() - t_last) / 25
            t_last = time.time()
            log(f"step {step} loss {np.mean(losses[-25:]):.4f} lr {opt.param_groups[0]['lr']:.2e} {dt:.2f}s/it")
        if step % args.ckpt_every == 0 or step in (args.iters, total):
            save(final=step == total)
            log(f"checkpoint at step {step}")
        if args.export_every and step % args.export_every == 0 and step < total:
            export_intermediate(work, log)
        if args.eval_every and (step % args.eval_every == 0 or step in (args.iters, total)):
            ema.eval()
            res = quick_eval(ema, text_encoder, tokenizer, codec)
            for s, sc in res.items():
                log(f"eval (EMA, {s} steps, 32 seen clips, keyframe-first T2V): " + ", ".join(
                    f"{m} {sc[m]:.2f}" for m in ("colour", "background", "direction", "shape")))
    save_json(out / "done.json", {"step": step, "cfg": args.cfg, "traj": n_traj})
    log("student done")


if __name__ == "__main__":
    main()
