"""The Create tab: T2V / I2V / V2V sub-tabs sharing one control set, streamed preview-then-refine, Cancel.

Reading order: pure helpers (tested without a browser), ``layout`` (creates the components, held in
``CreateControls``), ``CreateTab`` (the handlers, as methods, and ``wire``), and ``build``: layout, then wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from ..engine import judge, media
from ..config import ASSETS_DIR
from ..errors import StudioError
from ..engine.render import Plan, RenderRequest
from . import format as fmt
from . import extend_action, header, lora_picker, restore_file
from .session import cancel, drive, friendly_error
from .size_controls import size_controls

EXAMPLES_DIR = ASSETS_DIR / "examples"
EXAMPLE_VIDEO = EXAMPLES_DIR / "blue_square_moving_right.mp4"
T2V_EXAMPLES = [
    "a red circle moving left on a black background",
    "a yellow triangle moving up on a gray background",
    "a green square moving right on a white background",
]
# The first frames sit where a clip of their caption starts (the embedded model reads the direction partly from
# there): 12 of 12 seeds right at 2-16 steps, against 6 of 12 for "down" from a centred circle.
I2V_EXAMPLES = [["a red circle moving right on a black background", str(EXAMPLES_DIR / "red_circle_start_left.png")],
                ["a red circle moving down on a black background", str(EXAMPLES_DIR / "red_circle_start_top.png")]]
V2V_EXAMPLES = [["a blue square moving right on a white background", str(EXAMPLE_VIDEO)]]
MAX_CONTEXT_THUMBS = 6
MODES = ("t2v", "i2v", "v2v")
SHAPES_HINT = "Describe the shot: colour, shape, direction and background work best."
MODEL_HINT = "Describe the shot: the subject, what it does, the setting, the camera and the light."
IDLE_STATUS = "Ready. Write a prompt and press **Render** — a quick preview appears first, then the refined video."


@dataclass
class CreateControls:
    """Every component of the tab. Compare and History fill some of them in (a budget to use, a re-run)."""

    mode: gr.Radio
    mode_tabs: gr.Tabs
    prompt: gr.Textbox
    negative: gr.Textbox
    image: gr.Image
    video: gr.Video
    steps: gr.Slider
    seed: gr.Number
    random_seed: gr.Checkbox
    resolution: gr.Dropdown
    frames: gr.Dropdown
    refine: gr.Checkbox
    preview_steps: gr.Slider
    render_btn: gr.Button
    cancel_btn: gr.Button
    output: gr.Video
    status: gr.Markdown
    details: gr.Markdown
    info: gr.JSON
    notes: dict
    switches: dict
    context_md: gr.Markdown
    context_gallery: gr.Gallery
    pending_size: gr.State
    # used inside the tab only
    tabs: dict  # mode -> its gr.Tab
    budget: gr.Dropdown
    live: gr.Image
    progress_bar: gr.HTML
    star_btn: gr.Button
    shown_model: gr.State  # the model the size controls were made for
    t2v_hint: gr.Markdown  # the embedded model's prompt hints, or a real model's
    world_examples: list  # the shapes-world examples (one column per mode tab): only with a model that draws them
    loras: lora_picker.LoraPicker
    restore: gr.File
    extend: extend_action.ExtendControls  # continue the result by N frames
    # made outside the tab
    model: gr.Dropdown
    model_info: gr.Markdown
    session: gr.State


# ---- pure helpers (tested without a browser) ------------------------------------------
CUSTOM = "custom"


def policy_choices(studio) -> list[tuple[str, str]]:
    return [(f"{p.name} · {fmt.steps_word(p.steps)}", p.name) for p in studio.policies.policies.values()] + [
        ("custom (slider)", CUSTOM)]


def policy_steps(studio, name):
    """The step count a policy sets on the slider (None for custom or an unknown name)."""
    policy = studio.policies.policies.get(name)
    return policy.steps if policy else None


def policy_for_steps(studio, name, steps):
    """The picker's value after the slider moved: kept if it still matches, else a policy of that
    many steps, else custom."""
    steps = int(steps or 0)
    if policy_steps(studio, name) == steps:
        return gr.skip()
    match = next((p.name for p in studio.policies.policies.values() if p.steps == steps), CUSTOM)
    return match if match != name else gr.skip()


def chosen_policy(studio, name, steps) -> str | None:
    """The policy a render records: the picked one if the slider still shows its steps, else None (custom)."""
    return name if name and name != CUSTOM and policy_steps(studio, name) == int(steps) else None


def build_request(mode, model, prompt, negative, image, video, steps, seed, random_seed, resolution, frames,
                  loras=()) -> RenderRequest:
    width, height = fmt.parse_resolution(resolution)
    use_seed = None if random_seed or seed in (None, "") else int(seed)
    return RenderRequest(
        prompt=prompt or "", mode=mode or "t2v", negative_prompt=negative or "",
        image=(image or None) if mode == "i2v" else None, video=(video or None) if mode == "v2v" else None,
        seed=use_seed, steps=int(steps), height=height, width=width,
        frames=int(frames) if frames not in (None, "") else None, model=model or None, loras=tuple(loras or ()),
    )


def mode_notes(studio, model_id: str) -> list:
    """For each mode tab: a notice (shown when the model can't serve it) and a 'switch model' button."""
    out_notes, out_buttons = [], []
    try:
        spec = studio.registry.get(model_id)
    except StudioError:
        spec = None
    rows = header.rows_by_id(studio)
    for mode in MODES:
        if spec is None or spec.serves(mode):
            out_notes.append(gr.Markdown(value="", visible=False))
            out_buttons.append(gr.Button(visible=False))
            continue
        others = studio.registry.serving(mode)
        others.sort(key=lambda s: (not rows[s.id]["available"], s.memory_gb))
        out_notes.append(gr.Markdown(value=fmt.not_served_note(mode, spec, others), visible=True))
        if others:
            out_buttons.append(gr.Button(value=f"Switch to {others[0].title or others[0].id}", visible=True))
        else:
            out_buttons.append(gr.Button(visible=False))
    return out_notes + out_buttons


def draws_shapes(studio, model_id) -> bool:
    try:
        return judge.speaks_shapes(studio.registry.get(model_id or studio.settings.default_model))
    except StudioError:
        return False


def hint_updates(studio, model_id) -> list:
    """The T2V hint and the shapes-world examples for the picked model: the shapes hints only where they apply."""
    shapes = draws_shapes(studio, model_id)
    return [SHAPES_HINT if shapes else MODEL_HINT] + [gr.Column(visible=shapes) for _ in MODES]


def off_world(studio, request: dict, frames) -> str | None:
    """A render by the embedded model of a prompt outside its shapes world: what it drew instead (else None)."""
    if frames is None or not len(frames) or not draws_shapes(studio, request.get("model")):
        return None
    return judge.off_world_note(request.get("prompt") or "", frames)


def switch_target(studio, mode: str) -> str | None:
    rows = header.rows_by_id(studio)
    others = sorted(studio.registry.serving(mode), key=lambda s: (not rows[s.id]["available"], s.memory_gb))
    return others[0].id if others else None


def context_preview(studio, video, model_id, frames, resolution):
    """What a V2V render will keep from the uploaded video, shown before rendering."""
    hidden = gr.Gallery(value=None, visible=False)
    if not video:
        return ("Upload a clip (or pick the example below). The studio keeps its first frames as context "
                "and continues the motion.", hidden)
    try:
        spec = studio.registry.get(model_id)
        if not spec.serves("v2v"):
            return "", hidden
        total = int(frames) if frames else spec.frames
        width, height = fmt.parse_resolution(resolution)
        width, height = width or spec.width, height or spec.height
        # Only what a render could keep: at most `total` frames, already at the model's fps and size
        # (the same bounded decode the engine uses, so a 4K or hours-long clip costs no more).
        clip = media.read_clip(video, width, height, spec.fps, max_frames=total)
        req = RenderRequest(prompt="-", mode="v2v", model=spec.id, frames=total, video=str(video))
        keep = studio.engine.context_frames_for(req, len(clip))
    except StudioError as exc:
        return f"⚠ {exc}", hidden
    if keep == 0:
        return (f"⚠ This clip is too short to continue: {len(clip)} frame(s) at {spec.fps} fps. "
                f"A {total}-frame render needs at least 1 context frame plus room to continue.", hidden)
    step = max(1, -(-keep // MAX_CONTEXT_THUMBS))
    shown = list(range(0, keep, step))
    if shown[-1] != keep - 1:
        shown.append(keep - 1)
    thumbs = [(clip[i], f"frame {i + 1}") for i in shown]
    text = (f"**Context:** the clip's first **{keep}** frames (read at {spec.fps} fps, "
            f"cropped to {width}×{height}); the model continues them to {total} frames, "
            f"{total - keep} new.")
    return text, gr.Gallery(value=thumbs, visible=True)


# ---- layout --------------------------------------------------------------------------------
def layout(studio, model: gr.Dropdown, model_info: gr.Markdown, session: gr.State) -> CreateControls:
    """The tab's components: the mode tabs and render settings (left), the result (right)."""
    spec = studio.registry.get(studio.settings.default_model)
    # made first and placed later: the examples inside the mode tabs fill them in
    prompt = gr.Textbox(label="Prompt", lines=3, max_lines=8, render=False, elem_id="prompt",
                        placeholder="e.g. a red circle moving left on a black background")
    image = gr.Image(label="First frame", type="filepath", sources=["upload", "clipboard"], height=220,
                     render=False, elem_id="i2v-image")
    video = gr.Video(label="Clip to continue", sources=["upload"], height=220, render=False, elem_id="v2v-video")
    mode = gr.Radio(choices=list(MODES), value="t2v", visible=False, label="mode", elem_id="mode")

    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=360):
            left = _mode_tabs(studio, spec, prompt, image, video)
            prompt.render()
            left.update(_settings(studio, spec))
        with gr.Column(scale=6, min_width=360):
            right = _result_column()
    pending_size = gr.State(None)  # set by History's re-run: the size to keep when the model changes
    shown_model = gr.State(spec.id)  # the model the size controls were made for
    return CreateControls(mode=mode, prompt=prompt, image=image, video=video, pending_size=pending_size,
                          shown_model=shown_model, model=model, model_info=model_info, session=session,
                          **left, **right)


def _mode_tabs(studio, spec, prompt, image, video) -> dict:
    """One tab per mode, each with its not-served notice, its switch-model button and its examples."""
    notes, switches, tabs = {}, {}, {}
    with gr.Tabs(selected="t2v", elem_id="mode-tabs") as mode_tabs:
        with gr.Tab("Text → Video", id="t2v", elem_id="tab-t2v") as tabs["t2v"]:
            notes["t2v"] = gr.Markdown(visible=False, elem_classes=["mode-note"])
            switches["t2v"] = gr.Button(visible=False, size="sm")
            shapes = judge.speaks_shapes(spec)
            t2v_hint = gr.Markdown(SHAPES_HINT if shapes else MODEL_HINT, elem_classes=["hint"], elem_id="t2v-hint")
            world = [gr.Column(visible=shapes, elem_id="t2v-examples")]
            with world[0]:
                gr.Examples(T2V_EXAMPLES, inputs=[prompt], label="Try a prompt")
        with gr.Tab("Image → Video", id="i2v", elem_id="tab-i2v") as tabs["i2v"]:
            notes["i2v"] = gr.Markdown(visible=False, elem_classes=["mode-note"])
            switches["i2v"] = gr.Button(visible=False, size="sm")
            image.render()
            gr.Markdown("The image becomes the first frame (centre-cropped to the render size); "
                        "the prompt says how it moves.", elem_classes=["hint"])
            world.append(gr.Column(visible=shapes, elem_id="i2v-examples"))
            with world[-1]:
                gr.Examples(I2V_EXAMPLES, inputs=[prompt, image], label="Try an example")
        with gr.Tab("Video → Video", id="v2v", elem_id="tab-v2v") as tabs["v2v"]:
            notes["v2v"] = gr.Markdown(visible=False, elem_classes=["mode-note"])
            switches["v2v"] = gr.Button(visible=False, size="sm")
            video.render()
            context_md = gr.Markdown(context_preview(studio, None, spec.id, spec.frames, None)[0],
                                     elem_id="context-note")
            context_gallery = gr.Gallery(label="Context frames", show_label=False, visible=False,
                                         columns=MAX_CONTEXT_THUMBS, height=130, object_fit="contain",
                                         allow_preview=False, fit_columns=False,
                                         elem_id="context-frames", elem_classes=["pixelated"])
            world.append(gr.Column(visible=shapes, elem_id="v2v-examples"))
            with world[-1]:
                gr.Examples(V2V_EXAMPLES, inputs=[prompt, video], label="Try an example")
    return {"mode_tabs": mode_tabs, "tabs": tabs, "notes": notes, "switches": switches, "context_md": context_md,
            "context_gallery": context_gallery, "t2v_hint": t2v_hint, "world_examples": world}


def _settings(studio, spec) -> dict:
    """Render and Cancel, then the budget, seed, size and advanced settings."""
    c = {}
    res_choices = fmt.resolution_choices(spec)
    with gr.Row():
        c["render_btn"] = gr.Button("Render", variant="primary", size="lg", elem_id="render-btn", scale=3)
        c["cancel_btn"] = gr.Button("Cancel", variant="stop", size="lg", interactive=False,
                                    elem_id="cancel-btn", scale=1)
    with gr.Row(equal_height=True):
        c["budget"] = gr.Dropdown(policy_choices(studio), value=CUSTOM, label="Budget policy", scale=1,
                                  min_width=150, elem_id="budget-policy",
                                  info="Named step budgets; custom = the slider")
        c["steps"] = gr.Slider(1, 64, value=8, step=1, label="Steps", scale=2,
                               info="More steps: more detail, more time. Any count works.", elem_id="steps")
    with gr.Row():
        c["refine"] = gr.Checkbox(value=True, label="Preview first", scale=1, min_width=140,
                                  info="Quick low-step render, then the full one (same seed)")
        c["preview_steps"] = gr.Slider(1, 16, value=2, step=1, label="Preview steps", scale=2)
    with gr.Row():
        c["seed"] = gr.Number(value=0, precision=0, minimum=0, label="Seed", scale=2, min_width=120)
        c["random_seed"] = gr.Checkbox(value=True, label="New seed each render", scale=1, min_width=140,
                                       info="Untick to lock the seed")
    with gr.Row():
        c["resolution"] = gr.Dropdown(choices=res_choices, value=res_choices[0][1], label="Resolution")
        c["frames"] = gr.Dropdown(choices=fmt.frame_choices(spec), value=spec.frames, label="Length")
    with gr.Accordion("Advanced", open=False):
        c["negative"] = gr.Textbox(label="Negative prompt", lines=2, placeholder="what to avoid, e.g. blurry, flicker")
    c["loras"] = lora_picker.build(studio)
    c["restore"] = restore_file.build()
    return c


def _result_column() -> dict:
    c = {}
    c["output"] = gr.Video(label="Result", interactive=False, autoplay=True, loop=True, height=420,
                           elem_id="result-video", elem_classes=["pixelated"], buttons=["download"])
    c["live"] = gr.Image(label="Live", interactive=False, visible=False, height=110, elem_id="live-strip",
                         elem_classes=["pixelated"], buttons=[], show_label=True)
    c["progress_bar"] = gr.HTML("", elem_id="render-progress", padding=False)
    c["status"] = gr.Markdown(IDLE_STATUS, elem_id="render-status")
    c["details"] = gr.Markdown("", elem_id="render-details")
    c["star_btn"] = gr.Button("★ Star this render", size="sm", visible=False, elem_id="star-current")
    c["extend"] = extend_action.build("create")
    c["info"] = gr.JSON(visible=False, label="last result")
    return c


# ---- events --------------------------------------------------------------------------------
@dataclass
class RenderRun:
    """One press of Render: the request and plan, and the status lines built up as its budgets finish."""

    req: RenderRequest
    plan: Plan
    lead: str  # seed, size, budgets, policy, notes: the status's last line
    finished: list = field(default_factory=list)  # steps and seconds of each finished budget
    done_lines: list = field(default_factory=list)
    live_budget: int | None = None  # the budget whose frames the live strip shows

    def status_text(self, current: str) -> str:
        return "  \n".join([current, *self.done_lines, self.lead])


class CreateTab:
    """The tab's event handlers, as methods over the studio and the components ``c``; ``wire`` connects them."""

    def __init__(self, studio, c: CreateControls):
        self.studio = studio
        self.c = c

    def on_model(self, model_id, pending, shown, res_v, frames_v):
        """New model: native size (or the size a History re-run asked for). Same model (labels refreshed): keep."""
        if pending and pending.get("model") == model_id:
            keep = pending
        elif model_id == shown:
            keep = {"resolution": res_v, "frames": frames_v}
        else:
            keep = {}
        studio = self.studio
        return (header.card(studio, model_id), *size_controls(studio, model_id, keep.get("resolution"), keep.get("frames")),
                *mode_notes(studio, model_id), None, model_id, *hint_updates(studio, model_id))

    def request(self, mode_v, model_v, prompt_v, negative_v, image_v, video_v, steps_v, seed_v, random_v, res_v,
                frames_v, policy_v, loras_v=()):
        """The validated request, the policy it records (None: custom) and the engine's notes on it."""
        req = build_request(mode_v, model_v, prompt_v, negative_v, image_v, video_v, steps_v, seed_v, random_v,
                            res_v, frames_v, loras_v)
        policy = chosen_policy(self.studio, policy_v, req.steps)  # None: custom (the slider's steps)
        if policy is not None:  # its steps, and its size/length where it sets them
            req = self.studio.policies.get(policy).apply(req)
        req, notes_v = self.studio.engine.validate(req)
        return req, policy, notes_v

    def on_render(self, mode_v, model_v, prompt_v, negative_v, image_v, video_v, steps_v, seed_v, random_v, res_v,
                  frames_v, refine_v, preview_v, policy_v, session_v, loras_v=None, progress=gr.Progress()):
        c = self.c
        idle = {c.render_btn: gr.Button(interactive=True), c.cancel_btn: gr.Button(interactive=False)}
        try:
            req, policy, notes_v = self.request(mode_v, model_v, prompt_v, negative_v, image_v, video_v, steps_v,
                                                seed_v, random_v, res_v, frames_v, policy_v, loras_v)
        except StudioError as exc:
            message = friendly_error(exc)
            gr.Warning(message)
            yield {c.status: f"⚠ {message}", **idle}
            return
        plan = Plan.refine(int(preview_v), req.steps) if refine_v else Plan.single(req.steps)
        budgets = " then ".join(fmt.steps_word(b) for b in plan.budgets)
        lead = f"Seed {req.seed} · {req.width}×{req.height}, {req.frames} frames · {budgets}"
        if policy is not None:
            lead += f" · policy **{policy}**"
        if notes_v:
            lead += "  \n" + "; ".join(notes_v)
        yield {c.status: f"… Starting: {lead}", c.seed: req.seed, c.info: None, c.details: "",
               c.star_btn: gr.Button(visible=False), c.output: gr.Video(value=None, label="Result"),
               c.render_btn: gr.Button(interactive=False), c.cancel_btn: gr.Button(interactive=True)}
        run = RenderRun(req, plan, lead)
        for up in drive(self.studio, req, plan, session_v, progress, live=True, policy=policy):
            update = self.update(run, up)
            if update is not None:
                yield update
        dd, card = header.refresh(self.studio, model_v)  # the picker's labels show the load state
        yield {**idle, c.model_info: card, c.model: dd, c.progress_bar: "", c.live: gr.Image(visible=False)}

    def update(self, run: RenderRun, up) -> dict | None:
        """The components one Update from ``drive`` changes."""
        c = self.c
        if up.kind == "live":
            run.live_budget = up.extra.get("budget_index")
            return {c.live: gr.Image(value=fmt.strip(up.extra["frames"]), label=up.text, visible=True)}
        if up.kind in ("progress", "status"):
            update = {c.status: run.status_text(f"… {up.text} · {fmt.seconds(up.elapsed)}")}
            budget = up.extra.get("budget_index")
            if run.live_budget is not None and budget is not None and budget != run.live_budget:
                run.live_budget = None  # the strip showed the preview's frames: not this budget's, so hide it
                update[c.live] = gr.Image(visible=False)
            return update
        if up.kind == "result":
            return self.result_update(run, up)
        if up.kind == "failed":
            gr.Warning(up.text)
            return {c.status: run.status_text(f"⚠ {up.text}")}
        if up.kind == "cancelled":
            return {c.status: run.status_text(f"■ {up.text}")}
        return None

    def result_update(self, run: RenderRun, up) -> dict:
        """A finished budget: its video, what it took, and (after the preview) that refining goes on."""
        c, r, req = self.c, up.result, run.req
        secs = fmt.render_seconds(r.timings)
        run.finished.append({"steps": r.steps, "seconds": secs})
        result_info = {"role": r.role, "steps": r.steps, "seconds": secs, "elapsed": round(up.elapsed, 3),
                       "record_id": r.record_id, "video": r.video_path, "seed": req.seed, "model": req.model,
                       "mode": req.mode}
        label = fmt.result_label(r.role, r.steps, r.timings)
        row = self.studio.history.get(r.record_id) or {}
        if row.get("capped"):  # a queue or Space cap lowered this budget: say so on the render
            label += f" · capped from {row.get('requested_steps')}"
        new_notes = [n for n in r.notes if n not in run.lead]
        if new_notes:
            run.lead += "  \n⚠ " + " ".join(new_notes)
        more = r.role == "preview"
        if more:
            run.done_lines.append(f"▶ Preview ({fmt.steps_word(r.steps)}) shown {fmt.seconds(up.elapsed)} "
                                  "after you pressed Render")
            current = f"… Refining at {fmt.steps_word(run.plan.budgets[-1])}…"
        else:
            current = f"✓ Done in {fmt.seconds(up.elapsed)}."
        load = r.timings.get("load") if r.budget_index == 0 else None
        det = fmt.plan_summary(run.finished) + (f" · model load {fmt.seconds(load)}" if load else "")
        det += f"  \nSaved to History as `{r.record_id}`."
        if not more and (world := off_world(self.studio, r.request or {}, r.frames)):
            det += f"  \n⚠ {world}"
        return {c.output: gr.Video(value=r.video_path, label=label), c.status: run.status_text(current),
                c.details: det, c.info: result_info, c.star_btn: gr.Button(visible=not more, value="★ Star this render")}

    def on_cancel(self, session_v):
        if cancel(session_v):
            return "■ Cancelling… the render stops after the current step."
        return gr.skip()

    def on_star(self, result_info):
        if not result_info or not result_info.get("record_id"):
            return gr.skip()
        self.studio.history.set_accepted(result_info["record_id"], True)
        gr.Info("Starred. Find it in History under ‘Starred only’.")
        return gr.Button(value="★ Starred")

    # ---- wiring --------------------------------------------------------------------------------
    def wire(self) -> None:
        """Connect every event (the order fixes the app's event list)."""
        self._wire_settings()
        c = self.c
        outputs = [c.output, c.status, c.seed, c.details, c.info, c.render_btn, c.cancel_btn, c.model_info, c.star_btn,
                   c.model, c.progress_bar, c.live]
        render_inputs = [c.mode, c.model, c.prompt, c.negative, c.image, c.video, c.steps, c.seed, c.random_seed,
                         c.resolution, c.frames, c.refine, c.preview_steps, c.budget, c.session, c.loras.value]
        c.render_btn.click(self.on_render, render_inputs, outputs, api_name="render", concurrency_id="render",
                           concurrency_limit=1, show_progress="minimal", show_progress_on=[c.progress_bar])
        c.prompt.submit(self.on_render, render_inputs, outputs, api_visibility="private", concurrency_id="render",
                        show_progress="minimal", show_progress_on=[c.progress_bar])
        c.cancel_btn.click(self.on_cancel, c.session, c.status, api_name="cancel", queue=False)
        c.star_btn.click(self.on_star, c.info, c.star_btn, api_visibility="private")
        restore_file.wire(self.studio, c, c.restore)
        extend_action.wire_create(self.studio, c, c.extend)

    def _wire_settings(self) -> None:
        """Mode tabs, model picker, V2V context, budget policy and preview switch: quick, unqueued updates."""
        studio, c = self.studio, self.c
        for name in MODES:  # the mode tabs drive the hidden mode input
            c.tabs[name].select(lambda n=name: n, None, c.mode, api_visibility="private", queue=False)
        note_outputs = [c.notes[m] for m in MODES] + [c.switches[m] for m in MODES]
        c.model.change(self.on_model, [c.model, c.pending_size, c.shown_model, c.resolution, c.frames],
                       [c.model_info, c.resolution, c.frames, *note_outputs, c.pending_size, c.shown_model, c.t2v_hint,
                        *c.world_examples],
                       api_visibility="private", queue=False)
        for name in MODES:
            c.switches[name].click(lambda n=name: switch_target(studio, n) or gr.skip(), None, c.model,
                                   api_visibility="private", queue=False)
        context_inputs = [c.video, c.model, c.frames, c.resolution]
        for trigger in (c.video.change, c.frames.change, c.resolution.change):
            trigger(lambda v, m, f, r: context_preview(studio, v, m, f, r), context_inputs,
                    [c.context_md, c.context_gallery], api_visibility="private")
        c.budget.change(lambda name: policy_steps(studio, name) or gr.skip(), c.budget, c.steps, queue=False,
                        api_visibility="private")
        c.steps.change(lambda name, n: policy_for_steps(studio, name, n), [c.budget, c.steps], c.budget, queue=False,
                       api_visibility="private")
        c.refine.change(lambda on: gr.Slider(interactive=bool(on)), c.refine, c.preview_steps,
                        api_visibility="private", queue=False)


def build(studio, model: gr.Dropdown, model_info: gr.Markdown, session: gr.State) -> CreateControls:
    """The Create tab: its components, then its events. The controls are shared with Compare and History."""
    tab = CreateTab(studio, layout(studio, model, model_info, session))
    tab.wire()
    return tab.c
