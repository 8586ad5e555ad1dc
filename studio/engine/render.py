"""The render engine: plans of step budgets, from a validated request to files and history rows.

One schema for a request: the UI, the CLI, the history and the file metadata all use
``RenderRequest.to_dict()``. A render runs in three parts, each in its own module:

- here, in the studio process: validate, cap the plan, check memory, read the inputs, load and lend the model,
  then turn what the GPU work returns into files (``_write_outputs``) and one history row per budget;
- ``denoise.run``, the GPU work (prompt encoding, conditioning, one stock diffusers pipeline call per budget),
  run directly, or through ``space.run_on_gpu`` in a ZeroGPU worker process on a Space;
- ``observer.StepObserver``, the per-step callback: progress, previews and streamed FAR chunks.

``render()`` yields Status, Progress, Preview, Chunk, then a Result per budget, or Failed / Cancelled.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from . import chunks, denoise, lora, media, restore, space
from ..store import disk
from .cancel import CancelToken
from ..config import Settings
from ..errors import InvalidRequest, ModeNotServed, RenderCancelled, StudioError
from .events import END_OF_EVENTS, Cancelled, Chunk, Event, Failed, Preview, Progress, Result, Status  # noqa: F401
from ..store.history import HistoryStore, new_id
from ..models.manager import ModelManager
from .policy import Policies, cap_budgets
from ..models.registry import MODES, ModelSpec
from .request import (MAX_FRAMES, MAX_PLAN_BUDGETS, MAX_SEED, MAX_STEPS, MIN_STEPS, Plan,  # noqa: F401
                      RenderRequest, validate)

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """A validated request, its (possibly capped) plan and what to record about it."""

    req: RenderRequest
    plan: Plan
    notes: list[str]
    policy: str | None
    asked: tuple[int, ...]  # the budget each plan entry was asked as, before any cap
    capped: bool
    session: str | None
    previews: bool = False
    stream_chunks: bool = True
    plan_id: str | None = None  # a queued job's id: run again, it takes its rows back (HistoryStore.start)


class _OutOfMemory(StudioError):
    """The GPU work ran out of memory: the model is unloaded so the next render starts clean."""


def _stopped_error(stop: "denoise.Stopped") -> StudioError:
    kinds = {"cancelled": RenderCancelled, "out_of_memory": _OutOfMemory}
    return kinds.get(stop.reason, StudioError)(stop.message)


# ---- inputs -----------------------------------------------------------------------------
@dataclass
class _Inputs:
    frames: np.ndarray | None = None  # uint8 (T, H, W, 3), already fitted to the request's size and fps


def _read_inputs(req: RenderRequest) -> _Inputs:
    """Decode and normalise the conditioning image/video before any model work."""
    if req.mode == "i2v":
        img = media.load_image(req.image)
        return _Inputs(frames=media.fit_frame(img, req.width, req.height)[None])
    if req.mode == "v2v" and req.context_from == "end":  # extend: the clip's last frames
        return _Inputs(frames=media.read_clip(req.video, req.width, req.height, req.fps, None)[-req.context_frames:])
    if req.mode == "v2v":
        # Context never exceeds the render's own length, so that is all we decode.
        return _Inputs(frames=media.read_clip(req.video, req.width, req.height, req.fps, max_frames=req.frames))
    return _Inputs()


class RenderEngine:
    def __init__(self, models: ModelManager, history: HistoryStore, settings: Settings,
                 policies: Policies | None = None):
        self.models = models
        self.history = history
        self.settings = settings
        self.policies = policies or Policies.load(settings.user_policies_file)
        self._active = 0  # renders started and not finished (the queue the caps look at)
        self._active_lock = threading.Lock()
        self._workers: dict[threading.Thread, CancelToken] = {}  # render threads running now (cancel_running)
        self.executor = None  # None: GPU work in this process; else e.g. farm.RayFarm (its .run(work) yields events)

    @property
    def active(self) -> int:
        with self._active_lock:
            return self._active

    # ---- planning helpers the UI and CLI use ---------------------------------------
    def spec_for(self, req: RenderRequest) -> ModelSpec:
        spec = self.models.registry.get(req.model or self.settings.default_model)
        if req.mode in MODES and not spec.serves(req.mode):
            others = [s.id for s in self.models.registry.serving(req.mode)]
            hint = f" Models that do: {', '.join(others)}." if others else ""
            raise ModeNotServed(f"Model '{spec.id}' does not do {req.mode.upper()} (it serves {', '.join(spec.modes)}).{hint}")
        return spec

    def validate(self, req: RenderRequest) -> tuple[RenderRequest, list[str]]:
        spec = self.models.with_limits(self.spec_for(req))  # frames and sides its position table covers
        req, notes = validate(req, spec, self.settings.max_upload_mb)
        self.check_loras(req, spec)
        return req, notes

    def check_loras(self, req: RenderRequest, spec: ModelSpec) -> None:
        """Refuse, before any work, LoRA files that are missing or not made for this model (BadLora)."""
        if not req.loras:
            return
        shapes = lora.transformer_shapes(self.models.transformer_config(spec.id), spec.family)
        for file, _ in req.loras:
            lora.check(lora.resolve(file, self.settings.loras_dir, not self.settings.space), shapes, spec.id)

    def _adapters(self, req: RenderRequest) -> tuple:
        """The request's LoRAs as the GPU work applies them (paths are refused on a Space)."""
        return lora.adapters(req.loras, self.settings.loras_dir, not self.settings.space)

    def chunk_template(self, spec: ModelSpec) -> list[int] | None:
        """The causal model's chunk_partition template (from its config), None for bidirectional models."""
        if spec.family != "causal":
            return None
        cfg = self.models.transformer_config(spec.id)
        return list(cfg.get("chunk_partition") or chunks.DEFAULT_TEMPLATE)

    def context_frames_for(self, req: RenderRequest, available: int) -> int:
        """How many of ``available`` input frames (at the model's fps) a V2V render keeps as context."""
        spec = self.spec_for(req)
        total = req.frames or spec.frames
        return chunks.fit_context(available, total, spec.temporal_factor, self.chunk_template(spec), req.context_frames)

    # ---- rendering ----------------------------------------------------------------------
    def render(self, request: RenderRequest, plan: Plan | None = None, cancel: threading.Event | None = None,
               *, policy: str | None = None, waiting: int | None = None, session: str | None = None,
               previews: bool = False, stream_chunks: bool = True, plan_id: str | None = None) -> Iterator[Event]:
        """Run a plan; yield events as they happen. Invalid requests raise StudioError before anything runs.

        ``policy`` names a budget policy (its steps and optional size/length apply to the request; with no
        plan it is the plan). ``waiting`` is the number of renders queued ahead (default: the engine's own
        count of active renders); above the policies' threshold every budget is capped, and the render's
        notes and history row say so. ``previews`` adds a Preview event per step (cheap: no VAE);
        ``stream_chunks`` makes causal models emit each chunk's final frames as soon as they are decoded.
        ``session`` (Space mode) names the visitor whose folder the files go to: 32 hex digits. ``plan_id``: the
        queued job's id (dispatcher.py), so a job run again after a crash keeps one history row per budget: the
        budgets an earlier run finished ``ok`` are kept as they are (not rendered, no event), the others rendered
        with the same request (seed included), taking back the rows that run left unfinished.
        """
        if session is not None and not space.valid_session(session):
            raise InvalidRequest({"session": "a session id is 32 hexadecimal digits"})
        if policy is not None:
            request = self.policies.get(policy).apply(request)
        req, notes = self.validate(request)
        plan = plan or Plan.single(req.steps)
        plan.check()
        with self._active_lock:
            ahead = self._active if waiting is None else waiting
            self._active += 1
        try:
            job = replace(self._plan_job(req, plan, notes, policy, ahead, session, previews, stream_chunks),
                          plan_id=plan_id)
            yield from self._on_worker(job, CancelToken(cancel))
        finally:
            with self._active_lock:
                self._active -= 1

    def _plan_job(self, req, plan, notes, policy, ahead, session, previews, stream_chunks) -> "_Job":
        """The job to run: the plan with every budget capped where the queue or Space mode says so."""
        asked, capped = plan.budgets, False
        max_steps, reason = self.policies.limit(ahead, self.settings.space)
        if max_steps is not None and any(b > max_steps for b in plan.budgets):
            budgets, asked = cap_budgets(plan.budgets, max_steps)
            notes = notes + [f"{reason}: {list(plan.budgets)} -> {list(budgets)}."]
            plan, capped = replace(plan, budgets=budgets), True
        return _Job(req, plan, notes, policy, asked, capped, session, previews, stream_chunks)

    def run(self, request: RenderRequest, plan: Plan | None = None) -> list[Result]:
        """Render and return the results; raise StudioError on failure or cancellation."""
        results = []
        for event in self.render(request, plan):
            if isinstance(event, Result):
                results.append(event)
            elif isinstance(event, Failed):
                raise StudioError(event.message)
            elif isinstance(event, Cancelled):
                raise RenderCancelled()
        return results

    def _start_row(self, job: "_Job", plan_id: str, index: int) -> str:
        return self.history.start(
            job.req.to_dict(), job.plan.budgets[index], plan_id, job.plan.kind, index, policy=job.policy,
            requested_steps=job.asked[index], capped=job.capped and job.asked[index] != job.plan.budgets[index],
            session=job.session, take_back=job.plan_id is not None,
        )

    def cancel_running(self, timeout: float = 10.0) -> int:
        """Cancel every render running now and wait (up to ``timeout`` s in all) until each has recorded itself as
        cancelled; for a clean shutdown. Returns how many were running."""
        with self._active_lock:
            running = dict(self._workers)
        for token in running.values():
            token.set()
        deadline = time.monotonic() + timeout
        for worker in running:
            worker.join(max(0.0, deadline - time.monotonic()))
        return len(running)

    def _on_worker(self, job: "_Job", cancel: CancelToken) -> Iterator[Event]:
        """Run the plan on a worker thread and yield its events; a consumer that stops listening cancels it."""
        events: queue.Queue = queue.Queue()
        # The caller's context variables go with it (Gradio's request: spaces.GPU charges that visitor's quota).
        worker = threading.Thread(target=contextvars.copy_context().run, args=(self._run_plan, job, events.put, cancel),
                                  name="render", daemon=True)
        with self._active_lock:
            self._workers[worker] = cancel
        worker.start()
        finished = False
        try:
            while (event := events.get()) is not END_OF_EVENTS:
                yield event
            finished = True
        finally:
            if not finished:
                cancel.set()
            worker.join()
            with self._active_lock:
                self._workers.pop(worker, None)

    def _todo(self, job: "_Job") -> list[int]:
        """The plan's budget indices to render: all of them, less those a queued job's earlier run finished."""
        kept = self.history.finished_budgets(job.plan_id) if job.plan_id else {}
        return [i for i in range(len(job.plan.budgets)) if i not in kept]

    def _run_plan(self, job: "_Job", emit, cancel: CancelToken) -> None:
        """Rows, inputs, the model, then the GPU work's events turned into Results. Every way out of here leaves
        the current row finished: ok, failed or cancelled. The GPU work sees only the budgets to render (``todo``);
        rows and events number them as the whole plan does."""
        req, plan_id = job.req, job.plan_id or new_id()
        index, rid = 0, None
        try:
            todo = self._todo(job)
            if not todo:
                return
            index = todo[0]
            rid = self._start_row(job, plan_id, index)
            if self.executor is None:  # a farm worker checks its own device instead (farm.FarmWorker.render)
                self._check_memory(req)
            inputs = _read_inputs(req)
            first = self._load(req, emit) if self.executor is None else {"load": 0.0}  # a farm worker loads its own
            waited = time.perf_counter()
            with self._lent(req.model) as model:
                first["wait"] = time.perf_counter() - waited
                work = denoise.DenoiseJob(model, self.spec_for(req), req, tuple(job.plan.budgets[i] for i in todo),
                                          inputs.frames,
                                          job.previews, job.stream_chunks, cancel,
                                          loras=self._adapters(req))
                runner = self.executor.run if self.executor else lambda w: space.run_on_gpu(
                    denoise.run, w, self._gpu_seconds(w), cancel)
                for event in runner(work):
                    if isinstance(event, denoise.Stopped):
                        index = todo[min(event.budget_index, len(todo) - 1)]
                        raise _stopped_error(event)
                    if not isinstance(event, denoise.Frames):
                        emit(event)
                        continue
                    at = event.budget_index
                    index = todo[at]
                    emit(self._finish_budget(job, replace(event, budget_index=index), rid, first if at == 0 else {}))
                    rid = self._start_row(job, plan_id, todo[at + 1]) if at + 1 < len(todo) else None
        except RenderCancelled:
            self._close_row(rid, "cancelled", "Cancelled by the user.")
            emit(Cancelled(index, rid))
        except StudioError as exc:
            if isinstance(exc, _OutOfMemory):
                self._unload_after_oom(req.model)
            self._close_row(rid, "failed", str(exc))
            emit(Failed(str(exc), index, rid))
        except Exception as exc:  # a full disk, or a bug here (not in the GPU work): keep serving, say what happened
            if disk.is_full(exc, self.settings.data_dir):
                message = str(disk.full(self.settings.data_dir))
                log.warning("render stopped: %s (%s: %s)", message, type(exc).__name__, exc)
            else:
                log.exception("render failed")
                message = f"Render failed: {type(exc).__name__}: {exc}"
            self._close_row(rid, "failed", message)
            emit(Failed(message, index, rid))
        finally:
            emit(END_OF_EVENTS)

    @contextmanager
    def _lent(self, model_id: str) -> Iterator["denoise.ModelRef"]:
        """The model the GPU work uses: this process's, lent; on a farm only its id (the worker lends its own)."""
        if self.executor is not None:
            yield denoise.ModelRef.by_id(model_id)
            return
        with self.models.lend(model_id) as entry, denoise.ModelRef.lend(entry) as model:
            yield model

    def _close_row(self, rid: str | None, status: str, error: str) -> None:
        """Finish the row a render stopped on. On a full disk that write fails too: the row stays "running" (the
        next start marks it interrupted), and the render's own message says why."""
        if not rid:
            return
        try:
            self.history.finish(rid, status, error=error)
        except sqlite3.DatabaseError as exc:
            if not disk.is_full(exc, self.settings.data_dir):
                raise
            log.warning("could not record render %s as %s: the disk is full", rid, status)

    def _load(self, req: RenderRequest, emit) -> dict:
        """Load the model if needed, saying so as it goes; returns the first budget's load timing."""
        if self.models.is_loaded(req.model):
            self.models.get(req.model)  # marks it recently used
            return {"load": 0.0}
        emit(Status(f"Loading model {req.model}..."))
        started = time.perf_counter()
        entry = self.models.get(req.model, progress=lambda m: emit(Status(m)))
        load_s = time.perf_counter() - started
        emit(Status(f"Loaded {req.model} in {load_s:.1f} s: {self.models.mode_label(entry)} ({entry.memory_reason})."))
        return {"load": load_s}

    def _gpu_seconds(self, work: "denoise.DenoiseJob") -> int:
        """A ZeroGPU duration for this plan's GPU work (unused off a Space)."""
        req = work.request
        return space.estimate_gpu_seconds(sum(work.budgets), req.frames, req.height, req.width, work.spec.family)

    def _finish_budget(self, job: "_Job", done: "denoise.Frames", rid: str, first: dict) -> Result:
        """Write one budget's files, finish its history row, and say so as a Result."""
        index, steps, frames = done.budget_index, done.steps, done.frames
        video_path, thumb_path, write_s = self._write_outputs(job, rid, steps, frames)
        timings = {**first, **done.timings, "write": write_s}
        worker = timings.pop("worker", None)  # a farm worker names itself (node, GPU): kept in the timings JSON
        peak = timings.pop("peak_memory_bytes", None)  # CUDA only (denoise.py): bytes, not seconds
        timings = {k: round(v, 4) for k, v in timings.items()}
        timings["total"] = round(sum(v for k, v in timings.items() if k != "wait"), 4)
        if worker:
            timings["worker"] = worker
        if peak is not None:
            timings["peak_memory_bytes"] = int(peak)
        self.history.finish(rid, "ok", timings=timings, video_path=video_path, thumb_path=thumb_path)
        request = dict(job.req.to_dict(), steps=steps)
        return Result(index, steps, job.plan.role(index), rid, video_path, thumb_path, timings, request, frames,
                      notes=list(job.notes) if index == 0 else [])

    def _write_outputs(self, job: "_Job", rid: str, steps: int, frames: np.ndarray) -> tuple[str, str, float]:
        """(mp4 path, thumbnail path, seconds): the files of one budget, in the session's folder in Space mode."""
        t = time.perf_counter()
        out_dir = self.settings.renders_dir / (job.session or "") / time.strftime("%Y-%m-%d")
        video_path = out_dir / f"{rid}.mp4"
        metadata = restore.file_metadata(rid, job.plan.kind, job.req, steps)
        media.write_video(frames, video_path, job.req.fps, metadata)
        thumb_path = media.write_thumbnail(frames, out_dir / f"{rid}.png", metadata=metadata)
        return str(video_path), str(thumb_path), time.perf_counter() - t

    def _check_memory(self, req: RenderRequest) -> None:
        """Refuse, before any work, a render whose estimated memory cannot fit (see memory.py)."""
        from ..models import memory

        memory.check_render_fits(self.models, self.models.registry.get(req.model), req)

    def _unload_after_oom(self, model_id: str) -> None:
        """After an out-of-memory error, free the device rather than leave the model half on it."""
        try:
            self.models.unload(model_id)
        except StudioError:  # another render is using it; it will be retried on the next load
            pass
