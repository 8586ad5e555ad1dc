"""The "Analytics" tab: what each step budget bought, from the history (``HistoryStore.stats``).

A table (model, steps, renders, accepted rate, median seconds) and two bar charts (``charts.bar_chart``):
median seconds per step budget and the share of renders starred (accepted) per budget, one colour per model.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from . import charts, spacemode

TABLE_COLUMNS = ["Model", "Steps", "Renders", "Starred", "Median seconds"]  # the plots' word too
EMPTY_NOTE = ("No finished renders yet. Render in Create, Compare or a Storyboard, star the ones you keep, "
              "and this tab shows what each step budget bought.")


def stats_frame(rows: list[dict]) -> pd.DataFrame:
    """``HistoryStore.stats()`` rows as the table shown (accepted as a percentage)."""
    return pd.DataFrame(
        [[r["model"], int(r["steps"] or 0), int(r["renders"]), f"{100 * (r['accepted_rate'] or 0):.0f}%",
          r["median_seconds"]] for r in rows],
        columns=TABLE_COLUMNS,
    )


def model_tags(model_ids) -> dict[str, str]:
    """Short names for the charts' legends: ids without the dash-separated prefix they all share
    ('anyflow-shapes', 'anyflow-wan-1.3b' -> 'shapes', 'wan-1.3b'); the whole id where that would leave nothing."""
    ids = [str(m) for m in dict.fromkeys(model_ids)]
    parts = [m.split("-") for m in ids]
    common = 0
    while parts and all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return {m: "-".join(p[common:]) or m for m, p in zip(ids, parts)}


def budget_charts(rows: list[dict]) -> tuple[str, str]:
    """SVG bars from ``HistoryStore.stats()`` rows: median seconds and % starred, grouped by step budget (in step
    order), one colour per model; one model's legend shows its whole id, several models' their short tags."""
    models = list(dict.fromkeys(str(r["model"]) for r in rows))
    tags = model_tags(models) if len(models) > 1 else {m: m for m in models}
    budgets = sorted({int(r["steps"] or 0) for r in rows})
    seconds = [(tags[m], m, {int(r["steps"] or 0): float(r["median_seconds"] or 0.0)
                             for r in rows if str(r["model"]) == m}) for m in models]
    starred = [(tags[m], m, {int(r["steps"] or 0): round(100 * float(r["accepted_rate"] or 0), 1)
                             for r in rows if str(r["model"]) == m}) for m in models]
    return (charts.bar_chart(budgets, seconds, "Median seconds per budget", "median seconds", unit=" s"),
            charts.bar_chart(budgets, starred, "Starred per budget", "% starred", y_max=100, unit="%"))


def summary(rows: list[dict]) -> str:
    if not rows:
        return EMPTY_NOTE
    total = sum(r["renders"] for r in rows)
    best = max(rows, key=lambda r: (r["accepted_rate"] or 0, -(r["median_seconds"] or 0)))
    text = (f"{total} finished render{'s' if total != 1 else ''} over {len(rows)} model/budget pair"
            f"{'s' if len(rows) != 1 else ''}.")
    if best["accepted_rate"]:
        text += (f" Most often kept: **{best['model']} at {best['steps']} steps** "
                 f"({100 * best['accepted_rate']:.0f}% starred, median {best['median_seconds']} s).")
    else:
        text += " Star the renders you keep (in Create or History) to see which budgets pay off."
    return text


def visible_stats(studio, session_v) -> list[dict]:
    """The stats a visitor may see: in Space mode only their session's renders (none before the session has an
    id, as for the charts built with the page, which every visitor gets); locally, every render."""
    if not studio.settings.space:
        return studio.history.stats()
    sid = spacemode.session_id(studio, session_v)
    return studio.history.stats(session=sid) if sid else []


def build(studio, session: gr.State) -> dict:
    gr.Markdown("### What each budget bought\nFor every model and budget, how many renders finished, how many "
                "you starred, and the median seconds a render took (wall time of the render, including a model load if it had one). Cheap budgets "
                "that get starred as often as expensive ones are where the time goes furthest.",
                elem_classes=["hint"])
    with gr.Row():
        note = gr.Markdown(EMPTY_NOTE, elem_id="stats-summary")
        refresh_btn = gr.Button("↻ Refresh", size="sm", scale=0, min_width=110, elem_id="stats-refresh")
    seconds_svg, accepted_svg = budget_charts(visible_stats(studio, None))
    with gr.Row(equal_height=True):
        seconds_plot = gr.HTML(seconds_svg, elem_id="stats-seconds-plot", padding=False)
        accepted_plot = gr.HTML(accepted_svg, elem_id="stats-accepted-plot", padding=False)
    table = gr.Dataframe(stats_frame([]), interactive=False, elem_id="stats-table", label="By model and budget")

    def refresh(session_v=None):
        rows = visible_stats(studio, session_v)
        return stats_frame(rows), *budget_charts(rows), summary(rows)

    outputs = [table, seconds_plot, accepted_plot, note]
    refresh_btn.click(refresh, session, outputs, api_name="budget_stats")
    return {"refresh": refresh, "inputs": [session], "outputs": outputs}
