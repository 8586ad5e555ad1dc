"""Queueing and following jobs (their kinds are in job_kinds.py), and what they report back as JSON-ready dicts.

`python -m studio render` and `board run` build a job (cli_jobs.py); the studio that owns the data folder runs it
for them (ui/owner_api.py streams the events as NDJSON), or the CLI runs it itself (--standalone, or no studio).
Either way the same events come back, so the CLI prints the same thing.

    render job: {"request": RenderRequest dict, "preview": STEPS | None, "compare": [B1, ...] | None,
                 "policy": NAME | None, "gif": bool}  (a ``render`` kind, job_kinds.RenderJob, once queued)
    board job:  {"board": the board file's JSON, "source": the board file's path, "stage": "preview" | "final",
                 "export_dir": DIR | None}

Events: ``{"type": ...}`` with type start (seed, model, size, budgets, plan, notes), status, progress, result
(id, steps, role, video, thumbnail, timings, request, notes), failed, cancelled, error (a StudioError: message);
board jobs: board (name, shots, stage, todo, done), shot (index, total, event), exported (dir), batch_done
(failed: [[position, message]], cancelled). Previews and streamed chunks carry frames and are not reported.

A file sent with a job travels as ``{"file": name, "data": base64}`` in place of its path; ``store_files`` writes
it under ``<renders dir>/inputs`` (where History's re-run finds it again and Space mode's janitor purges it;
named by its content, so a board sent again maps to the same inputs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import threading
from pathlib import Path
from typing import Iterator

from . import extend
from ..engine import space
from .boards import BoardRunner
from .dispatcher import JobStream
from ..errors import InvalidRequest, StudioError, internal_error
from ..engine.events import Cancelled, Failed, Progress, Requeued, Result, Status, Waiting
from ..store.queue import QueueStore
from .kinds import KINDS, ExtensionJob, RenderJob

log = logging.getLogger(__name__)


# ---- files sent with a job ------------------------------------------------------------
def _is_file(value) -> bool:
    return isinstance(value, dict) and set(value) == {"file", "data"}


def _store(value: dict, inputs_dir: Path) -> str:
    try:
        data = base64.b64decode(str(value["data"]), validate=True)
    except (binascii.Error, ValueError):
        raise StudioError(f"{value['file']!r}: the file sent with the job is not valid base64") from None
    suffix = "".join(re.findall(r"[A-Za-z0-9.]", Path(str(value["file"])).suffix))[:10].lower()
    path = inputs_dir / f"{hashlib.sha256(data).hexdigest()[:20]}{suffix}"
    if not path.is_file():
        inputs_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return str(path)


def store_files(job, inputs_dir: Path):
    """The job with each file sent along (``{"file", "data"}``) written under ``inputs_dir`` and replaced by its
    path."""
    if _is_file(job):
        return _store(job, inputs_dir)
    if isinstance(job, dict):
        return {k: store_files(v, inputs_dir) for k, v in job.items()}
    if isinstance(job, list):
        return [store_files(v, inputs_dir) for v in job]
    return job


# ---- events as dicts ----------------------------------------------------------------------
def event_dict(event) -> dict | None:
    """An engine event as a JSON-ready dict; None for those that carry frames (previews, chunks)."""
    if isinstance(event, Requeued):
        return {"type": "requeued", "job": event.job_id, "message": event.message}
    if isinstance(event, Waiting):
        return {"type": "waiting", "position": event.position, "waiting": event.waiting}
    if isinstance(event, Status):
        return {"type": "status", "message": event.message}
    if isinstance(event, Progress):
        return {"type": "progress", "steps": event.steps, "step": event.step, "total": event.total,
                "fraction": event.fraction, "stage": event.stage}
    if isinstance(event, Result):
        return {"type": "result", "id": event.record_id, "steps": event.steps, "role": event.role,
                "video": event.video_path, "thumbnail": event.thumb_path, "timings": event.timings,
                "request": event.request, "notes": list(event.notes)}
    if isinstance(event, (Failed, Cancelled)):
        return {"type": event.kind, "message": event.message}
    return None


# ---- render jobs --------------------------------------------------------------------------
def plan_keys(plan) -> dict:
    """The job keys that say a plan (see ``RenderJob.plan``): a refine plan's preview, a comparison's budgets."""
    if plan.kind == "refine":
        return {"preview": plan.budgets[0]}
    if plan.kind == "compare":
        return {"compare": list(plan.budgets)}
    return {}


def render_job(job) -> RenderJob:
    """A render job as sent (a dict: its request and plan keys), typed; a RenderJob (or an extension) as it is."""
    return job if isinstance(job, RenderJob) else KINDS["render"](job)


def queue_job(studio, job, *, source: str, session: str | None = None, cancel=None):
    """Check a render job (a dict, or a RenderJob such as an ExtensionJob), queue it on the studio's dispatcher and
    follow it: (request, plan, notes, the JobStream of its events). StudioError at once for bad input (nothing is
    queued); a consumer that stops listening cancels it (``stream.abandon()`` if it never starts to)."""
    if session is not None and not space.valid_session(session):
        raise InvalidRequest({"session": "a session id is 32 hexadecimal digits"})
    typed = render_job(job)
    req, plan, notes = typed.plan(studio)
    typed.pin_seed(req.seed)  # a random seed is picked once, as reported: a re-run renders the same
    stream = JobStream(studio.dispatcher(), cancel, cancel_on_close=True)
    stream.submit(typed, source=source, session=session, plan={"kind": plan.kind, "budgets": list(plan.budgets)})
    return req, plan, notes, stream


def follow_job(studio, job, *, source: str, session: str | None = None, cancel=None) -> Iterator:
    """``queue_job``, then the job's engine events as they happen: StudioError at the first ``next`` for bad input,
    and a consumer that goes away takes its job out of the queue (a no-op once it finished)."""
    _, _, _, stream = queue_job(studio, job, source=source, session=session, cancel=cancel)
    try:
        yield from stream.events()
    finally:
        stream.abandon()


def follow_extension(studio, source: "extend.Source", req, plan: "extend.ExtensionPlan", *,
                     source_name: str = "extend", cancel=None, session: str | None = None) -> Iterator:
    """Queue an extension (it copies its clip when queued) and yield its events (the Result is the joined clip)."""
    job = ExtensionJob(extend.job(source, req, plan))
    return follow_job(studio, job, source=source_name, session=session, cancel=cancel)


def queue_extension_rerun(studio, rid: str, session: str | None = None) -> tuple[str, "extend.ExtensionPlan"]:
    """Queue again the extension recorded as ``rid`` (same source, frames, prompt, seed and steps), followed by
    nobody: (its job id, its plan). StudioError when ``rid`` is not an extension or its source is gone."""
    row = studio.history.get(rid) if rid else None
    if row is None:
        raise StudioError(f"No render {rid!r} in History.")
    source, req, plan = extend.rerun(studio.history, row)
    typed = ExtensionJob(extend.job(source, req, plan))
    resolved, budgets, _ = typed.plan(studio)
    typed.pin_seed(resolved.seed)
    jid = studio.dispatcher().submit(typed, source="extend", session=session,
                                       plan={"kind": budgets.kind, "budgets": list(budgets.budgets)})
    return jid, plan


def add_job(studio, job, *, source: str = "cli") -> str:
    """Check a render job (a dict, or a typed one such as an ExtensionJob) as a render would, pin its seed and queue
    it, followed by nobody (``queue add``): its job id. With no dispatcher running (a CLI that owns the folder), it
    waits in the queue for the next ``queue run`` or studio start."""
    typed = render_job(job)
    req, plan, _ = typed.plan(studio)
    typed.pin_seed(req.seed)  # a re-run renders the seed it was queued with
    plan = {"kind": plan.kind, "budgets": list(plan.budgets)}
    dispatcher = studio.running_dispatcher
    if dispatcher is not None:
        return dispatcher.submit(typed, source=source, plan=plan)
    return QueueStore(studio.history).add(typed.to_json(), source=source, plan=plan, kind=typed.name)


def render_events(studio, job, cancel: threading.Event | None = None, notes: tuple = ()) -> Iterator[dict]:
    """Queue a render job on ``studio`` (a dict, or a typed job) and yield its events as dicts; ``notes`` go into
    its start event. Bad input is one ``error`` event."""
    stream = None
    try:
        req, plan, more, stream = queue_job(studio, job, source="cli", cancel=cancel)
        yield {"type": "start", "job": next(iter(stream.jobs), None), "seed": req.seed, "model": req.model,
               "width": req.width, "height": req.height, "frames": req.frames, "fps": req.fps,
               "budgets": list(plan.budgets), "plan": plan.kind, "notes": [*notes, *more]}
        for event in stream.events():
            if (out := event_dict(event)) is not None:
                yield out
    except StudioError as exc:  # bad input
        yield {"type": "error", "message": str(exc)}
    except Exception as exc:  # a bug: in the log with its traceback, and said to be one
        log.exception("render job failed: internal error")
        yield {"type": "error", "message": internal_error(exc)}
    finally:
        if stream is not None:
            stream.abandon()  # a client gone after "start": its job leaves the queue


# ---- extensions ---------------------------------------------------------------------------
def extension_job(studio, job: dict, allowed: list[Path] | None = None) -> tuple[ExtensionJob, list[str]]:
    """An extend job ({"source": history id or clip, "frames": new frames, and optional "prompt", "seed", "steps",
    "model", "context_frames", "negative_prompt", "guidance_scale"}) as an ExtensionJob, with notes for the user.
    ``allowed``: the folders a clip may come from (the owner API's ``confine.input_roots``; None: the CLI's user)."""
    from ..engine.request import MAX_FRAMES

    frames = job.get("frames")
    if not isinstance(frames, int) or isinstance(frames, bool) or not 1 <= frames <= MAX_FRAMES:
        raise InvalidRequest({"frames": f"the new frames, 1 to {MAX_FRAMES}; got {str(frames)[:40]}"})
    source = extend.load_source(studio.history, str(job.get("source") or ""), allowed=allowed)
    req, plan = extend.extension_request(
        studio.engine, source, frames, prompt=job.get("prompt"), seed=job.get("seed"), steps=job.get("steps"),
        model=job.get("model"), max_context=job.get("context_frames"), negative_prompt=job.get("negative_prompt"),
        guidance_scale=job.get("guidance_scale"))
    note = plan.note(studio.engine.spec_for(req).temporal_factor)
    said = f"extending {source.path.name}: {plan.source_frames} frames + {plan.new_frames} new ({plan.context} as " \
           f"context) on {req.model}"
    return ExtensionJob(extend.job(source, req, plan)), [*([note] if note else []), said]


def extension_events(studio, job: dict, cancel: threading.Event | None = None,
                     allowed: list[Path] | None = None) -> Iterator[dict]:
    """Queue an extend job (``extension_job``) and yield its events as dicts, like ``render_events`` (the result is
    the joined clip); with ``"queue": true``, one ``queued`` event (followed by nobody). Bad input: one ``error``."""
    try:
        typed, notes = extension_job(studio, job, allowed)
        if job.get("queue"):
            yield {"type": "queued", "id": add_job(studio, typed)}
            return
    except StudioError as exc:
        yield {"type": "error", "message": str(exc)}
        return
    except Exception as exc:  # a bug: in the log with its traceback, and said to be one
        log.exception("extend job failed: internal error")
        yield {"type": "error", "message": internal_error(exc)}
        return
    yield from render_events(studio, typed, cancel, notes=tuple(notes))


# ---- board jobs ---------------------------------------------------------------------------
def _export(boards, board, stage: str, export_dir: str) -> dict:
    out = Path(export_dir)
    out.mkdir(parents=True, exist_ok=True)
    boards.export_json(board.id, out / "board.json")
    boards.export_contact_sheet(board.id, out / "contact_sheet.png")
    if stage == "final":
        boards.export_finals(board.id, out / "finals.mp4")
    return {"type": "exported", "dir": str(out)}


def board_events(studio, job: dict, cancel: threading.Event | None = None) -> Iterator[dict]:
    """Import a board job's board (resumable: the same file is the same board), render its stage shot by shot,
    export if asked; yield the events as dicts. Bad input is one ``error`` event."""
    try:
        stage = job.get("stage") or "preview"
        boards = BoardRunner(studio)
        board = boards.import_data(job.get("board"), job.get("source") or "board.json")
        todo, done = boards.pending(board, stage)
        yield {"type": "board", "name": board.name, "shots": len(board.shots), "stage": stage, "todo": len(todo),
               "done": len(done)}
        summary = None
        for ev in boards.run(board.id, stage, cancel=cancel):
            if ev.kind == "batch_done":
                summary = ev
            elif (inner := event_dict(ev.event)) is not None:
                yield {"type": "shot", "index": ev.index, "total": ev.total, "event": inner}
        if job.get("export_dir"):
            yield _export(boards, board, stage, job["export_dir"])
        failed = [[board.shot(sid).position + 1, message] for sid, message in summary.failed.items()]
        yield {"type": "batch_done", "failed": failed, "cancelled": summary.cancelled}
    except StudioError as exc:
        yield {"type": "error", "message": str(exc)}
