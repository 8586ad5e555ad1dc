"""A sweep's report from its items (SweepStore.items): per model and budget, seconds, memory, each metric's mean
with an interval and the blind review's accepted rate; the cliffs; exports (CSV, JSON, the grid PNG).

Independent of how the renders were queued: it reads items (model, steps, prompt and seed index, seconds,
timings, metrics, review, signature file) and nothing else. No torch, no gradio.

Intervals: a metric's mean has a 95% Student t interval over the renders of that budget (none for one render);
the accepted rate a 95% Wilson interval over the clips reviewed. A **cliff** is a budget where a metric (or the
accepted rate) is worse than at a smaller budget of the same model by more than its noise: the gap is larger than
twice the standard error of the difference (``find_cliffs``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..engine import metrics as sweep_metrics

# metric -> (label, direction: +1 higher is better, -1 lower is better, 0 neither: not checked for cliffs)
METRICS = {
    "convergence_ssim": ("convergence SSIM to the top budget", +1),
    "convergence_psnr": ("convergence PSNR to the top budget (dB)", +1),
    "convergence_mad": ("mean abs difference to the top budget", -1),
    "change": ("frame-to-frame change", 0),
    "flicker": ("flicker", -1),
    "sharpness": ("sharpness (Laplacian variance)", +1),
    "i2v_psnr": ("I2V first-frame PSNR (dB)", +1),
    "i2v_ssim": ("I2V first-frame SSIM", +1),
    "v2v_context_psnr": ("V2V context PSNR (dB)", +1),
    "v2v_move": ("V2V move from a copy of the last frame", +1),
    "judge_colour": ("judge: colour", +1),
    "judge_shape": ("judge: shape", +1),
    "judge_direction": ("judge: direction", +1),
    "judge_background": ("judge: background", +1),
    "judge_all": ("judge: all four right", +1),
    "clip_score": ("CLIP text-video score", +1),
}
Z95 = 1.959963984540054


def mean_interval(values: list[float]) -> dict:
    """{"mean", "low", "high", "n", "se"}: a 95% t interval (low/high None for fewer than two values)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "n": 0, "se": None}
    mean = float(np.mean(vals))
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": 1, "se": None}
    from scipy.stats import t

    se = float(np.std(vals, ddof=1) / math.sqrt(n))
    half = float(t.ppf(0.975, n - 1)) * se
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n, "se": se}


def wilson(accepted: int, reviewed: int, z: float = Z95) -> dict:
    """{"rate", "low", "high", "accepted", "reviewed"}: the Wilson score interval (rate None when none reviewed)."""
    if reviewed <= 0:
        return {"rate": None, "low": None, "high": None, "accepted": 0, "reviewed": 0}
    p = accepted / reviewed
    denom = 1 + z * z / reviewed
    centre = (p + z * z / (2 * reviewed)) / denom
    half = z * math.sqrt(p * (1 - p) / reviewed + z * z / (4 * reviewed * reviewed)) / denom
    return {"rate": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half), "accepted": accepted,
            "reviewed": reviewed}


def find_cliffs(series: dict[int, list[float]], direction: int = +1) -> list[dict]:
    """Budgets where the mean is worse than the best mean at any smaller budget by more than the noise (twice the
    standard error of the difference). ``series``: {steps: values}. Each cliff: at_steps, from_steps (that best
    smaller budget), drop (how much worse, > 0), noise."""
    if direction == 0:
        return []
    stats = {s: mean_interval(v) for s, v in sorted(series.items()) if v}
    cliffs, best = [], None
    for steps, st in stats.items():
        if best is not None:
            ref = stats[best]
            drop = direction * (ref["mean"] - st["mean"])
            noise = 2 * math.sqrt((ref["se"] or 0.0) ** 2 + (st["se"] or 0.0) ** 2)
            if drop > max(noise, 1e-9 * max(1.0, abs(ref["mean"]))):
                cliffs.append({"at_steps": steps, "from_steps": best, "drop": drop, "noise": noise})
        if best is None or direction * (st["mean"] - stats[best]["mean"]) > 0:
            best = steps
    return cliffs


def accepted_cliffs(groups: dict[int, dict]) -> list[dict]:
    """Cliffs in the accepted rate: the same rule, with each budget's binomial standard error."""
    series = {}
    for steps, acc in groups.items():
        if acc["reviewed"]:
            series[steps] = [1.0] * acc["accepted"] + [0.0] * (acc["reviewed"] - acc["accepted"])
    return find_cliffs(series, +1)


# ---- convergence (needs the signatures of the same seed's renders) -------------------------------------------
def add_convergence(items: list[dict]) -> None:
    """Each rendered item's convergence metrics against its prompt/seed/model's highest-budget render."""
    groups: dict[tuple, list[dict]] = {}
    for item in items:
        if item.get("render_status") == "ok" and item.get("signature") and Path(item["signature"]).is_file():
            groups.setdefault((item["prompt_index"], item["seed_index"], item["model"]), []).append(item)
    for members in groups.values():
        top = max(members, key=lambda i: i["steps"])
        top_clip = load_signature(top["signature"])["clip"]
        for item in members:
            clip = top_clip if item is top else load_signature(item["signature"])["clip"]
            item["metrics"] = dict(item.get("metrics") or {}, **sweep_metrics.convergence(clip, top_clip),
                                   convergence_top=top["steps"])


def load_signature(path: str) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# ---- the summary ----------------------------------------------------------------------------------------------
def _seconds(rows: list[dict]) -> dict:
    totals = [r["seconds"] for r in rows if r.get("seconds") is not None]
    out = {"median": float(np.median(totals)) if totals else None,
           "p90": float(np.percentile(totals, 90)) if totals else None}
    for part in ("load", "encode", "denoise", "decode", "write"):
        vals = [(r.get("timings") or {}).get(part) for r in rows]
        vals = [v for v in vals if isinstance(v, (int, float))]
        if vals:
            out[part] = float(np.median(vals))
    return out


def _memory(rows: list[dict]):
    peaks = [(r.get("timings") or {}).get("peak_memory_bytes") for r in rows]
    peaks = [p for p in peaks if isinstance(p, (int, float))]
    return round(max(peaks) / 2**30, 3) if peaks else "not measured"


def _group(model: str, steps: int, rows: list[dict]) -> dict:
    ok = [r for r in rows if r.get("render_status") == "ok"]
    names = [m for m in METRICS if any(m in (r.get("metrics") or {}) for r in ok)]
    reviews = [r["review"] for r in rows if r.get("review") is not None]
    return {"model": model, "steps": steps, "renders": len(ok), "not_rendered": len(rows) - len(ok),
            "seconds": _seconds(ok), "peak_memory_gb": _memory(ok),
            "metrics": {m: mean_interval([(r.get("metrics") or {}).get(m) for r in ok]) for m in names},
            "accepted": wilson(sum(reviews), len(reviews))}


def summarise(items: list[dict]) -> list[dict]:
    """One entry per model and budget, in model then step order."""
    groups: dict[tuple, list[dict]] = {}
    for item in items:
        groups.setdefault((item["model"], item["steps"]), []).append(item)
    return [_group(model, steps, rows) for (model, steps), rows in sorted(groups.items(), key=lambda kv: kv[0])]


def cliffs(items: list[dict], summary: list[dict]) -> list[dict]:
    """Every cliff of every checked metric and of the accepted rate, per model."""
    out = []
    for model in dict.fromkeys(i["model"] for i in items):
        ok = [i for i in items if i["model"] == model and i.get("render_status") == "ok"]
        for metric, (label, direction) in METRICS.items():
            series: dict[int, list[float]] = {}
            for i in ok:
                value = (i.get("metrics") or {}).get(metric)
                if value is not None:
                    series.setdefault(i["steps"], []).append(value)
            for c in find_cliffs(series, direction):
                out.append({"model": model, "metric": metric, "label": label, **c})
        accepted = {g["steps"]: g["accepted"] for g in summary if g["model"] == model}
        for c in accepted_cliffs(accepted):
            out.append({"model": model, "metric": "accepted", "label": "accepted rate (blind review)", **c})
    return out
