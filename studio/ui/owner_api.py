"""The owning studio's small HTTP API, for `python -m studio` in another process (client: studio/app/owner_client.py).

    GET  /studio/api/ping       {"pid", "data_dir", "loaded": {model id: device, memory}, "load_counts"}
    POST /studio/api/render     a render job (studio/jobs/following.py) -> its events, one JSON object per line (NDJSON)
    POST /studio/api/board-run  a board job -> its events, the same way
    POST /studio/api/queue-add  a render job into the queue (checked first) -> one event: queued (id) or error
    POST /studio/api/sweep-run, sweep-resume    a sweep spec / {"id"} -> its events (studio/jobs/sweep_run.py)
    POST /studio/api/sweep-report, sweep-policies   {"id", "write"?} -> one event: answer, or error

    _, url, _ = demo.launch(...)
    serve(app, studio, url)     # mount the routes, then announce url + token in <data dir>/studio.json

Jobs render on this studio's engine, models and history, so a CLI render lands in the same history on the same
loaded model. Every route asks for the token announced next to the lock (a file only its user may read) in the
X-Studio-Token header. While a job runs a line goes out at least every few seconds (a keep-alive when there is no
event): a client that hung up is noticed at the next line, and its job is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import secrets
import threading
import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..engine import confine
from ..jobs import shape as job_shape, following as jobs, sweep_run
from ..errors import StudioError, internal_error
from ..app.owner_client import API, TOKEN_HEADER
from .guard import MAX_UPLOAD_MB

log = logging.getLogger(__name__)
KEEPALIVE_S = 2.0
_END = object()


def serve(app, studio, url: str, max_upload_mb: float = MAX_UPLOAD_MB) -> str:
    """Mount the API on the running Gradio app and announce it (the studio must own its data folder). Returns
    the token clients must send. Bodies are limited to ``body_limit(max_upload_mb)``."""
    token = secrets.token_urlsafe(32)
    app.include_router(router(studio, token, body_limit(max_upload_mb)))
    studio.lock.announce(url, token)
    return token


def _pump(run, cancel: threading.Event, events: queue.Queue) -> None:
    """Run a job's event generator on its own thread, handing each event to the response."""
    try:
        for event in run(cancel):
            events.put(event)
    except Exception as exc:  # a bug, not bad input: say so in the stream and in the log
        log.exception("job failed: internal error")
        events.put({"type": "error", "message": internal_error(exc)})
    finally:
        events.put(_END)


async def _lines(run):
    """The job's events as NDJSON lines; a hang-up (the generator closed) cancels the job."""
    cancel, events = threading.Event(), queue.Queue()
    threading.Thread(target=_pump, args=(run, cancel, events), name="owner-api-job", daemon=True).start()
    last = time.monotonic()
    try:
        while True:
            try:
                event = await asyncio.to_thread(events.get, True, KEEPALIVE_S / 2)
            except RuntimeError:  # the studio is shutting down (no new threads): the stream ends with no end line,
                return            # so its client says the studio stopped and where its job waits
            except queue.Empty:
                if time.monotonic() - last >= KEEPALIVE_S:
                    last = time.monotonic()
                    yield '{"type": "alive"}\n'
                continue
            if event is _END:
                yield '{"type": "end"}\n'  # the job's stream is complete: a client that sees no end lost the studio
                return
            last = time.monotonic()
            yield json.dumps(event, ensure_ascii=False) + "\n"
    finally:
        cancel.set()


def body_limit(max_upload_mb: float = MAX_UPLOAD_MB) -> int:
    """The largest request body taken: an upload of ``max_upload_mb`` as base64 (4/3 of it), plus 1 MB of JSON."""
    return int(max_upload_mb * 1024 * 1024 * 4 / 3) + 1024 * 1024


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 past ``limit`` bytes: by its Content-Length, and while reading (a
    body sent without one, or longer than it said, is never held whole)."""
    too_big = HTTPException(413, f"the job is larger than {limit // (1024 * 1024)} MB; the studio takes input files "
                                 f"up to its --max-upload-mb")
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _job(request: Request, studio, route: str, limit: int) -> dict:
    """The job in the body: JSON of the route's shape (job_shape.py), its files stored under renders/inputs, and no
    path outside the studio's folders. 400 (413 for a body too large) with a message otherwise."""
    body = await _body(request, limit)
    try:
        job = json.loads(body)
    except RecursionError:
        raise HTTPException(400, f"the job nests more than {job_shape.MAX_DEPTH} levels deep") from None
    except ValueError:
        raise HTTPException(400, "the job is not JSON") from None
    try:
        job_shape.check(route, job)
        job = await asyncio.to_thread(jobs.store_files, job, studio.settings.renders_dir / "inputs")
        job_shape.check_inputs(route, job, confine.input_roots(studio.settings))
        return job
    except StudioError as exc:
        raise HTTPException(400, str(exc)) from None


def _queue_add(studio, job: dict):
    """Check a render job as a render would, then queue it on the studio's dispatcher (it wakes at once)."""
    try:
        yield {"type": "queued", "id": jobs.add_job(studio, job)}
    except StudioError as exc:
        yield {"type": "error", "message": str(exc)}
    except Exception as exc:  # a bug: in the log with its traceback, and said to be one
        log.exception("queue-add failed: internal error")
        yield {"type": "error", "message": internal_error(exc)}


def _queue_cancel(studio, job: dict):
    """Cancel a job for `queue cancel ID`: through the dispatcher, so a running one stops at its next step and whoever
    follows it hears so at once."""
    from ..store.queue import QueueStore

    try:
        dispatcher = studio.running_dispatcher
        outcome = (dispatcher or QueueStore(studio.history)).cancel(str(job.get("id") or ""))
        yield {"type": "cancel", "id": job.get("id"), "outcome": outcome}
    except StudioError as exc:
        yield {"type": "error", "message": str(exc)}


def _answer(work):
    """One event: the answer of ``work()``, or the error it raised (sweep report and policies)."""
    try:
        yield {"type": "answer", "answer": work()}
    except StudioError as exc:
        yield {"type": "error", "message": str(exc)}


def router(studio, token: str, limit: int | None = None) -> APIRouter:
    limit = body_limit() if limit is None else limit

    def check(request: Request) -> None:
        sent = request.headers.get(TOKEN_HEADER, "")  # bytes: compare_digest refuses non-ASCII str (a 500)
        if not secrets.compare_digest(sent.encode(), token.encode()):
            raise HTTPException(401, f"send the token from {studio.settings.data_dir}/studio.json in {TOKEN_HEADER}")

    api = APIRouter(prefix=f"/{API}")

    @api.get("/ping")
    def ping(request: Request):
        check(request)
        return JSONResponse({"pid": os.getpid(), "data_dir": str(studio.settings.data_dir),
                             "loaded": studio.models.loaded_state(), "load_counts": dict(studio.models.load_counts),
                             "max_upload_mb": studio.settings.max_upload_mb})

    async def stream(request: Request, events) -> StreamingResponse:
        """Check the token, read the job, stream ``events(job, cancel)`` as NDJSON lines."""
        check(request)
        job = await _job(request, studio, request.url.path.rsplit("/", 1)[-1], limit)
        return StreamingResponse(_lines(lambda cancel: events(job, cancel)), media_type="application/x-ndjson")

    @api.post("/render")
    async def render(request: Request):
        return await stream(request, lambda job, cancel: jobs.render_events(studio, job, cancel))

    @api.post("/board-run")
    async def board_run(request: Request):
        return await stream(request, lambda job, cancel: jobs.board_events(studio, job, cancel))

    @api.post("/extend")
    async def extend_(request: Request):
        return await stream(request, lambda job, cancel: jobs.extension_events(
            studio, job, cancel, allowed=confine.input_roots(studio.settings)))

    @api.post("/queue-add")
    async def queue_add(request: Request):
        return await stream(request, lambda job, cancel: _queue_add(studio, job))

    @api.post("/queue-cancel")
    async def queue_cancel(request: Request):
        return await stream(request, lambda job, cancel: _queue_cancel(studio, job))

    @api.post("/sweep-run")
    async def sweep_run_(request: Request):
        return await stream(request, lambda job, cancel: sweep_run.run_events(studio, job, cancel))

    @api.post("/sweep-resume")
    async def sweep_resume(request: Request):
        return await stream(request, lambda job, cancel: sweep_run.resume_events(studio, str(job.get("id")), cancel))

    @api.post("/sweep-report")
    async def sweep_report(request: Request):
        return await stream(request, lambda job, cancel: _answer(lambda: sweep_run.report(studio, str(job.get("id")))))

    @api.post("/sweep-policies")
    async def sweep_policies(request: Request):
        return await stream(request, lambda job, cancel: _answer(
            lambda: sweep_run.policies(studio, str(job.get("id")), bool(job.get("write")))))

    return api
