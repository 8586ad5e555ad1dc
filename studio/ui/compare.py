"""The Compare tab: one prompt and seed at 2-4 step budgets, side by side, with a seconds-vs-steps plot."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import gradio as gr

from ..errors import InvalidRequest, StudioError
from ..engine.render import Plan, RenderRequest
from . import charts
from . import format as fmt
from . import header
from .session import cancel, drive, friendly_error

BUDGET_CHOICES = [1, 2, 4, 8, 16, 32, 64]
DEFAULT_BUDGETS = [2, 4, 8, 16]
SLOTS = 4


def parse_budgets(values) -> list[int]:
    budgets = sorted({int(v) for v in values or []})
    if not 2 <= len(budgets) <= SLOTS:
        raise InvalidRequest({"budgets": f"pick 2 to {SLOTS} step budgets (you picked {len(budgets)})"})
    return budgets


def drop_reason(notes: list[str]) -> str | None:
    """The engine's note saying why budgets were capped ("... caps step budgets at 16: [..] -> [..]."), if any."""
    return next((n for n in notes if "->" in n and "cap" in n.lower()), None)


def dropped_slots(chosen: list[int], rendered: dict[int, int], notes: list[str]) -> dict[int, str]:
    """Labels for the slots a step cap dropped, by slot. A cap lowers every budget above it to the cap and merges
    the budgets that then repeat, so the slots after the last rendered one never come. ``rendered``: slot ->
    steps of the results that came; nothing rendered (a failure) drops nothing."""
    if not rendered or len(rendered) == len(chosen):
        return {}
    cap = max(rendered.values())
    return {i: f"{fmt.steps_word(b)} · dropped: capped at {cap}" for i, b in enumerate(chosen) if i not in rendered}


def teacher_of(studio, model_id: str | None) -> str:
    """The model the picked one was distilled from, if the registry names one that exists ('' otherwise)."""
    try:
        spec = studio.registry.get(model_id or studio.settings.default_model)
        return spec.teacher if spec.teacher and studio.registry.get(spec.teacher) else ""
    except StudioError:
        return ""


def teacher_box(studio, model_id: str | None, keep: bool = False, **kwargs) -> gr.Checkbox:
    """The "also before distillation" box: shown for models with a teacher; ``keep`` keeps it ticked."""
    teacher = teacher_of(studio, model_id)
    return gr.Checkbox(visible=bool(teacher), value=bool(keep and teacher),
                       label=f"Also before distillation ({teacher}, same budgets and seed)" if teacher else "",
                       **kwargs)


def build(studio, model: gr.Dropdown, session: gr.State, top_tabs: gr.Tabs, create, model_info=None) -> dict:
    gr.Markdown("Render one prompt (text to video, with the model picked above) and one seed at several step "
                "budgets, and see what extra steps buy. The videos play in sync; pick the budget you like and send "
                "it to **Create**. LoRAs picked in Create apply here too.", elem_classes=["hint"])
    c = _controls(studio)
    _video_rows(c)
    c.model, c.model_info = model, model_info
    outputs = [*c.videos, *c.use_buttons, c.plot, c.status, c.seed, c.slot_steps, c.run_btn, c.stop_btn, c.sync_btn,
               c.progress_bar, c.teacher_title, *c.teacher_videos, model] + ([model_info] if model_info is not None else [])
    # the header refreshes the picker after a compare (load state); a ticked box stays ticked when the teacher exists
    model.change(lambda m, v: teacher_box(studio, m, keep=v), [model, c.before], c.before, api_visibility="private",
                 queue=False)

    def on_budgets(values):
        chosen = sorted({int(v) for v in values or []})[:SLOTS]
        return [gr.Video(label=fmt.steps_word(chosen[i]) if i < len(chosen) else "—", visible=i < max(len(chosen), 2))
                for i in range(SLOTS)]

    c.budgets.change(on_budgets, c.budgets, c.videos, api_visibility="private", queue=False)

    def on_compare(model_v, prompt_v, budgets_v, seed_v, random_v, before_v, session_v, loras_v=None,
                   progress=gr.Progress()):
        yield from _compare(studio, c, model_v, prompt_v, budgets_v, seed_v, random_v, before_v, session_v, loras_v,
                            progress)

    c.run_btn.click(on_compare, [model, c.prompt, c.budgets, c.seed, c.random_seed, c.before, session,
                                 create.loras.value], outputs,
                    api_name="compare_budgets",
                    concurrency_id="render", show_progress="minimal", show_progress_on=[c.progress_bar])
    c.stop_btn.click(lambda s: "■ Cancelling…" if cancel(s) else gr.skip(), session, c.status, queue=False,
                     api_visibility="private")
    c.sync_btn.click(None, None, None, js="() => window.studioPlayCompare && window.studioPlayCompare()")
    _wire_use_buttons(c, create, top_tabs)
    return {"prompt": c.prompt, "videos": c.videos, "plot": c.plot, "status": c.status}


def _controls(studio) -> SimpleNamespace:
    """The prompt, budgets, seed and buttons (left), the plot and status (right)."""
    c = SimpleNamespace()
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            c.prompt = gr.Textbox(label="Prompt", lines=2, elem_id="compare-prompt",
                                  value="a red circle moving left on a black background")
            c.budgets = gr.CheckboxGroup(BUDGET_CHOICES, value=DEFAULT_BUDGETS, label="Step budgets (pick 2 to 4)",
                                         elem_id="compare-budgets")
            with gr.Row():
                c.seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", min_width=100)
                c.random_seed = gr.Checkbox(value=True, label="New seed", min_width=100)
            c.before = teacher_box(studio, studio.settings.default_model, elem_id="compare-teacher")
            with gr.Row():
                c.run_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn", scale=3)
                c.stop_btn = gr.Button("Cancel", variant="stop", interactive=False, scale=1)
        with gr.Column(scale=3, min_width=260):
            c.plot = gr.HTML(charts.seconds_chart([]), elem_id="compare-plot", padding=False)
            c.progress_bar = gr.HTML("", elem_id="compare-progress", padding=False)
            c.status = gr.Markdown("Pick budgets and press **Compare**. The plot shows render seconds per budget "
                                   "(model loading not counted).", elem_id="compare-status")
            c.sync_btn = gr.Button("▶ Play all from the start", size="sm", elem_id="compare-sync", visible=False)
    return c


def _video_rows(c: SimpleNamespace) -> None:
    """One video per budget (with "Use this budget"), and the teacher's row below it."""
    c.videos, c.use_buttons = [], []
    with gr.Row(elem_id="compare-videos", equal_height=True):
        for i in range(SLOTS):
            with gr.Column(min_width=160):
                c.videos.append(gr.Video(label=fmt.steps_word(DEFAULT_BUDGETS[i]), interactive=False, loop=True,
                                         height=240,
                                         elem_classes=["pixelated", "compare-video"], elem_id=f"compare-video-{i}"))
                c.use_buttons.append(gr.Button("Use this budget", size="sm", visible=False,
                                               elem_id=f"compare-use-{i}"))
    c.teacher_title = gr.Markdown("", visible=False, elem_id="compare-teacher-title")
    c.teacher_videos = []
    with gr.Row(elem_id="compare-teacher-videos", equal_height=True):
        for i in range(SLOTS):
            with gr.Column(min_width=160):
                c.teacher_videos.append(gr.Video(label="—", interactive=False, loop=True, height=240, visible=False,
                                                 elem_classes=["pixelated", "compare-video"],
                                                 elem_id=f"compare-teacher-video-{i}"))
    c.slot_steps = gr.State([])


def _compare(studio, c, model_v, prompt_v, budgets_v, seed_v, random_v, before_v, session_v, loras_v, progress):
    """The Compare button: validate, clear the slots, render each row (the model's, then its teacher's)."""
    idle = {c.run_btn: gr.Button(interactive=True), c.stop_btn: gr.Button(interactive=False)}
    try:
        chosen = parse_budgets(budgets_v)
        req = RenderRequest(prompt=prompt_v or "", mode="t2v", model=model_v or None,
                            seed=None if random_v or seed_v in (None, "") else int(seed_v), steps=chosen[-1],
                            loras=tuple(loras_v or ()))  # Create's LoRA picker
        req, _ = studio.engine.validate(req)
    except StudioError as exc:
        message = friendly_error(exc)
        gr.Warning(message)
        yield {c.status: f"⚠ {message}", **idle}
        return
    plan = Plan.compare(chosen)  # budgets already sorted ascending
    teacher = teacher_of(studio, req.model) if before_v else ""
    yield _cleared(c, req, chosen, teacher)
    done, stopped = [], False
    rows = [(req, c.videos, True)]
    if teacher:
        rows.append((replace(req, model=teacher), c.teacher_videos, False))
    for row_req, slots, main in rows:
        stopped = yield from _render_row(studio, c, req.seed, row_req, plan, chosen, slots, main, done, session_v,
                                         progress)
        if stopped:
            break
    if teacher and not stopped:
        yield {c.status: " · ".join(
            f"{m}: {fmt.plan_summary([d for d in done if d['model'] == m])}" for m in (req.model, teacher))}
    dd, card = header.refresh(studio, model_v)  # both models may have loaded: the picker shows it
    yield {**idle, c.progress_bar: "", c.model: dd, **({c.model_info: card} if c.model_info is not None else {})}


def _cleared(c, req, chosen: list[int], teacher: str) -> dict:
    """Every slot waiting (or hidden), the teacher's title, the plot empty, the buttons busy."""
    clear = {c.teacher_title: gr.Markdown(
        f"**Before distillation:** `{teacher}` (the teacher it was distilled from), same seed and budgets",
        visible=bool(teacher))}
    for i in range(SLOTS):
        label = f"{fmt.steps_word(chosen[i])} · waiting" if i < len(chosen) else "—"
        clear[c.videos[i]] = gr.Video(value=None, label=label, visible=i < len(chosen))
        clear[c.use_buttons[i]] = gr.Button(visible=False)
        clear[c.teacher_videos[i]] = gr.Video(value=None, label=label, visible=bool(teacher) and i < len(chosen))
    return {**clear, c.plot: charts.seconds_chart([]), c.seed: req.seed, c.slot_steps: list(chosen),
            c.status: f"… Seed {req.seed} · budgets {', '.join(map(str, chosen))}…",
            c.run_btn: gr.Button(interactive=False), c.stop_btn: gr.Button(interactive=True)}


def _render_row(studio, c, seed, row_req, plan, chosen, slots, main: bool, done: list, session_v, progress):
    """Render one row's budgets into its slots (``done`` gathers each result's seconds); returns True if it
    stopped (failed or cancelled)."""
    stopped, rendered, notes = False, {}, []
    for up in drive(studio, row_req, plan, session_v, progress):
        if up.kind in ("status", "progress"):
            yield {c.status: f"… {'' if main else row_req.model + ': '}{up.text} · {fmt.seconds(up.elapsed)}"}
        elif up.kind == "result":
            r = up.result
            secs = fmt.render_seconds(r.timings)
            done.append({"steps": r.steps, "seconds": secs, "model": row_req.model})
            i = r.budget_index
            rendered[i] = r.steps
            notes += r.notes
            label = f"{fmt.steps_word(r.steps)} · {fmt.seconds(secs)}"
            update = {slots[i]: gr.Video(value=r.video_path, label=label),
                      c.sync_btn: gr.Button(visible=True), c.plot: charts.seconds_chart(done),
                      c.status: f"Seed {seed} · {fmt.plan_summary([d for d in done if d['model'] == row_req.model])}"}
            if main:
                update[c.use_buttons[i]] = gr.Button(value=f"Use {fmt.steps_word(r.steps)}", visible=True)
            yield update
        elif up.kind == "failed":
            gr.Warning(up.text)
            stopped = True
            yield {c.status: f"⚠ {up.text}"}
        elif up.kind == "cancelled":
            stopped = True
            yield {c.status: f"■ {up.text}"}
    if stopped:
        return True
    dropped = dropped_slots(chosen, rendered, notes)
    if dropped:  # the cap merged these budgets into a lower one: say so instead of "waiting"
        summary = fmt.plan_summary([d for d in done if d["model"] == row_req.model])
        why = drop_reason(notes) or "Budgets above the cap were dropped."
        yield {**{slots[i]: gr.Video(value=None, label=label) for i, label in dropped.items()},
               c.status: f"Seed {seed} · {summary}  \n{why}"}
    return False


def _wire_use_buttons(c, create, top_tabs) -> None:
    def use_budget(steps_list, prompt_v, seed_v, i):
        """Send this budget (with the same prompt and seed) to the Create tab's text-to-video controls."""
        if i >= len(steps_list):
            return (gr.skip(),) * 7
        gr.Info(f"Create is set to {fmt.steps_word(steps_list[i])}, same prompt, seed {int(seed_v)} locked.")
        return (steps_list[i], prompt_v, int(seed_v), False, "t2v", gr.Tabs(selected="t2v"),
                gr.Tabs(selected="create"))

    use_outputs = [create.steps, create.prompt, create.seed, create.random_seed, create.mode, create.mode_tabs,
                   top_tabs]
    for i, btn in enumerate(c.use_buttons):
        btn.click(lambda s, p, sd, i=i: use_budget(s, p, sd, i), [c.slot_steps, c.prompt, c.seed], use_outputs,
                  api_name=f"use_budget_{i}", queue=False)
