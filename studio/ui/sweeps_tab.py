"""The "Sweeps" tab: run a sweep (prompts x seeds x models x budgets), read its report (table, plots against
steps, cliffs, the grid), download its exports, accept the policies it proposes, and review its clips blind
(sweep_review_tab.py). The work is studio/jobs/sweep_run.py's; this module only lays it out.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..jobs import sweep_run
from ..errors import StudioError
from ..store.sweeps import SweepStore
from . import charts, sweep_review_tab
from .session import cancel, cancel_scope

PLOTS = (("seconds", "Median seconds", "seconds", " s", None), ("convergence_ssim", "Convergence SSIM", "SSIM", "", 1),
         ("flicker", "Flicker", "flicker", "", None), ("sharpness", "Sharpness", "Laplacian var", "", None),
         ("judge_all", "Judge: all four right", "share", "", 1), ("accepted", "Accepted (blind review)", "%", "%", 100))
TABLE = ["Model", "Steps", "Renders", "Median s", "p90 s", "Peak GB", "Conv SSIM", "Flicker", "Sharpness", "Judge",
         "Accepted"]
HINT = ("### Sweeps: what each step budget buys on your prompts\nOne line per prompt. Every prompt renders at every "
        "budget with the same seeds (so each budget can be compared with the top one), through the render queue. "
        "Then review the clips blind, and turn the result into draft / preview / final policies.")


def _choices(studio) -> list[tuple[str, str]]:
    return [(f"{r['name']} · {r['rendered']}/{r['items']} · {r['status']} · {r['id']}", r["id"])
            for r in SweepStore(studio.history).list()]


def _fmt(value, pattern: str = "{:.3f}") -> str:
    return "" if value is None else pattern.format(value)


def table(report: dict) -> pd.DataFrame:
    rows = []
    for g in report["summary"]:
        m, acc = g["metrics"], g["accepted"]
        rows.append([g["model"], g["steps"], g["renders"], _fmt(g["seconds"].get("median"), "{:.2f}"),
                     _fmt(g["seconds"].get("p90"), "{:.2f}"), str(g["peak_memory_gb"]),
                     _fmt(m.get("convergence_ssim", {}).get("mean")), _fmt(m.get("flicker", {}).get("mean"), "{:.4f}"),
                     _fmt(m.get("sharpness", {}).get("mean"), "{:.0f}"), _fmt(m.get("judge_all", {}).get("mean"), "{:.2f}"),
                     f"{acc['rate']:.0%} ({acc['low']:.0%}-{acc['high']:.0%}), n={acc['reviewed']}" if acc["reviewed"]
                     else "not reviewed"])
    return pd.DataFrame(rows, columns=TABLE)


def _value(g: dict, key: str):
    if key == "seconds":
        return g["seconds"].get("median")
    if key == "accepted":
        return None if g["accepted"]["rate"] is None else 100 * g["accepted"]["rate"]
    return g["metrics"].get(key, {}).get("mean")


def plots(report: dict) -> str:
    """The SVG charts against steps, one line per model, for the values this sweep has."""
    out = []
    for key, title, y_title, unit, y_max in PLOTS:
        rows = [{"steps": g["steps"], "seconds": v, "model": g["model"]} for g in report["summary"]
                if (v := _value(g, key)) is not None]
        if rows:
            out.append(f'<div class="sweep-plot">{charts.seconds_chart(rows, title, y_title=y_title, unit=unit, y_max=y_max)}</div>')
    return '<div id="sweep-plots-grid" style="display:grid;grid-template-columns:repeat(3,1fr);gap:8px">' + \
        "".join(out) + "</div>"


def summary(report: dict) -> str:
    c = report["counts"]
    waiting = f", {c['waiting']} waiting" if c["waiting"] else ""
    lines = [f"**{report['name']}** ({report['id']}): {report['status']}; {c['rendered']} of {c['items']} rendered"
             f"{waiting}, {c['reviewed']} reviewed."]
    if report["cliffs"]:
        lines.append("**Cliffs** (worse with more steps, beyond the noise):")
        lines += [f"- {x['model']}: {x['label']} at **{x['at_steps']} steps** is worse than at {x['from_steps']} "
                  f"(by {x['drop']:.3g}; noise {x['noise']:.3g})" for x in report["cliffs"]]
    else:
        lines.append("No cliffs: no metric gets worse with more steps beyond its noise.")
    lines += [f"- *{name.replace('_', ' ')}*: {why}" for name, why in report.get("off", {}).items()]
    return "\n".join(lines)


def policies_md(proposal: dict) -> str:
    if not proposal["policies"]:
        return proposal.get("note") or "Nothing to propose yet."
    lines = [f"**Proposed policies** for {proposal['model']} (from {proposal['signal']}):"]
    lines += [f"- **{p['name']}: {p['steps']} steps**: {p['reason']}" for p in proposal["policies"]]
    if proposal.get("note"):
        lines.append(f"\n*{proposal['note']}*")
    return "\n".join(lines)


def show(studio, sid):
    """The report's outputs for sweep ``sid`` (blank ones for none)."""
    if not sid:
        return "Run a sweep, or pick one.", pd.DataFrame(columns=TABLE), "", None, None, ""
    try:
        report = sweep_run.report(studio, sid)
    except StudioError as exc:
        return f"**{exc}**", pd.DataFrame(columns=TABLE), "", None, None, ""
    files = [report["exports"][k] for k in ("summary_csv", "renders_csv", "summary_json", "renders_json", "grid_png")]
    return (summary(report), table(report), plots(report), report["exports"]["grid_png"], files,
            policies_md(report["policies"]))


def spec_from(prompts: str, budgets: str, seeds, mode: str, models, image) -> dict:
    lines = [p.strip() for p in (prompts or "").splitlines() if p.strip() and not p.strip().startswith("#")]
    try:
        steps = [int(b) for b in (budgets or "").replace(" ", "").split(",") if b]
    except ValueError:
        raise StudioError(f"budgets are whole numbers separated by commas, like 1,2,4,8; got {budgets!r}") from None
    spec = {"prompts": lines, "mode": mode or "t2v", "budgets": steps, "seeds": int(seeds or 1),
            "models": list(models or []), "name": (lines[0][:40] if lines else "")}
    if mode == "i2v":
        if not image:
            raise StudioError("image-to-video needs an image (one for every prompt)")
        spec["prompts"] = [{"prompt": p, "image": image} for p in lines]
    return spec


def build(studio, model_default: str) -> dict:
    gr.Markdown(HINT, elem_classes=["hint"])
    state = gr.State({})
    with gr.Row():
        prompts = gr.Textbox(label="Prompts (one per line)", lines=5, elem_id="sweep-prompts", scale=3)
        with gr.Column(scale=2):
            budgets = gr.Textbox("1,2,4,8,16", label="Step budgets", elem_id="sweep-budgets")
            seeds = gr.Number(2, label="Seeds per prompt", precision=0, minimum=1, maximum=16, elem_id="sweep-seeds")
            models = gr.Dropdown(studio.models.registry.ids(), value=[model_default],
                                 multiselect=True, label="Models", elem_id="sweep-models")
            mode = gr.Radio(["t2v", "i2v"], value="t2v", label="Mode", elem_id="sweep-mode")
            image = gr.Image(type="filepath", label="Image (i2v)", height=120, elem_id="sweep-image")
    with gr.Row():
        run_btn = gr.Button("Run sweep", variant="primary", elem_id="sweep-run")
        stop_btn = gr.Button("Cancel", elem_id="sweep-cancel")
    status = gr.Markdown(elem_id="sweep-status")
    with gr.Row():
        picker = gr.Dropdown(_choices(studio), label="Sweep", elem_id="sweep-picker", scale=4)
        refresh_btn = gr.Button("↻ Refresh", size="sm", scale=0, min_width=110, elem_id="sweep-refresh")
    report_md = gr.Markdown(elem_id="sweep-summary")
    report_table = gr.Dataframe(pd.DataFrame(columns=TABLE), interactive=False, elem_id="sweep-table",
                                label="By model and budget")
    report_plots = gr.HTML(elem_id="sweep-plots", padding=False)
    grid = gr.Image(label="Grid: prompts x budgets (first | middle frame)", elem_id="sweep-grid", interactive=False)
    exports = gr.File(label="Exports", file_count="multiple", elem_id="sweep-exports", interactive=False)
    policy_md = gr.Markdown(elem_id="sweep-policies")
    write_btn = gr.Button("Write these policies to policies.toml", elem_id="sweep-write-policies")
    write_note = gr.Markdown(elem_id="sweep-write-note")
    with gr.Accordion("Review (blind)", open=True, elem_id="sweep-review"):
        review = sweep_review_tab.build(studio, picker)
    outputs = [report_md, report_table, report_plots, grid, exports, policy_md]

    def run(prompts_v, budgets_v, seeds_v, mode_v, models_v, image_v, state_v):
        try:
            spec = spec_from(prompts_v, budgets_v, seeds_v, mode_v, models_v, image_v)
        except StudioError as exc:
            yield f"**{exc}**", gr.update()
            return
        with cancel_scope(state_v) as event:
            for ev in sweep_run.run_events(studio, spec, event, source="ui"):
                if ev["type"] == "error":
                    yield f"**{ev['message']}**", gr.update()
                elif ev["type"] == "sweep":
                    yield f"Sweep {ev['id']}: {ev['items']} renders queued.", gr.update()
                elif ev["type"] in ("render", "render_failed"):
                    yield (f"{ev.get('done', '?')} of {ev.get('total', '?')} rendered" if ev["type"] == "render"
                           else f"A render failed: {ev['message']}"), gr.update()
                elif ev["type"] == "report":
                    yield f"Sweep {ev['id']}: {ev['status']}.", gr.update(choices=_choices(studio), value=ev["id"])

    def write(sid):
        if not sid:
            return "Pick a sweep first."
        try:
            done = sweep_run.policies(studio, sid, write=True)
        except StudioError as exc:
            return f"**{exc}**"
        return f"Written to {done['written']} (source: sweep {sid})."

    run_btn.click(run, [prompts, budgets, seeds, mode, models, image, state], [status, picker],
                  api_visibility="private")
    stop_btn.click(lambda s: "Cancelling..." if cancel(s) else "No sweep is running.", state, status,
                   api_visibility="private")
    picker.change(lambda sid: show(studio, sid), picker, outputs, api_visibility="private")
    refresh_btn.click(lambda sid: (gr.update(choices=_choices(studio)), *show(studio, sid)), picker,
                      [picker, *outputs], api_visibility="private")
    write_btn.click(write, picker, write_note, api_visibility="private")
    return {"refresh": lambda: gr.update(choices=_choices(studio)), "picker": picker, "review": review}
