"""Small inline SVG charts for the UI (no JavaScript, no plotting library).

Why not ``gr.LinePlot``: in Gradio 6.31 a native plot builds its Vega spec once, from the value it mounts with, and
later values only swap the data. The Compare plot mounts empty, so the ``model`` colour became a quantitative scale
of pale accent shades (or, mounted with an empty ``model`` column, drew nothing at all). This chart is rebuilt on
every update, so each model's line has its own colour and legend entry.
"""

from __future__ import annotations

import html
import math

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#9333ea")  # blue, orange, green, purple


def _nice_top(value: float) -> float:
    if value <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(value))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * base >= value:
            return m * base
    return 10 * base


def _is_round(step: float) -> bool:
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(abs(mantissa - m) < 1e-9 for m in (1, 2, 2.5, 5))


def seconds_chart(rows: list[dict], title: str = "Seconds per budget", width: int = 360, height: int = 210) -> str:
    """Render seconds against step budget, one line per model. ``rows``: dicts with steps, seconds and model."""
    pts = [r for r in rows if r.get("seconds") is not None and r.get("steps")]
    left, right, top, bottom = 40, 12, 26, 46
    pw, ph = width - left - right, height - top - bottom
    out = [f'<svg class="seconds-chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg" '
           f'style="width:100%;max-width:{width * 2}px;height:auto;font:11px sans-serif">',
           f'<text x="{width / 2}" y="15" text-anchor="middle" font-weight="600" fill="currentColor">'
           f'{html.escape(title)}</text>']
    if not pts:
        out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#d4d4d8"/>')
        out.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" fill="#71717a">'
                   "timings appear here as budgets finish</text></svg>")
        return "".join(out)
    budgets = sorted({int(r["steps"]) for r in pts})
    lo, hi = math.log2(budgets[0]), math.log2(budgets[-1])
    y_top = _nice_top(max(float(r["seconds"]) for r in pts))

    def x_of(steps: int) -> float:
        return left + (pw / 2 if hi == lo else (math.log2(steps) - lo) / (hi - lo) * pw)

    def y_of(seconds: float) -> float:
        return top + ph - float(seconds) / y_top * ph

    divisions = next((n for n in (5, 4, 3, 6) if _is_round(y_top / n)), 4)
    for i in range(divisions + 1):  # horizontal grid and y labels
        v = round(y_top * i / divisions, 6)
        y = y_of(v)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e7"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="currentColor">{v:g}</text>')
    for b in budgets:
        out.append(f'<text x="{x_of(b):.1f}" y="{top + ph + 14}" text-anchor="middle" fill="currentColor">{b}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{top + ph + 28}" text-anchor="middle" fill="#71717a">steps</text>')
    out.append(f'<text x="10" y="{top + ph / 2}" text-anchor="middle" fill="#71717a" '
               f'transform="rotate(-90 10 {top + ph / 2})">seconds</text>')
    models = list(dict.fromkeys(str(r.get("model") or "") for r in pts))
    legend_x = left
    for k, model in enumerate(models):
        colour = PALETTE[k % len(PALETTE)]
        mine = sorted((r for r in pts if str(r.get("model") or "") == model), key=lambda r: int(r["steps"]))
        coords = " ".join(f"{x_of(int(r['steps'])):.1f},{y_of(r['seconds']):.1f}" for r in mine)
        out.append(f'<polyline class="series" data-model="{html.escape(model)}" points="{coords}" fill="none" '
                   f'stroke="{colour}" stroke-width="2.5"/>')
        for r in mine:
            out.append(f'<circle cx="{x_of(int(r["steps"])):.1f}" cy="{y_of(r["seconds"]):.1f}" r="3.5" '
                       f'fill="{colour}"><title>{html.escape(model)}: {int(r["steps"])} steps, '
                       f'{float(r["seconds"]):.2f} s</title></circle>')
        if model:
            ly = height - 6
            out.append(f'<line x1="{legend_x}" x2="{legend_x + 16}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                       f'stroke-width="3"/><text x="{legend_x + 20}" y="{ly}" fill="currentColor">'
                       f"{html.escape(model)}</text>")
            legend_x += 28 + 6.2 * len(model)
    out.append("</svg>")
    return "".join(out)
