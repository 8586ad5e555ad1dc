"""The "Extend" action on Create's result and on a History entry: continue a finished render by N frames.

A small row (frames to add, a prompt that starts as the original's, its own step budget: 0 means the Create
tab's steps, never the original's; Extend) under the video. Pressing Extend runs
``extend.load_source`` / ``extension_request`` / ``extend`` (as ``render --extend`` does) in this session's cancel
scope, streams its status, then shows the joined clip; its history row is a child of the original.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import gradio as gr

from ..engine import confine
from ..jobs import extend, following as jobs
from ..errors import StudioError
from ..engine.render import Plan, Result
from . import spacemode
from .session import cancel_scope, friendly_error, updates

DEFAULT_FRAMES = 8
FRAME_STEP = 4  # the AnyFlow VAEs' temporal factor: new frames come 4 at a time (extend.snap_new_frames)


@dataclass
class ExtendControls:
    box: gr.Group  # hidden until there is a finished render to extend
    frames: gr.Number
    prompt: gr.Textbox
    steps: gr.Number  # 0: the Create tab's steps
    button: gr.Button
    status: gr.Markdown


def build(where: str) -> ExtendControls:
    """The row, ``where`` ("create", "history") naming its elements."""
    with gr.Group(visible=False, elem_id=f"{where}-extend") as box:
        with gr.Row(equal_height=True):
            frames = gr.Number(value=DEFAULT_FRAMES, precision=0, minimum=FRAME_STEP, step=FRAME_STEP,
                               label="Frames to add", info=f"in steps of {FRAME_STEP}", scale=1, min_width=110,
                               elem_id=f"{where}-extend-frames")
            prompt = gr.Textbox(label="Prompt for the new frames", lines=1, max_lines=3, scale=4,
                                placeholder="the original's prompt", elem_id=f"{where}-extend-prompt")
            steps = gr.Number(value=0, precision=0, minimum=0, maximum=128, label="Steps (0: Create's)", scale=1,
                              min_width=90, elem_id=f"{where}-extend-steps")
            button = gr.Button("Extend →", variant="secondary", scale=1, min_width=100,
                               elem_id=f"{where}-extend-btn")
        status = gr.Markdown("", elem_id=f"{where}-extend-status")
    return ExtendControls(box, frames, prompt, steps, button, status)


def budget(steps, create_steps) -> int | None:
    """The extension's step budget: its own box, else the Create tab's steps (never the original's)."""
    for value in (steps, create_steps):
        if value not in (None, "", 0):
            return int(value)
    return None


def defaults(studio, rid) -> tuple:
    """(the row shown only for a finished render, its prompt box set to that render's prompt)."""
    row = studio.history.get(rid) if rid else None
    if row is None or row.get("status") != "ok" or not row.get("video_path"):
        return gr.Group(visible=False), gr.skip()
    return gr.Group(visible=True), (row.get("request") or {}).get("prompt") or row.get("prompt") or ""


def _own(studio, rid, session) -> bool:
    """Space mode: only this session's renders can be extended (and never a file path). Elsewhere a file path
    must lie in the studio's folders (``extend.load_source`` checks it)."""
    if not isinstance(rid, str):
        return False
    if not studio.settings.space:
        return True
    row = studio.history.get(rid) if rid else None
    return bool(row and row.get("session") == spacemode.session_id(studio, session))


def run(studio, rid, frames, prompt, session, progress=None, steps=None) -> Iterator[tuple[str, object]]:
    """Extend the render ``rid``: ("status", text) while it runs, then ("done", (Result, plan)), ("failed", text)
    or ("cancelled", text)."""
    started = time.perf_counter()
    try:
        if not rid or not _own(studio, rid, session):
            raise StudioError("Pick a finished render to extend.")
        source = extend.load_source(studio.history, str(rid), allowed=confine.input_roots(studio.settings))
        req, plan = extend.extension_request(studio.engine, source, int(frames or 0), prompt=prompt, steps=steps)
        note = plan.note(studio.engine.spec_for(req).temporal_factor)
    except (StudioError, ValueError, TypeError) as exc:
        yield "failed", friendly_error(exc) if isinstance(exc, StudioError) else f"Frames to add: {exc}"
        return
    yield "status", (f"… Extending `{rid}`: {plan.source_frames} frames + {plan.new_frames} new "
                     f"({plan.context} as context) on {req.model}" + (f"  \n{note}" if note else ""))
    with cancel_scope(session) as cancel_event:
        sid = spacemode.session_id(studio, session)
        events = None
        try:
            events = jobs.follow_extension(studio, source, req, plan, cancel=cancel_event, session=sid)
            for up in updates(events, Plan.single(req.steps), progress, started):
                if up.kind == "result":
                    yield "done", (up.result, plan)
                elif up.kind in ("progress", "status", "failed", "cancelled"):
                    yield ("status" if up.kind in ("progress", "status") else up.kind), up.text
        except StudioError as exc:
            yield "failed", friendly_error(exc)
        finally:
            if events is not None:
                events.close()


def done_text(rid, result: Result, plan) -> str:
    return (f"✓ extended `{rid}`: {plan.source_frames} + {plan.new_frames} frames = {plan.joined_frames}, "
            f"saved to History as `{result.record_id}`.")


# ---- Create: the result column ------------------------------------------------------------------
def on_create(studio, c, ext: ExtendControls, info, frames, prompt, session, progress=gr.Progress(), steps=None):
    """Extend the render Create shows; the joined clip replaces it (so Extend again continues the extension)."""
    info = info if isinstance(info, dict) else {}  # a hidden input: anything may come through the API
    rid = info.get("record_id")
    busy = {ext.button: gr.Button(interactive=False), c.cancel_btn: gr.Button(interactive=True)}
    idle = {ext.button: gr.Button(interactive=True), c.cancel_btn: gr.Button(interactive=False)}
    for kind, value in run(studio, rid, frames, prompt, session, progress, steps):
        if kind == "status":
            yield {c.status: value, **busy}
        elif kind == "done":
            result, plan = value
            new_info = dict(info, record_id=result.record_id, video=result.video_path, role="final",
                            steps=result.steps, frames=plan.joined_frames, extends=rid)
            yield {c.output: gr.Video(value=result.video_path, label=f"Extended · {plan.joined_frames} frames"),
                   c.status: done_text(rid, result, plan), c.info: new_info,
                   c.details: f"Saved to History as `{result.record_id}` (extends `{rid}`).", **idle}
            return
        else:
            if kind == "failed":
                gr.Warning(value)
            yield {c.status: ("⚠ " if kind == "failed" else "■ ") + value, **idle}
            return


def wire_create(studio, c, ext: ExtendControls) -> None:
    c.info.change(lambda info: defaults(studio, (info or {}).get("record_id")), c.info, [ext.box, ext.prompt],
                  api_visibility="private", queue=False)
    def handler(info, frames, prompt, session, steps, create_steps, progress=gr.Progress()):
        yield from on_create(studio, c, ext, info, frames, prompt, session, progress, budget(steps, create_steps))

    ext.button.click(handler, [c.info, ext.frames, ext.prompt, c.session, ext.steps, c.steps],
                     [c.output, c.status, c.details, c.info, ext.button, c.cancel_btn],
                     api_name="extend_create", concurrency_id="render", show_progress="minimal",
                     show_progress_on=[c.progress_bar])


# ---- History: the selected entry ------------------------------------------------------------------
def on_history(studio, ext: ExtendControls, show, detail_outputs, refresh, listing, rid, frames, prompt, session,
               steps, create_steps, *refresh_args):
    """Extend the selected History entry; when done, select the extension (its details show its parent)."""
    for kind, value in run(studio, rid, frames, prompt, session, steps=budget(steps, create_steps)):
        if kind == "status":
            yield {ext.status: value, ext.button: gr.Button(interactive=False)}
        elif kind == "done":
            result, plan = value
            shown = dict(zip(detail_outputs, show(result.record_id)))
            yield {**shown, **dict(zip(listing, refresh(*refresh_args))), ext.status: done_text(rid, result, plan),
                   ext.button: gr.Button(interactive=True)}
            return
        else:
            if kind == "failed":
                gr.Warning(value)
            yield {ext.status: ("⚠ " if kind == "failed" else "■ ") + value, ext.button: gr.Button(interactive=True)}
            return


def wire_history(studio, ext: ExtendControls, selected, session, show, detail_outputs, refresh, listing,
                 refresh_inputs: list, create_steps=None) -> None:
    """``show(rid)``: History's detail updates; ``refresh(*refresh_inputs)``: its gallery listing;
    ``create_steps``: the Create tab's steps (the budget when the row's own box is empty)."""
    selected.change(lambda rid: defaults(studio, rid), selected, [ext.box, ext.prompt], api_visibility="private",
                    queue=False)

    def handler(rid, frames, prompt, session_v, *rest):  # the step boxes last: earlier API calls keep their order
        *refresh_args, steps, create_steps = rest
        yield from on_history(studio, ext, show, detail_outputs, refresh, listing, rid, frames, prompt, session_v,
                              steps, create_steps, *refresh_args)

    ext.button.click(
        handler, [selected, ext.frames, ext.prompt, session, *refresh_inputs, ext.steps, create_steps or ext.steps],
        [*detail_outputs, *listing, ext.status, ext.button], api_name="extend_history", concurrency_id="render")
