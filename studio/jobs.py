"""Render and board jobs as plain dicts, and what they report back as JSON-ready dicts, one per event.

`python -m studio render` and `board run` build a job (cli_jobs.py); the studio that owns the data folder runs it
for them (ui/owner_api.py streams the events as NDJSON), or the CLI runs it itself (--standalone, or no studio).
Either way the same events come back, so the CLI prints the same thing.

    render job: {"request": RenderRequest dict, "preview": STEPS | None, "compare": [B1, ...] | None,
                 "policy": NAME | None, "gif": bool}
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
import re
import threading
from pathlib import Path
from typing import Iterator

from .errors import StudioError


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
    from .events import Cancelled, Failed, Progress, Result, Status, Waiting

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
def _plan(studio, job: dict):
    """(validated request, plan, notes) for a render job: the policy first, then the plan's budgets."""
    from .render import Plan, RenderRequest

    if not isinstance(job.get("request"), dict):
        raise StudioError("a render job needs a \"request\" object")
    req = RenderRequest.from_dict(job["request"])
    if job.get("policy"):
        req = studio.policies.get(job["policy"]).apply(req)
    resolved, notes = studio.engine.validate(req)
    if job.get("compare"):
        plan = Plan.compare(job["compare"])
    elif job.get("preview"):
        plan = Plan.refine(job["preview"], resolved.steps)
    else:
        plan = Plan.single(resolved.steps)
    return resolved, plan, notes


def plan_keys(plan) -> dict:
    """The job keys that say a plan (see ``_plan``): a refine plan's preview, a comparison's budgets."""
    if plan.kind == "refine":
        return {"preview": plan.budgets[0]}
    if plan.kind == "compare":
        return {"compare": list(plan.budgets)}
    return {}


def queue_job(studio, job: dict, *, source: str, session: str | None = None, cancel=None):
    """Check a render job, queue it on the studio's dispatcher and follow it: (request, plan, notes, the
    JobStream of its events). StudioError at once for bad input (nothing is queued); a consumer that stops
    listening cancels it (``stream.abandon()`` if it never starts to)."""
    from . import space
    from .dispatcher import JobStream
    from .errors import InvalidRequest

    if session is not None and not space.valid_session(session):
        raise InvalidRequest({"session": "a session id is 32 hexadecimal digits"})
    req, plan, notes = _plan(studio, job)
    job = dict(job, request=dict(job["request"], seed=req.seed))  # a random seed is picked once, as reported
    stream = JobStream(studio.dispatcher(), cancel, cancel_on_close=True)
    stream.submit(job, source=source, session=session, plan={"kind": plan.kind, "budgets": list(plan.budgets)})
    return req, plan, notes, stream


def follow_job(studio, job: dict, *, source: str, session: str | None = None, cancel=None) -> Iterator:
    """``queue_job``, then the job's engine events as they happen: StudioError at the first ``next`` for bad input,
    and a consumer that goes away takes its job out of the queue (a no-op once it finished)."""
    _, _, _, stream = queue_job(studio, job, source=source, session=session, cancel=cancel)
    try:
        yield from stream.events()
    finally:
        stream.abandon()


def plan_for_row(studio, row: dict, store):
    """(request, plan, notes) for a job the dispatcher claimed. A storyboard shot that continues another takes
    that shot's render, finished by now, as its context (the job it waits for says whether it failed)."""
    job = row["request"]
    if job.get("board"):
        from .board_runner import queued_shot_request

        after = store.get(row["after"]) if row.get("after") else None
        job = dict(job, request=queued_shot_request(studio, job, row.get("session"), after))
    return _plan(studio, job)


def on_result(studio, store, row: dict, event):
    """What a finished budget of a queued job brings besides its row: an extension's joined clip, the CLI's GIF,
    a storyboard shot's render, the farm worker that rendered it. Done by the dispatcher, so it happens with
    nobody following the job."""
    from . import media
    from .board_store import BoardStore

    job = row["request"]
    if job.get("extend"):  # the continuation becomes the joined clip (StudioError: its row failed, and the job)
        from . import extend

        event = extend.finish_queued(studio, job["extend"], event)
    if job.get("gif"):
        media.write_gif(event.frames, Path(event.video_path).with_suffix(".gif"), event.request.get("fps") or 16)
    if job.get("board"):
        BoardStore(studio.history).set_render(job["board"]["shot"], job["board"]["stage"], event.record_id)
    if worker := event.timings.get("worker"):
        store.set_worker(row["id"], worker)
    return event


def render_events(studio, job: dict, cancel: threading.Event | None = None) -> Iterator[dict]:
    """Queue a render job on ``studio`` and yield its events as dicts. Bad input is one ``error`` event."""
    stream = None
    try:
        req, plan, notes, stream = queue_job(studio, job, source="cli", cancel=cancel)
        yield {"type": "start", "seed": req.seed, "model": req.model, "width": req.width, "height": req.height,
               "frames": req.frames, "fps": req.fps, "budgets": list(plan.budgets), "plan": plan.kind,
               "notes": notes}
        for event in stream.events():
            if (out := event_dict(event)) is not None:
                yield out
    except (StudioError, TypeError) as exc:  # TypeError: a request field of the wrong type
        yield {"type": "error", "message": str(exc)}
    finally:
        if stream is not None:
            stream.abandon()  # a client gone after "start": its job leaves the queue


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
    from .board_runner import BoardRunner

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
