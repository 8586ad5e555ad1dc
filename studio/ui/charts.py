"""Small inline SVG charts for the UI (no JavaScript, no plotting library): Compare's seconds per budget,
Analytics' bars per budget and model.

Why not ``gr.LinePlot`` / ``gr.BarPlot``: in Gradio 6.31 a native plot builds its Vega spec once, from the value it
mounts with, and later values only swap the data. The Compare plot mounted empty, so the ``model`` colour became a
quantitative scale of pale accent shades (mounted with an empty ``model`` column it drew nothing at all), and
Analytics' bars could not be coloured by model at all. These charts are rebuilt on every update, so each model has
its own colour and legend entry.
"""

from __future__ import annotations

import html
import math

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")


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


def _open(cls: str, title: str, width: int, height: int) -> list[str]:
    """The <svg> element and its title line."""
    return [f'<svg class="{cls}" viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg" style="width:100%;max-width:{width * 2}px;height:auto;'
            f'font:11px sans-serif">',
            f'<text x="{width / 2}" y="15" text-anchor="middle" font-weight="600" fill="currentColor">'
            f'{html.escape(title)}</text>']


def _empty(out: list[str], box: tuple[float, float, float, float], message: str) -> str:
    left, top, pw, ph = box
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#d4d4d8"/>')
    out.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" fill="#71717a">'
               f"{html.escape(message)}</text></svg>")
    return "".join(out)


def _y_axis(out: list[str], box: tuple[float, float, float, float], y_top: float, y_title: str) -> None:
    """Horizontal grid lines at round values from 0 to ``y_top``, their labels, and the axis title."""
    left, top, pw, ph = box
    divisions = next((n for n in (5, 4, 3, 6) if _is_round(y_top / n)), 4)
    for i in range(divisions + 1):
        v = round(y_top * i / divisions, 6)
        y = top + ph - v / y_top * ph
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e7"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="currentColor">{v:g}</text>')
    out.append(f'<text x="10" y="{top + ph / 2}" text-anchor="middle" fill="#71717a" '
               f'transform="rotate(-90 10 {top + ph / 2})">{html.escape(y_title)}</text>')


def seconds_chart(rows: list[dict], title: str = "Seconds per budget", width: int = 360, height: int = 210,
                  y_title: str = "seconds", unit: str = " s", y_max: float | None = None) -> str:
    """Render seconds against step budget, one line per model. ``rows``: dicts with steps, seconds and model.
    Any other value against steps draws the same way (a sweep's metrics): its ``y_title``, ``unit``, ``y_max``."""
    pts = [r for r in rows if r.get("seconds") is not None and r.get("steps")]
    left, right, top, bottom = 40, 12, 26, 46
    pw, ph = width - left - right, height - top - bottom
    out = _open("seconds-chart", title, width, height)
    if not pts:
        return _empty(out, (left, top, pw, ph), "timings appear here as budgets finish")
    budgets = sorted({int(r["steps"]) for r in pts})
    lo, hi = math.log2(budgets[0]), math.log2(budgets[-1])
    y_top = y_max or _nice_top(max(float(r["seconds"]) for r in pts))

    def x_of(steps: int) -> float:
        return left + (pw / 2 if hi == lo else (math.log2(steps) - lo) / (hi - lo) * pw)

    def y_of(seconds: float) -> float:
        return top + ph - float(seconds) / y_top * ph

    _y_axis(out, (left, top, pw, ph), y_top, y_title)
    for b in budgets:
        out.append(f'<text x="{x_of(b):.1f}" y="{top + ph + 14}" text-anchor="middle" fill="currentColor">{b}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{top + ph + 28}" text-anchor="middle" fill="#71717a">steps</text>')
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
                       f'{float(r["seconds"]):.3g}{html.escape(unit)}</title></circle>')
        if model:
            ly = height - 6
            out.append(f'<line x1="{legend_x}" x2="{legend_x + 16}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                       f'stroke-width="3"/><text x="{legend_x + 20}" y="{ly}" fill="currentColor">'
                       f"{html.escape(model)}</text>")
            legend_x += 28 + 6.2 * len(model)
    out.append("</svg>")
    return "".join(out)


def bar_chart(budgets: list[int], series: list[tuple[str, str, dict]], title: str, y_title: str,
              y_max: float | None = None, unit: str = "", width: int = 420, height: int = 240) -> str:
    """Grouped bars: one group per step budget (in step order), one coloured bar per series in each group.

    ``series``: (legend label, hover name, {steps: value}); a series without a value at a budget leaves a gap."""
    left, right, top, bottom = 40, 10, 26, 54
    pw, ph = width - left - right, height - top - bottom
    out = _open("bar-chart", title, width, height)
    values = [float(v) for _, _, vals in series for v in vals.values() if v is not None]
    if not budgets or not values:
        return _empty(out, (left, top, pw, ph), "no finished renders yet")
    y_top = y_max or _nice_top(max(values))
    _y_axis(out, (left, top, pw, ph), y_top, y_title)
    group_w = pw / len(budgets)
    bar_w = min(28.0, group_w * 0.8 / max(len(series), 1))
    for g, steps in enumerate(budgets):
        cx = left + group_w * (g + 0.5)
        x0 = cx - bar_w * len(series) / 2
        for k, (_, name, vals) in enumerate(series):
            v = vals.get(steps)
            if v is None:
                continue
            h = max(float(v), 0.0) / y_top * ph
            out.append(f'<rect class="bar" data-series="{html.escape(name)}" data-steps="{steps}" '
                       f'x="{x0 + k * bar_w:.1f}" y="{top + ph - h:.1f}" width="{bar_w * 0.92:.1f}" '
                       f'height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}"><title>{html.escape(name)}: '
                       f'{steps} steps, {float(v):g}{unit}</title></rect>')
        out.append(f'<text x="{cx:.1f}" y="{top + ph + 14}" text-anchor="middle" fill="currentColor">{steps}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{top + ph + 28}" text-anchor="middle" fill="#71717a">steps</text>')
    legend_x = left
    for k, (label, _, _) in enumerate(series):
        ly = height - 6
        out.append(f'<rect x="{legend_x}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
                   f'<text x="{legend_x + 14}" y="{ly}" fill="currentColor">{html.escape(label)}</text>')
        legend_x += 24 + 6.2 * len(label)
    out.append("</svg>")
    return "".join(out)
