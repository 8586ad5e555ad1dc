"""Per-session render control shared by the Create and Compare tabs.

Each browser session owns a plain dict held in a ``gr.State`` (Gradio deep-copies a
State's default per session and then passes the same object to every event of that
session). A render stores its ``threading.Event`` there; the Cancel button sets it and
the engine stops within one step. ``drive`` turns engine events into a few UI-level
updates and feeds ``gr.Progress``.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import InvalidRequest, StudioError
from ..engine.events import Waiting
from ..engine.render import Cancelled, Chunk, Failed, Plan, Preview, Progress, RenderRequest, Result, Status
from . import format as fmt
from . import spacemode

FIELD_LABELS = {
    "prompt": "Prompt", "negative_prompt": "Negative prompt", "image": "First frame", "video": "Input video",
    "steps": "Steps", "seed": "Seed", "height": "Resolution", "width": "Resolution", "frames": "Frames",
    "fps": "Frame rate", "budgets": "Budgets", "mode": "Mode", "guidance_scale": "Guidance",
    "context_frames": "Context frames",
}
STATUS_EVERY_S = 0.25  # at most this often a step-progress status yield


def friendly_error(exc: StudioError) -> str:
    """One short message for the user (no traceback, no field names from code)."""
    if isinstance(exc, InvalidRequest):
        parts = [f"{FIELD_LABELS.get(k, k.replace('_', ' ').capitalize())} {v}" for k, v in exc.errors.items()]
        return "Please fix: " + "; ".join(parts) + "."
    return str(exc)


def new_cancel(session: dict | None) -> threading.Event:
    event = threading.Event()
    if session is not None:
        previous = session.get("cancel")
        if previous is not None:  # a render still running in this session is superseded
            previous.set()
        session["cancel"] = event
    return event


@contextmanager
def cancel_scope(session: dict | None) -> Iterator[threading.Event]:
    """The cancel event of one render (or batch) in this session, for as long as it runs.

    A render still running in the session is superseded (its event is set). On the way out the event is
    removed, unless a newer render has already put its own in its place. Create, Compare and Storyboard
    batches all go through here, so Cancel means the same everywhere."""
    event = new_cancel(session)
    try:
        yield event
    finally:
        if session is not None and session.get("cancel") is event:
            session.pop("cancel", None)


def cancel(session: dict | None) -> bool:
    """Set the session's cancel event; True if a render was running."""
    event = (session or {}).get("cancel")
    if event is None or event.is_set():
        return False
    event.set()
    return True


@dataclass
class Update:
    kind: str  # status | progress | live | result | failed | cancelled
    text: str = ""
    result: Result | None = None
    elapsed: float = 0.0
    extra: dict = field(default_factory=dict)


def role_name(plan: Plan, index: int) -> str:
    role = plan.role(index)
    steps = plan.budgets[index]
    if role == "preview":
        return f"preview ({fmt.steps_word(steps)})"
    if role == "final":
        return f"final ({fmt.steps_word(steps)})"
    if role == "compare":
        return f"{fmt.steps_word(steps)} ({index + 1} of {len(plan.budgets)})"
    return fmt.steps_word(steps)


def progress_text(plan: Plan, event: Progress) -> tuple[str, str]:
    """(which budget: "final (8 steps) · budget 2 of 2", how its steps split), one reading for the status line and
    the progress bar: budget k of n, step s of S, where S counts this budget's transformer calls."""
    where = role_name(plan, event.budget_index)
    if len(plan.budgets) > 1 and plan.kind != "compare":  # a comparison's name already says "(k of n)"
        where += f" · budget {event.budget_index + 1} of {len(plan.budgets)}"
    how = ""
    if event.stage:  # keyframe-first T2V: the first frame alone, then the clip from it
        how = f" ({event.stage}, {fmt.steps_word(event.steps)} each for the first frame and the clip)"
    elif event.total != event.steps and event.steps and event.total % event.steps == 0:
        how = f" ({fmt.steps_word(event.steps)} × {event.total // event.steps} chunks)"
    return where, how


def drive(studio, req: RenderRequest, plan: Plan, session: dict | None, progress=None,
          live: bool = False, policy: str | None = None) -> Iterator[Update]:
    """Run a plan; yield Updates. Validation errors surface as a 'failed' Update, never as an exception.

    ``live`` adds per-step previews; causal models always stream their decoded chunks as 'live' Updates."""
    started = time.perf_counter()
    with cancel_scope(session) as cancel_event:  # the session's Cancel button sets it
        # Space mode: this visitor's renders are recorded and stored under their own session id.
        space_session = spacemode.session_id(studio, session)  # created on first use if demo.load has not run
        # Through spaces.GPU (ZeroGPU) where the spaces package exists; the same generator everywhere else.
        events = spacemode.render_events(studio, req, plan, cancel_event, space_session, live, policy=policy)
        try:
            yield from updates(events, plan, progress, started)
        except StudioError as exc:
            yield Update("failed", friendly_error(exc), elapsed=time.perf_counter() - started)
        finally:
            events.close()  # if our consumer went away mid-render, this cancels it


def updates(events, plan: Plan, progress, started: float) -> Iterator[Update]:
    """Engine events as UI Updates: step progress and live frames throttled, ``progress`` fed as it goes."""
    last_status = last_live = 0.0
    last_place = ""
    for event in events:
        elapsed = time.perf_counter() - started
        if isinstance(event, Chunk):  # real frames of the final video, as soon as their chunk is decoded
            last = event.first_frame + len(event.frames)
            text = (f"{role_name(plan, event.budget_index)}: chunk {event.chunk + 1} of {event.chunks} decoded "
                    f"(frames {event.first_frame + 1}-{last}) after {fmt.seconds(event.seconds)}")
            yield Update("live", text, elapsed=elapsed, extra={"frames": event.frames, "budget_index": event.budget_index})
            continue
        if isinstance(event, Preview):  # the clean-video estimate, no VAE: cheap, so throttled not skipped
            now = time.perf_counter()
            if now - last_live >= STATUS_EVERY_S or event.step == event.total:
                last_live = now
                text = (f"{role_name(plan, event.budget_index)}: estimate at step {event.step} of {event.total} "
                        "(fast preview, no VAE)")
                yield Update("live", text, elapsed=elapsed,
                             extra={"frames": event.frames, "budget_index": event.budget_index})
            continue
        if isinstance(event, Waiting):  # the render is a job in the studio's queue, not running yet (told each s)
            if progress is not None:
                progress(0.0, desc=f"queue: {event.position}/{event.waiting}")
            text = f"Waiting in the render queue: {fmt.place(event.position, event.waiting)}."
            if text != last_place:
                last_place = text
                yield Update("status", text, elapsed=elapsed)
        elif isinstance(event, Status):
            if progress is not None:
                progress(0.0, desc=event.message)
            yield Update("status", event.message, elapsed=elapsed)
        elif isinstance(event, Progress):
            where, how = progress_text(plan, event)
            text = f"Rendering {where} · step {event.step} of {event.total}{how}"
            if progress is not None:  # the bar reads the same: this budget's steps, "budget k of n" beside them
                progress((event.step, event.total), desc=f"{where}{how}", unit="steps")
            now = time.perf_counter()
            if now - last_status >= STATUS_EVERY_S or event.step == event.total:
                last_status = now
                yield Update("progress", text, elapsed=elapsed,
                             extra={"fraction": event.fraction, "budget_index": event.budget_index})
        elif isinstance(event, Result):
            yield Update("result", result=event, elapsed=elapsed)
        elif isinstance(event, Failed):
            yield Update("failed", event.message, elapsed=elapsed)
        elif isinstance(event, Cancelled):
            yield Update("cancelled", "Cancelled. The render is kept in History as cancelled.", elapsed=elapsed)
