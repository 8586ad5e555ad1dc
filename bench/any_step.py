"""Any-step benchmark of the embedded model: the studio's own version of the AnyFlow paper's figure.

    .venv/bin/python bench/any_step.py [--n 96] [--steps 1 2 4 8 16] [--out runs/bench]

Renders ``--n`` clips per step budget with the shipped pipelines (``assets/models/anyflow-shapes`` = student,
``assets/models/anyflow-shapes-teacher`` = teacher) through ``DiffusionPipeline.from_pretrained`` offline, on the
seen and the held-out colour/shape/direction/background combinations, and scores them with ``studio.judge``.
T2V is keyframe-first, as the studio renders this model; one-call T2V (seen combinations) is reported beside it.
Also I2V (the first frame of a ground-truth clip + its caption) at each budget, and render times. Each model
renders on the step grid the studio gives it (its catalogue entry's ``last_jump_sigma``, ``studio/engine/schedule.py``);
where that differs from the scheduler's own grid, seen T2V on the scheduler's grid is reported beside it.
Prints the table and writes ``any_step.json``, ``any_step.md`` and ``any_step.png`` (score vs steps, Pillow).
Same seeds for both models; each clip's noise comes from ``torch.Generator().manual_seed(1000 + i)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from studio.engine import schedule  # noqa: E402
from studio.engine.judge import METRICS, score_batch  # noqa: E402
from studio.models.registry import Registry  # noqa: E402
from training import data  # noqa: E402

MODELS = {"student": "anyflow-shapes", "teacher": "anyflow-shapes-teacher"}
NATIVE_COLOUR = (44, 160, 44)  # the student on the scheduler's own step grid, for comparison
NUM_FRAMES_ARG = data.FRAMES - 1  # scale_factor_temporal=1: the pipeline renders num_frames + 1 frames


def load(folder: Path):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def noise_for(pipe, n, seed0):
    """Each clip's initial noise from its own generator (``manual_seed(seed0 + i)``), drawn as the studio does."""
    from diffusers.utils.torch_utils import randn_tensor

    lat = data.SIZE // pipe.vae_scale_factor_spatial
    shape = (1, pipe.transformer.config.in_channels, data.FRAMES, lat, lat)
    return torch.cat([randn_tensor(shape, generator=torch.Generator().manual_seed(seed0 + i)) for i in range(n)])


def render(pipe, params, steps, batch=48, video=None, seed0=1000, keyframe=True, jump=0.0):
    """Videos for ``params``' captions. T2V is keyframe-first by default, as the studio renders this model (the
    registry's ``t2v = "keyframe"``): a one-frame call on the first frame of the clip's noise, then the clip continued
    from that frame's latents. ``keyframe=False``: one T2V call from noise. ``video``: I2V/V2V context frames.
    ``jump``: the step grid's ``last_jump_sigma`` (``studio/engine/schedule.py``; 0: the scheduler's own grid)."""
    out = []
    for s in range(0, len(params), batch):
        chunk = params[s:s + batch]
        caps = [p.caption for p in chunk]
        noise = noise_for(pipe, len(chunk), seed0 + s)
        kw = dict(height=data.SIZE, width=data.SIZE, guidance_scale=1.0, **schedule.sampler_kwargs(pipe, steps, jump))
        if video is not None:
            kw["video"] = video[s:s + batch]
        elif keyframe:
            key = pipe(caps, latents=noise[:, :, :1].clone(), num_frames=0, output_type="latent", **kw).frames
            kw["video_latents"] = key.permute(0, 2, 1, 3, 4)
        out += list(pipe(caps, latents=noise, num_frames=NUM_FRAMES_ARG, output_type="np", **kw).frames)
    return out


def first_frames(params, k=1):
    clips = np.stack([data.render_clip(p)[:k] for p in params])
    return torch.from_numpy(clips).float().div(255.0).permute(0, 1, 4, 2, 3)


def timings(pipe, steps_list, jump=0.0):
    """Seconds for one keyframe-first T2V render (both calls, VAE decode included) and for writing its mp4."""
    res = {}
    params = [data.eval_params(1, False)[0]]
    for s in steps_list:
        render(pipe, params, s, jump=jump)  # warm
        t0 = time.perf_counter()
        frames = render(pipe, params, s, jump=jump)[0]
        t1 = time.perf_counter()
        mp4 = None
        try:
            from studio.engine import media

            media.write_video(media.to_uint8(frames), Path("/tmp/_anystep_bench.mp4"), 8, {"steps": s})
            mp4 = time.perf_counter() - t1
        except Exception:  # noqa: BLE001 - timing is best effort
            pass
        res[s] = {"render_s": round(t1 - t0, 3), "mp4_s": None if mp4 is None else round(mp4, 3)}
    return res


def plot(results, steps, path: Path):
    """2x2 panels (one per metric): score vs steps, student and teacher, seen (solid) / held-out (dashed)."""
    from PIL import Image, ImageDraw

    W, H, pad = 900, 640, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    colours = {"student": (31, 119, 180), "teacher": (255, 127, 14)}
    pw, ph = (W - 3 * pad) // 2, (H - 3 * pad) // 2
    xs = np.log2(np.array(steps, float))
    for m_i, metric in enumerate(METRICS):
        ox = pad + (m_i % 2) * (pw + pad)
        oy = pad + (m_i // 2) * (ph + pad)
        d.rectangle([ox, oy, ox + pw, oy + ph], outline=(0, 0, 0))
        d.text((ox + 4, oy - 16), f"{metric} (judge accuracy)", fill=(0, 0, 0))
        for y in (0.0, 0.25, 0.5, 0.75, 1.0):
            yy = oy + ph - y * ph
            d.line([ox, yy, ox + pw, yy], fill=(225, 225, 225))
            d.text((ox - 30, yy - 6), f"{y:.2f}", fill=(0, 0, 0))
        for s, x in zip(steps, xs):
            xx = ox + 10 + (x - xs.min()) / max(xs.max() - xs.min(), 1) * (pw - 20)
            d.text((xx - 4, oy + ph + 4), str(s), fill=(0, 0, 0))
        series = [(m, sp, c, dash) for m, c in colours.items() for sp, dash in (("seen", False), ("held_out", True))]
        series += [(m, "native", NATIVE_COLOUR, False) for m in colours]  # where a model has a native-grid row
        for model, split, col, dash in series:
            row = results.get(model, {}).get(split)
            if not row:
                continue
            pts = [(ox + 10 + (x - xs.min()) / max(xs.max() - xs.min(), 1) * (pw - 20),
                    oy + ph - row[str(s)][metric] * ph) for s, x in zip(steps, xs) if str(s) in row]
            for a, b in zip(pts, pts[1:]):
                if dash:
                    for f in np.linspace(0, 1, 9)[::2]:
                        p0 = (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f)
                        p1 = (a[0] + (b[0] - a[0]) * min(f + 0.125, 1), a[1] + (b[1] - a[1]) * min(f + 0.125, 1))
                        d.line([p0, p1], fill=col, width=2)
                else:
                    d.line([a, b], fill=col, width=3)
            for p in pts:
                d.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill=col)
    d.text((pad, 12), "AnyFlow Studio embedded model: judge score vs inference steps (x: steps, log scale)",
           fill=(0, 0, 0))
    lx = W - 330
    for i, (model, col) in enumerate(colours.items()):
        d.line([lx, 10 + 14 * i, lx + 30, 10 + 14 * i], fill=col, width=3)
        d.text((lx + 36, 4 + 14 * i), f"{model}: solid seen, dashed held-out", fill=(0, 0, 0))
    if any("native" in r for r in results.values()):
        d.line([lx, 38, lx + 30, 38], fill=NATIVE_COLOUR, width=3)
        d.text((lx + 36, 32), "student, scheduler's own grid (seen)", fill=(0, 0, 0))
    img.save(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(REPO / "assets" / "models"))
    ap.add_argument("--workdir", default=None, help="training work dir; output goes to <workdir>/bench")
    ap.add_argument("--out", default=None)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--i2v-steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--only", choices=sorted(MODELS), default=None, help="benchmark one model only")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(args.workdir or REPO / "runs") / "bench"
    out.mkdir(parents=True, exist_ok=True)
    splits = {"seen": data.eval_params(args.n, False), "held_out": data.eval_params(args.n, True)}
    catalogue = Registry.load()
    results: dict = {}
    t_start = time.time()
    for model, name in MODELS.items():
        if args.only and model != args.only:
            continue
        folder = Path(args.models) / name
        if not folder.exists():
            print(f"{model}: {folder} missing, skipped")
            continue
        pipe = load(folder)
        jump = catalogue.get(name).last_jump_sigma  # the step grid the studio renders this model with
        res = results[model] = {"last_jump_sigma": jump}
        for split, params in splits.items():
            res[split] = {}
            for s in args.steps:
                t0 = time.time()
                res[split][str(s)] = score_batch(render(pipe, params, s, jump=jump), params)
                res[split][str(s)]["seconds"] = round(time.time() - t0, 1)
                print(f"{model:8s} {split:8s} {s:2d} steps: " + "  ".join(
                    f"{m} {res[split][str(s)][m]:.3f}" for m in METRICS), flush=True)
        if jump:  # the same renders on the scheduler's own grid, for comparison (seen combinations)
            res["native"] = {}
            for s in args.steps:
                res["native"][str(s)] = score_batch(render(pipe, splits["seen"], s), splits["seen"])
                print(f"{model:8s} native grid {s:2d} steps: " + "  ".join(
                    f"{m} {res['native'][str(s)][m]:.3f}" for m in METRICS), flush=True)
        res["direct"] = {}
        for s in args.steps:  # one T2V call from noise, for comparison (seen combinations)
            res["direct"][str(s)] = score_batch(render(pipe, splits["seen"], s, keyframe=False, jump=jump),
                                                splits["seen"])
            print(f"{model:8s} one-call T2V {s:2d} steps: " + "  ".join(
                f"{m} {res['direct'][str(s)][m]:.3f}" for m in METRICS), flush=True)
        res["i2v"] = {}
        params = splits["seen"] + splits["held_out"]
        video = first_frames(params)
        for s in args.i2v_steps:
            res["i2v"][str(s)] = score_batch(render(pipe, params, s, video=video, jump=jump), params)
            print(f"{model:8s} I2V (first frame, {len(params)} clips) {s} steps: " + "  ".join(
                f"{m} {res['i2v'][str(s)][m]:.3f}" for m in METRICS), flush=True)
        res["timing"] = timings(pipe, args.steps, jump)
        res["bytes"] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    lines = [f"Judge accuracy, {args.n} clips per cell (seen / held-out combinations), guidance_scale=1.0, "
             f"64x64x17 (num_frames={NUM_FRAMES_ARG}), {torch.get_num_threads()} threads. T2V rows are keyframe-first "
             "(the studio's T2V for this model); 'one-call T2V' is a single pipeline call from noise. "
             "Every row uses the step grid the studio renders the model with (catalogue last_jump_sigma: "
             + ", ".join(f"{m} {r['last_jump_sigma']}" for m, r in results.items())
             + "; studio/engine/schedule.py) except 'scheduler's own grid'.", "",
             "| model | split | steps | " + " | ".join(METRICS) + " | all |",
             "|---|---|---|" + "---|" * (len(METRICS) + 1)]
    for model, res in results.items():
        for split in ("seen", "held_out"):
            for s in args.steps:
                r = res[split][str(s)]
                lines.append(f"| {model} | {split} | {s} | " + " | ".join(f"{r[m]:.2f}" for m in METRICS)
                             + f" | {r['all']:.2f} |")
        for s in args.steps if "native" in res else []:
            r = res["native"][str(s)]
            lines.append(f"| {model} | seen, scheduler's own grid | {s} | " + " | ".join(f"{r[m]:.2f}" for m in METRICS)
                         + f" | {r['all']:.2f} |")
        for s in args.steps:
            r = res["direct"][str(s)]
            lines.append(f"| {model} | seen, one-call T2V | {s} | " + " | ".join(f"{r[m]:.2f}" for m in METRICS)
                         + f" | {r['all']:.2f} |")
        for s in args.i2v_steps:
            r = res["i2v"][str(s)]
            lines.append(f"| {model} | I2V (first frame) | {s} | " + " | ".join(f"{r[m]:.2f}" for m in METRICS)
                         + f" | {r['all']:.2f} |")
    lines += ["", "| model | steps | T2V render s (both calls, incl. VAE decode) | mp4 s |", "|---|---|---|---|"]
    for model, res in results.items():
        for s, tm in res["timing"].items():
            lines.append(f"| {model} | {s} | {tm['render_s']} | {tm['mp4_s']} |")
    lines += ["", "| model | size MB |", "|---|---|"]
    lines += [f"| {m} | {r['bytes'] / 1e6:.2f} |" for m, r in results.items()]
    table = "\n".join(lines)
    print(table)
    (out / "any_step.md").write_text(table + "\n")
    (out / "any_step.json").write_text(json.dumps(results, indent=2))
    plot(results, args.steps, out / "any_step.png")
    print(f"wrote {out / 'any_step.md'}, {out / 'any_step.json'}, {out / 'any_step.png'} "
          f"({time.time() - t_start:.0f}s)")


if __name__ == "__main__":
    main()
