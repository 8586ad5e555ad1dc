"""The Create tab: T2V / I2V / V2V sub-tabs sharing one control set, streamed preview-then-refine, Cancel.

Reading order: ``create_choices`` (pure helpers, tested without a browser), ``create_layout`` (creates the
components, held in ``CreateControls``), then here: ``CreateTab`` (the handlers, as methods, and ``wire``) and
``build``: layout, then wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from ..errors import StudioError
from ..engine.render import Plan, RenderRequest
from . import format as fmt
from . import extend_action, header, restore_file
from .create_choices import (MODES, build_request, chosen_policy, context_preview, hint_updates, mode_notes,
                             off_world, policy_for_steps, policy_steps, switch_target)
from .create_layout import CreateControls, layout
from .session import cancel, drive, friendly_error
from .size_controls import size_controls


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
