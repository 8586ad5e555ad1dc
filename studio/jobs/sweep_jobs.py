"""The one place where a sweep meets the render queue: it queues a sweep's renders as ordinary render jobs and
measures each as the dispatcher finishes it. Everything else about sweeps (metrics, report, cliffs, policies,
review, CLI, tab) reads SweepStore items and never the job's shape.

A sweep item (prompt x seed x model x budget) is one render job of a single budget:
    {"request": RenderRequest dict, "sweep": {"id": SWEEP_ID, "item": ITEM_ID}}
queued with ``source="sweep"``. So it goes through the dispatcher (and so a farm), its history row is an ordinary
row (``plan_id`` = the job id), it waits in the queue across a restart, and it can be cancelled. The queue-aware
caps do not count a sweep's own jobs (``Dispatcher._run`` passes the sweep id as the batch to leave out): a
sweep that capped its own budgets would measure the wrong thing.

What this needs from a job-kind interface (studio/jobs after issue 22): a kind that plans one budget from a
pinned request (seed included), owns nothing else, calls ``on_result`` with each finished budget's frames and
history id, and on a re-run keeps a finished budget; the batch id the caps leave out; ``source`` "sweep".
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from ..engine import clip_score, media, metrics as sweep_metrics
from ..errors import StudioError
from ..store.sweeps import SweepStore

log = logging.getLogger(__name__)
SOURCE = "sweep"


def render_job(spec: dict, item: dict) -> dict:
    """The render job for one sweep item."""
    prompt = spec["prompts"][item["prompt_index"]]
    request = {"prompt": prompt["prompt"], "mode": spec.get("mode") or "t2v", "seed": item["seed"],
               "steps": item["steps"], "model": item["model"]}
    for key in ("image", "video"):
        if prompt.get(key):
            request[key] = prompt[key]
    for key in ("negative_prompt", "frames", "height", "width"):
        if spec.get(key) is not None:
            request[key] = spec[key]
    return {"request": request, "sweep": {"id": item["sweep_id"], "item": item["id"]}}


def queue(studio, sid: str, stream) -> dict[str, dict]:
    """Queue the items of a sweep that have no render yet on ``stream`` (a dispatcher JobStream); {job id: item}
    of the jobs followed. An item whose job runs now is followed, not queued again, and so is one whose job still
    waits from an earlier run (a studio that died) when this dispatcher runs the whole queue; a dispatcher that runs
    only its own jobs (a command-line run) takes such a job out and queues it again, so that it runs here."""
    store = SweepStore(studio.history)
    spec = store.get(sid)["spec"]
    measure_missing(studio, sid)  # a render that finished unmeasured is measured, not rendered again
    followed = {}
    for item in store.items(sid):
        if item.get("render_id"):
            continue
        state = item.get("job_state")
        if state == "running" or (state == "queued" and not stream.dispatcher.own_only):
            stream.add(item["job_id"])
            followed[item["job_id"]] = item
            continue
        if state == "queued":
            try:
                stream.dispatcher.cancel(item["job_id"])
            except StudioError:  # it started or finished meanwhile
                pass
        jid = stream.submit(render_job(spec, item), source=SOURCE,
                            plan={"kind": "single", "budgets": [item["steps"]]})
        store.set_job(item["id"], jid)
        followed[jid] = item
    return followed


def sweep_of(job: dict) -> dict | None:
    """The job's sweep tag ({"id", "item"}), or None for a job that is not a sweep's."""
    tag = job.get("sweep") if isinstance(job, dict) else None
    return tag if isinstance(tag, dict) and tag.get("item") else None


# ---- measuring ------------------------------------------------------------------------------------------------
def _inputs(studio, request: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(I2V input image, V2V context frames) fitted to the render's size, as the engine read them."""
    from ..engine.request import RenderRequest

    w, h = request["width"], request["height"]
    if request.get("mode") == "i2v" and request.get("image"):
        return media.fit_frame(media.load_image(request["image"]), w, h), None
    if request.get("mode") == "v2v" and request.get("video"):
        clip = media.read_clip(request["video"], w, h, request["fps"], max_frames=request["frames"])
        keep = studio.engine.context_frames_for(RenderRequest.from_dict(request), len(clip))
        return None, clip[:keep]
    return None, None


def _judge_on(studio, model: str) -> bool:
    try:
        source = studio.models.registry.get(model).source
    except StudioError:
        return False
    return any(source == f"embedded:models/{m}" for m in sweep_metrics.SHAPES_MODELS)


def measure(studio, sid: str, item_id: str, render_id: str, frames: np.ndarray, request: dict) -> None:
    """Measure one finished render, keep its signature, record both on its item."""
    started = time.perf_counter()
    try:
        image, context = _inputs(studio, request)
    except StudioError as exc:  # the input file went away: measure what does not need it
        log.warning("sweep %s: input of %s unreadable: %s", sid, item_id, exc)
        image = context = None
    metrics = sweep_metrics.measure(frames, request.get("prompt") or "", judge_on=_judge_on(studio, request["model"]),
                                    image=image, context=context, clip=clip_score.cached_scorer())
    path = signature_path(studio, sid, item_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.part.npz")
    np.savez_compressed(tmp, **sweep_metrics.signature(frames))
    os.replace(tmp, path)
    metrics["metrics_seconds"] = round(time.perf_counter() - started, 4)
    SweepStore(studio.history).set_result(item_id, render_id, metrics, str(path))


def signature_path(studio, sid: str, item_id: str) -> Path:
    return sweep_folder(studio, sid) / "signatures" / f"{item_id}.npz"


def sweep_folder(studio, sid: str) -> Path:
    return Path(studio.settings.renders_dir) / "sweeps" / sid


def on_result(studio, job: dict, event) -> None:
    """Called with each finished budget of a sweep's job (job_kinds.SweepJob.on_result; ``job``: its data)."""
    tag = sweep_of(job)
    if tag is None:
        return
    try:
        measure(studio, str(tag["id"]), str(tag["item"]), event.record_id, event.frames, event.request)
    except Exception:  # the render itself is fine: its metrics are measured from its file at the report
        log.exception("sweep %s: measuring %s failed", tag["id"], tag["item"])


def measure_missing(studio, sid: str) -> int:
    """Items whose render finished but was never measured (the studio died in between): measured from the file."""
    store = SweepStore(studio.history)
    done = 0
    for item_id, render_id in store.unmeasured(sid):
        row = studio.history.get(render_id)
        try:
            frames, _ = media.read_video(row["video_path"])
            measure(studio, sid, item_id, render_id, frames, dict(row["request"], steps=row["steps"]))
        except (StudioError, TypeError, KeyError, ValueError, OSError) as exc:
            log.warning("sweep %s: cannot measure %s from its file: %s", sid, render_id, exc)
            continue
        done += 1
    return done
