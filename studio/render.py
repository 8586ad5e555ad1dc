"""RenderRequest, RenderEvents, plans of step budgets, and the engine that runs them.

One schema for a request: the UI, the CLI, the history and the file metadata all
use ``RenderRequest.to_dict()``. The engine calls the stock diffusers AnyFlow
pipelines; it only adds what a studio needs around them: validated inputs, one
prompt encoding shared by every budget of a plan, per-step events, cancellation,
timings, files and a history row per budget.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from . import chunks, media, schedule
from .config import Settings
from .errors import MediaError, ModeNotServed, NotEnoughMemory, RenderCancelled, StudioError
from .events import _DONE, Cancelled, Chunk, Event, Failed, Preview, Progress, Result, Status  # noqa: F401
from .history import HistoryStore, new_id
from .models import ModelManager
from .policy import Policies, cap_budgets
from .registry import MODES, ModelSpec
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


# ---- inputs -----------------------------------------------------------------------------
@dataclass
class _Inputs:
    frames: np.ndarray | None = None  # uint8 (T, H, W, 3), already fitted to the request's size and fps


def _read_inputs(req: RenderRequest) -> _Inputs:
    """Decode and normalise the conditioning image/video before any model work."""
    if req.mode == "i2v":
        img = media.load_image(req.image)
        return _Inputs(frames=media.fit_frame(img, req.width, req.height)[None])
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
        return validate(req, self.spec_for(req))

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
               previews: bool = False, stream_chunks: bool = True) -> Iterator[Event]:
        """Run a plan; yield events as they happen. Invalid requests raise StudioError before anything runs.

        ``policy`` names a budget policy (its steps and optional size/length apply to the request; with no
        plan it is the plan). ``waiting`` is the number of renders queued ahead (default: the engine's own
        count of active renders); above the policies' threshold every budget is capped, and the render's
        notes and history row say so. ``previews`` adds a Preview event per step (cheap: no VAE);
        ``stream_chunks`` makes causal models emit each chunk's final frames as soon as they are decoded.
        """
        if policy is not None:
            request = self.policies.get(policy).apply(request)
        req, notes = self.validate(request)
        plan = plan or Plan.single(req.steps)
        plan.check()
        with self._active_lock:
            ahead = self._active if waiting is None else waiting
            self._active += 1
        try:
            asked, cap_note = plan.budgets, None
            max_steps, reason = self.policies.limit(ahead, self.settings.space)
            if max_steps is not None and any(b > max_steps for b in plan.budgets):
                budgets, asked = cap_budgets(plan.budgets, max_steps)
                cap_note = f"{reason}: {list(plan.budgets)} -> {list(budgets)}."
                notes = notes + [cap_note]
                plan = replace(plan, budgets=budgets)
            job = _Job(req, plan, notes, policy, asked, cap_note is not None, session, previews, stream_chunks)
            cancel = cancel or threading.Event()
            events: queue.Queue = queue.Queue()
            worker = threading.Thread(target=self._run_plan, args=(job, events.put, cancel), name="render", daemon=True)
            worker.start()
            finished = False
            try:
                while True:
                    event = events.get()
                    if event is _DONE:
                        finished = True
                        break
                    yield event
            finally:
                if not finished:  # the consumer went away before the end: stop the render
                    cancel.set()
                worker.join()
        finally:
            with self._active_lock:
                self._active -= 1

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
            session=job.session,
        )

    def _run_plan(self, job: "_Job", emit, cancel: threading.Event) -> None:
        req, plan = job.req, job.plan
        plan_id = new_id()
        rid: str | None = None
        index = 0
        try:
            rid = self._start_row(job, plan_id, 0)
            self._check_memory(req)
            inputs = _read_inputs(req)
            started = time.perf_counter()
            was_loaded = self.models.is_loaded(req.model)
            if not was_loaded:
                emit(Status(f"Loading model {req.model}..."))
            loaded_model = self.models.get(req.model, progress=lambda m: emit(Status(m)))
            load_s = 0.0 if was_loaded else time.perf_counter() - started
            if not was_loaded:
                emit(Status(f"Loaded {req.model} in {load_s:.1f} s: {self.models.mode_label(loaded_model)} "
                            f"({loaded_model.memory_reason})."))
            waited = time.perf_counter()
            with self.models.lend(req.model) as loaded:
                wait_s = time.perf_counter() - waited
                pipe = loaded.pipe
                extra = self._conditioning(req, inputs, pipe)
                t = time.perf_counter()
                embeds = self._encode(pipe, req)
                encode_s = time.perf_counter() - t
                for index, steps in enumerate(plan.budgets):
                    if index > 0:
                        rid = self._start_row(job, plan_id, index)
                    if cancel.is_set():
                        raise RenderCancelled()
                    first = {"wait": wait_s, "load": load_s, "encode": encode_s} if index == 0 else {}
                    result = self._render_budget(job, index, steps, pipe, embeds, extra, rid, first, emit, cancel)
                    self.history.finish(rid, "ok", timings=result.timings, video_path=result.video_path,
                                        thumb_path=result.thumb_path)
                    emit(result)
                    rid = None
        except RenderCancelled:
            if rid:
                self.history.finish(rid, "cancelled", error="Cancelled by the user.")
            emit(Cancelled(index, rid))
        except StudioError as exc:
            if rid:
                self.history.finish(rid, "failed", error=str(exc))
            emit(Failed(str(exc), index, rid))
        except Exception as exc:  # a bug or an unexpected library error: keep serving, say what happened
            import torch

            message = self._describe_unexpected(exc)
            if isinstance(exc, torch.OutOfMemoryError):
                self._unload_after_oom(req.model)
            else:
                log.exception("render failed")
            if rid:
                self.history.finish(rid, "failed", error=message)
            emit(Failed(message, index, rid))
        finally:
            emit(_DONE)

    def _projection(self, pipe):
        """The latent->RGB projection for previews, fitted once per loaded pipeline."""
        from . import preview as pv

        cached = getattr(pipe, "_studio_projection", None)
        if cached is None:
            cached = pv.fit_projection(pipe)
            pipe._studio_projection = cached
        return cached

    def _check_memory(self, req: RenderRequest) -> None:
        """Refuse, before any work, a render whose estimated memory cannot fit (see memory.py)."""
        from . import memory

        memory.check_render_fits(self.models, self.models.registry.get(req.model), req)

    def _unload_after_oom(self, model_id: str) -> None:
        """After an out-of-memory error, free the device rather than leave the model half on it."""
        try:
            self.models.unload(model_id)
        except StudioError:  # another render is using it; it will be retried on the next load
            pass

    @staticmethod
    def _describe_unexpected(exc: Exception) -> str:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return ("Out of GPU memory. Try fewer frames, a smaller size, or start the studio with --offload model.")
        return f"Render failed: {type(exc).__name__}: {exc}"

    def _encode(self, pipe, req: RenderRequest) -> dict:
        import torch

        with torch.no_grad():
            prompt_embeds, negative_embeds = pipe.encode_prompt(
                prompt=req.prompt,
                negative_prompt=req.negative_prompt or None,
                do_classifier_free_guidance=req.guidance_scale > 1.0,
                max_sequence_length=512,
                device=pipe._execution_device,
            )
        return {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_embeds}

    def _conditioning(self, req: RenderRequest, inputs: _Inputs, pipe) -> dict:
        """Pipeline kwargs for the FAR chunk partition and the I2V/V2V context."""
        import torch
        from diffusers import AnyFlowFARPipeline

        tf = pipe.vae_scale_factor_temporal
        causal = isinstance(pipe, AnyFlowFARPipeline)
        extra: dict = {}
        template = None
        if causal:
            template = list(pipe.transformer.config.chunk_partition)
            extra["chunk_partition"] = chunks.chunk_partition(chunks.latent_frames(req.frames, tf), template)
        if inputs.frames is not None:
            frames = inputs.frames
            if req.mode == "v2v":
                keep = chunks.fit_context(len(frames), req.frames, tf, template, req.context_frames)
                if keep == 0:
                    raise MediaError(
                        f"The input video is too short to use as context: it has {len(frames)} frame(s) at "
                        f"{req.fps} fps and a {req.frames}-frame render needs at least 1 frame plus room to continue."
                    )
                frames = frames[:keep]
            video = torch.from_numpy(np.array(frames, copy=True)).permute(0, 3, 1, 2).float().div(255.0)[None]
            if causal:  # encode here (the pipeline's own encode_video) so streamed output can include the context
                with torch.no_grad():
                    extra["video_latents"] = pipe.encode_video(video, height=req.height, width=req.width)
            else:
                extra["video"] = video
        return extra

    @staticmethod
    def _keyframe(pipe, embeds, noise, steps, grid, req, plan, index, calls, state, cancel, emit):
        """The first frame of a keyframe-first T2V render: a one-frame call on the first frame of the render's own
        noise, at the same step budget (``grid``: its sampler kwargs). Returns its latents in the pipeline's context
        layout (B, 1, C, h, w)."""
        def on_step(_pipe, i, _t, kwargs):
            if cancel.is_set():
                raise RenderCancelled()
            state["done"] += 1
            fraction = (sum(plan.budgets[:index]) + steps * state["done"] / calls) / sum(plan.budgets)
            emit(Progress(index, steps, state["done"], calls, fraction, stage="first frame"))
            return {}

        one = 0 if pipe.vae_scale_factor_temporal == 1 else 1  # AnyFlowPipeline adds one frame at tf == 1
        out = pipe(**embeds, latents=noise[:, :, :1].clone(), height=req.height, width=req.width, num_frames=one,
                   **grid, guidance_scale=req.guidance_scale, output_type="latent",
                   callback_on_step_end=on_step, callback_on_step_end_tensor_inputs=[])
        return out.frames.permute(0, 2, 1, 3, 4)

    def _render_budget(self, job, index, steps, pipe, embeds, extra, rid, first, emit, cancel) -> Result:
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        from . import preview as pv

        req, plan, notes = job.req, job.plan, job.notes
        tf = pipe.vae_scale_factor_temporal
        partition = extra.get("chunk_partition")
        context = extra["video_latents"].shape[1] if "video_latents" in extra else 0
        context_chunks = (len(partition) - chunks.generated_chunks(partition, context)) if partition else 0
        num_frames = req.frames - 1 if tf == 1 else req.frames  # AnyFlowPipeline adds one frame at tf == 1
        latent_t = (num_frames - 1) // tf + 1 if tf > 1 else num_frames + 1
        # Keyframe-first T2V (registry t2v = "keyframe"): the first frame alone, then the clip continued from it.
        spec = self.spec_for(req)
        keyframe = req.mode == "t2v" and partition is None and latent_t > 1 and spec.t2v == "keyframe"
        grid = schedule.sampler_kwargs(pipe, steps, spec.last_jump_sigma)  # num_inference_steps or sigmas
        calls = steps * (len(partition) - context_chunks) if partition else steps * (2 if keyframe else 1)
        stream = job.stream_chunks and partition is not None and not getattr(pipe.vae, "use_tiling", False)

        # Our own initial noise, drawn exactly as the pipeline would draw it, so previews know z_t at step 0.
        generator = torch.Generator("cpu").manual_seed(req.seed)
        shape = (1, pipe.transformer.config.in_channels, latent_t, req.height // pipe.vae_scale_factor_spatial,
                 req.width // pipe.vae_scale_factor_spatial)
        noise = randn_tensor(shape, generator=generator, device=pipe._execution_device, dtype=torch.float32)
        init = noise.permute(0, 2, 1, 3, 4)  # the callback's (B, T, C, h, w) layout
        projection = self._projection(pipe) if job.previews else None
        decoder = pv.StreamingDecoder(pipe.vae) if stream else None
        started = time.perf_counter()
        state = {"done": 0, "last": None, "prev": None, "decode": 0.0, "frames": []}

        def bounds(chunk: int) -> tuple[int, int]:
            return sum(partition[:chunk]), sum(partition[: chunk + 1])

        def emit_chunk(chunk: int, latents) -> None:
            t = time.perf_counter()
            frames = decoder.decode(latents)
            state["decode"] += time.perf_counter() - t
            first_frame = sum(len(f) for f in state["frames"])
            state["frames"].append(frames)
            emit(Chunk(index, steps, chunk, len(partition), first_frame, time.perf_counter() - started, frames))

        if stream and context:
            for c in range(context_chunks):  # the context is final from the start: show it at once
                lo, hi = bounds(c)
                emit_chunk(c, extra["video_latents"][:, lo:hi])

        def on_step(_pipe, i, _t, kwargs):
            if cancel.is_set():
                raise RenderCancelled()
            k = state["done"]
            state["done"] += 1
            chunk = context_chunks + k // steps if partition else None
            latents = kwargs.get("latents")
            if projection is not None and latents is not None:
                if i == 0:
                    lo, hi = bounds(chunk) if partition else (0, init.shape[1])
                    state["prev"] = init[:, lo:hi]
                sigmas = _pipe.scheduler.sigmas
                x0 = pv.x0_estimate(state["prev"], latents, float(sigmas[i]), float(sigmas[i + 1]))
                state["prev"] = latents
                emit(Preview(index, steps, state["done"], calls, chunk, pv.project(x0, *projection)))
            if decoder is not None and i == steps - 1:
                emit_chunk(chunk, latents)
            state["last"] = time.perf_counter()
            # weighted by steps: a 2-step preview is a small slice of a 2-then-8 plan
            fraction = (sum(plan.budgets[:index]) + steps * min(state["done"], calls) / calls) / sum(plan.budgets)
            emit(Progress(index, steps, state["done"], calls, fraction, stage="clip" if keyframe else ""))
            return {}

        t_call = time.perf_counter()
        if keyframe:
            extra = dict(extra, video_latents=self._keyframe(pipe, embeds, noise, steps, grid, req, plan, index,
                                                               calls, state, cancel, emit))
            init = torch.cat([extra["video_latents"].to(init), init[:, 1:]], 1)  # previews start from the keyframe
        output = pipe(
            **embeds,
            **extra,
            latents=noise,
            height=req.height,
            width=req.width,
            num_frames=num_frames,
            **grid,
            guidance_scale=req.guidance_scale,
            generator=generator,
            output_type="latent" if stream else "np",
            callback_on_step_end=on_step,
            callback_on_step_end_tensor_inputs=["latents"] if (stream or projection is not None) else [],
        )
        t_end = time.perf_counter()
        if stream:
            frames = np.concatenate(state["frames"])
            decode_s = state["decode"]
            denoise_s = t_end - t_call - decode_s
        else:
            frames = media.to_uint8(output.frames[0])
            last = state["last"] or t_call
            denoise_s, decode_s = last - t_call, t_end - last

        t = time.perf_counter()
        day = time.strftime("%Y-%m-%d")
        # Space mode: each visitor's files live under their unguessable session id.
        out_dir = self.settings.renders_dir / (job.session or "") / day
        video_path = out_dir / f"{rid}.mp4"
        metadata = {"studio": "AnyFlow Studio", "id": rid, "steps": steps, "plan": plan.kind, **req.to_dict()}
        metadata["steps"] = steps
        media.write_video(frames, video_path, req.fps, metadata)
        thumb_path = media.write_thumbnail(frames, out_dir / f"{rid}.png")
        write_s = time.perf_counter() - t

        timings = dict(first)
        timings.update(denoise=denoise_s, decode=decode_s, write=write_s)
        timings = {k: round(v, 4) for k, v in timings.items()}
        timings["total"] = round(sum(v for k, v in timings.items() if k != "wait"), 4)
        request = dict(req.to_dict(), steps=steps)
        return Result(index, steps, plan.role(index), rid, str(video_path), str(thumb_path), timings, request, frames,
                      notes=list(notes) if index == 0 else [])
