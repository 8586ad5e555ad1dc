"""The "Analytics" tab: what each step budget bought, from the history (``HistoryStore.stats``).

A table (model, steps, renders, accepted rate, median seconds) and two plots: median seconds per
step budget and the share of renders starred (accepted) per budget, one colour per model.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from . import spacemode

TABLE_COLUMNS = ["Model", "Steps", "Renders", "Accepted", "Median seconds"]
EMPTY_NOTE = ("No finished renders yet. Render in Create, Compare or a Storyboard, star the ones you keep, "
              "and this tab shows what each step budget bought.")


def stats_frame(rows: list[dict]) -> pd.DataFrame:
    """``HistoryStore.stats()`` rows as the table shown (accepted as a percentage)."""
    return pd.DataFrame(
        [[r["model"], int(r["steps"] or 0), int(r["renders"]), f"{100 * (r['accepted_rate'] or 0):.0f}%",
          r["median_seconds"]] for r in rows],
        columns=TABLE_COLUMNS,
    )


MAX_PLOT_STEPS = 64


def model_tags(model_ids) -> dict[str, str]:
    """Short names for the plots' labels: ids without the dash-separated prefix they all share
    ('anyflow-shapes', 'anyflow-wan-1.3b' -> 'shapes', 'wan-1.3b'); the whole id where that would leave nothing."""
    ids = [str(m) for m in dict.fromkeys(model_ids)]
    parts = [m.split("-") for m in ids]
    common = 0
    while parts and all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return {m: "-".join(p[common:]) or m for m, p in zip(ids, parts)}


def budget_label(steps, model, models: int, tags: dict | None = None) -> str:
    """The bar's category: 'N steps', or 'N · tag' when several models share the plot."""
    return f"{int(steps or 0)} steps" if models <= 1 else f"{int(steps or 0)} · {(tags or {}).get(model, model)}"


def label_order(model_ids) -> list[str]:
    """Every label a bar can have, in step order (Gradio 6.31's plots sort categories as text otherwise)."""
    tags = model_tags(model_ids)
    return [f"{n} steps" for n in range(1, MAX_PLOT_STEPS + 1)] + [
        f"{n} · {tags[m]}" for n in range(1, MAX_PLOT_STEPS + 1) for m in tags]


def plot_frame(rows: list[dict], model_ids=()) -> pd.DataFrame:
    """One bar per model and budget: its label, median seconds, accepted %, renders, model.

    Plain column names (they are the plot's field names) and typed empty columns: in Gradio 6.31 a
    plot made from an untyped empty frame, or one coloured by a column, draws no bars after an update."""
    models = len({r["model"] for r in rows})
    tags = model_tags([*model_ids, *(r["model"] for r in rows)])  # the registry's ids: the same tags as label_order
    return pd.DataFrame({
        "budget": pd.Series([budget_label(r["steps"], r["model"], models, tags) for r in rows], dtype=object),
        "steps": pd.Series([int(r["steps"] or 0) for r in rows], dtype=int),
        "seconds": pd.Series([float(r["median_seconds"] or 0.0) for r in rows], dtype=float),
        "accepted": pd.Series([round(100 * float(r["accepted_rate"] or 0), 1) for r in rows], dtype=float),
        "renders": pd.Series([int(r["renders"]) for r in rows], dtype=int),
        "model": pd.Series([str(r["model"]) for r in rows], dtype=object),
    })


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


def build(studio, session: gr.State) -> dict:
    gr.Markdown("### What each budget bought\nFor every model and budget, how many renders finished, how many "
                "you starred, and the median seconds a render took (wall time of the render, including a model load if it had one). Cheap budgets "
                "that get starred as often as expensive ones are where the time goes furthest.",
                elem_classes=["hint"])
    with gr.Row():
        note = gr.Markdown(EMPTY_NOTE, elem_id="stats-summary")
        refresh_btn = gr.Button("↻ Refresh", size="sm", scale=0, min_width=110, elem_id="stats-refresh")
    # typed columns: an empty frame would make every axis numeric
    initial = plot_frame(studio.history.stats(), studio.registry.ids())
    with gr.Row(equal_height=True):
        order = label_order(studio.registry.ids())
        seconds_plot = gr.BarPlot(initial, x="budget", y="seconds", title="Median seconds per budget", sort=order,
                                  x_title="step budget", y_title="median seconds", y_lim=[0, None], height=300,
                                  x_label_angle=-35,
                                  elem_id="stats-seconds-plot")
        accepted_plot = gr.BarPlot(initial, x="budget", y="accepted", title="Starred per budget", sort=order,
                                   x_title="step budget", y_title="% starred", y_lim=[0, 100], height=300,
                                   x_label_angle=-35,
                                   elem_id="stats-accepted-plot")
    table = gr.Dataframe(stats_frame([]), interactive=False, elem_id="stats-table", label="By model and budget")

    def refresh(session_v=None):
        sid = spacemode.session_id(studio, session_v)
        rows = studio.history.stats(session=sid) if sid else studio.history.stats()
        frame = plot_frame(rows, studio.registry.ids())
        return stats_frame(rows), frame, frame, summary(rows)

    outputs = [table, seconds_plot, accepted_plot, note]
    refresh_btn.click(refresh, session, outputs, api_name="budget_stats")
    return {"refresh": refresh, "inputs": [session], "outputs": outputs}
