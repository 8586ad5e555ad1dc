"""The GPU work of one plan: prompt encoding, conditioning, and one pipeline call per step budget.

``run(job)`` is a generator: ``Progress``, ``Preview`` and ``Chunk`` events as they happen, a ``Frames`` per
budget, or a ``Stopped`` that says why it ended early. It runs wherever the GPU is: on a thread of the studio
process, or in a worker process forked for the call (ZeroGPU on a Space; ``space.run_on_gpu``). So a
``DenoiseJob`` pickles, and nothing here touches the history, the data folder or files: the engine
(``render.py``) records and writes what comes back.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from . import chunks, lora, schedule
from .cancel import CancelToken
from ..errors import MediaError, RenderCancelled, StudioError
from .observer import BudgetShape, StepObserver
from ..models.registry import ModelSpec
from .request import RenderRequest

log = logging.getLogger(__name__)
_LENT: dict[str, object] = {}  # key -> LoadedModel, while lent to GPU work (see ModelRef)
_END = object()


class ModelRef:
    """The model lent to one plan's GPU work. In this process it is the ``LoadedModel`` itself; pickled, it is a
    key into this process's table of lent models, which a worker forked from this process inherits (ZeroGPU
    forks the studio process for each GPU call, so the weights loaded here are there)."""

    def __init__(self, entry, model_id: str | None = None):
        self._entry, self.key = entry, secrets.token_hex(8)
        self.model_id = model_id or (entry.spec.id if entry is not None else None)

    @classmethod
    def by_id(cls, model_id: str) -> "ModelRef":
        """A model named, not lent: a farm worker (farm.py) lends its own copy from its own ModelManager."""
        return cls(None, model_id)

    @classmethod
    @contextmanager
    def lend(cls, entry) -> Iterator["ModelRef"]:
        ref = cls(entry)
        _LENT[ref.key] = entry
        try:
            yield ref
        finally:
            _LENT.pop(ref.key, None)

    def get(self):
        entry = self._entry if self._entry is not None else _LENT.get(self.key)
        if entry is None or entry.pipe is None:
            raise StudioError("The model was unloaded before its render started on the GPU. Try again.")
        return entry

    def __getstate__(self) -> dict:
        return {"key": self.key, "model_id": self.model_id}

    def __setstate__(self, state: dict) -> None:
        self._entry, self.key, self.model_id = None, state["key"], state.get("model_id")


@dataclass
class DenoiseJob:
    model: ModelRef
    spec: ModelSpec
    request: RenderRequest  # validated
    budgets: tuple[int, ...]
    context: np.ndarray | None  # uint8 (T, H, W, 3) I2V / V2V frames, fitted to the request's size and fps
    previews: bool
    stream_chunks: bool
    cancel: CancelToken
    origin_pid: int = field(default_factory=os.getpid)  # the studio process that made the job
    loras: tuple[lora.Adapter, ...] = ()  # active for this job's pipeline calls only


@dataclass
class Frames:
    """One budget's finished frames, uint8 (T, H, W, 3), and its timings (encode on the first budget)."""

    budget_index: int
    steps: int
    frames: np.ndarray = field(repr=False)
    timings: dict = field(default_factory=dict)
    kind: str = "frames"


@dataclass
class Stopped:
    budget_index: int
    reason: str  # cancelled | failed | out_of_memory
    message: str
    kind: str = "stopped"


def run(job: DenoiseJob) -> Iterator:
    """The GPU function: runs the work on a thread (the pipeline reports through callbacks) and yields its events."""
    if os.getpid() != job.origin_pid:
        _forked_worker_threads()
    events: queue.Queue = queue.Queue()
    worker = threading.Thread(target=_work, args=(job, events.put), name="denoise", daemon=True)
    worker.start()
    try:
        while (event := events.get()) is not _END:
            yield event
    finally:
        if worker.is_alive():  # the consumer went away mid-render: stop at the next step
            job.cancel.set()
        worker.join()


def _forked_worker_threads() -> None:
    """In a worker forked from the studio (ZeroGPU): torch's OpenMP pool did not survive the fork, and its first
    parallel CPU op would hang. One CPU thread: the heavy work there is on the GPU."""
    import torch

    torch.set_num_threads(1)


def _work(job: DenoiseJob, emit) -> None:
    index = 0
    try:
        entry = job.model.get()
        pipe = entry.pipe
        t = time.perf_counter()
        extra = conditioning(job.request, job.context, pipe)
        embeds = encode(pipe, job.request)
        encode_s = time.perf_counter() - t
        with lora.applied(pipe, job.loras):
            for index, steps in enumerate(job.budgets):
                if job.cancel.is_set():
                    raise RenderCancelled()
                frames, timings = _with_peak_memory(
                    getattr(entry, "device", ""), lambda: denoise_budget(job, entry, index, steps, embeds, extra, emit))
                emit(Frames(index, steps, frames, dict(timings, encode=encode_s) if index == 0 else timings))
    except RenderCancelled:
        emit(Stopped(index, "cancelled", "Render cancelled."))
    except StudioError as exc:
        emit(Stopped(index, "failed", str(exc)))
    except Exception as exc:  # a bug or an unexpected library error: say what happened
        emit(Stopped(index, *_describe_unexpected(exc)))
    finally:
        emit(_END)


def _with_peak_memory(device: str, budget):
    """Run one budget (``budget()`` -> (frames, timings)); on CUDA its timings carry the peak device memory it
    allocated (``peak_memory_bytes``, torch.cuda.max_memory_allocated); elsewhere nothing is measured."""
    if not str(device).startswith("cuda"):
        return budget()
    import torch

    torch.cuda.reset_peak_memory_stats(device)
    frames, timings = budget()
    return frames, dict(timings, peak_memory_bytes=int(torch.cuda.max_memory_allocated(device)))


def _describe_unexpected(exc: Exception) -> tuple[str, str]:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out_of_memory", "Out of GPU memory. Try fewer frames, a smaller size, or start the studio with --offload model."
    log.exception("render failed")
    return "failed", f"Render failed: {type(exc).__name__}: {exc}"


def encode(pipe, req: RenderRequest) -> dict:
    import torch

    with torch.no_grad():
        prompt_embeds, negative_embeds = pipe.encode_prompt(
            prompt=req.prompt, negative_prompt=req.negative_prompt or None,
            do_classifier_free_guidance=req.guidance_scale > 1.0, max_sequence_length=512,
            device=pipe._execution_device)
    return {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_embeds}


def conditioning(req: RenderRequest, context: np.ndarray | None, pipe) -> dict:
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
    if context is None:
        return extra
    frames = context
    if req.mode == "v2v":
        keep = chunks.fit_context(len(frames), req.frames, tf, template, req.context_frames)
        if keep == 0:
            raise MediaError(
                f"The input video is too short to use as context: it has {len(frames)} frame(s) at "
                f"{req.fps} fps and a {req.frames}-frame render needs at least 1 frame plus room to continue.")
        frames = frames[:keep]
    video = torch.from_numpy(np.array(frames, copy=True)).permute(0, 3, 1, 2).float().div(255.0)[None]
    if causal:  # encode here (the pipeline's own encode_video) so streamed output can include the context
        with torch.no_grad():
            extra["video_latents"] = pipe.encode_video(video, height=req.height, width=req.width)
    else:
        extra["video"] = video
    return extra


def _budget_shape(job: DenoiseJob, index: int, steps: int, pipe, extra: dict, latent_t: int) -> BudgetShape:
    req = job.request
    partition = extra.get("chunk_partition")
    context = extra["video_latents"].shape[1] if "video_latents" in extra else 0
    context_chunks = (len(partition) - chunks.generated_chunks(partition, context)) if partition else 0
    # Keyframe-first T2V (registry t2v = "keyframe"): the first frame alone, then the clip continued from it.
    keyframe = req.mode == "t2v" and partition is None and latent_t > 1 and job.spec.t2v == "keyframe"
    calls = steps * (len(partition) - context_chunks) if partition else steps * (2 if keyframe else 1)
    return BudgetShape(index, steps, tuple(job.budgets), calls, partition, context_chunks, keyframe)


def initial_noise(pipe, req: RenderRequest, latent_t: int):
    """(generator, noise): our own initial noise, drawn exactly as the pipeline would draw it, so previews know z
    at step 0 and a keyframe-first render's first frame uses the clip's own noise."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    generator = torch.Generator("cpu").manual_seed(req.seed)
    shape = (1, pipe.transformer.config.in_channels, latent_t, req.height // pipe.vae_scale_factor_spatial,
             req.width // pipe.vae_scale_factor_spatial)
    return generator, randn_tensor(shape, generator=generator, device=pipe._execution_device, dtype=torch.float32)


def projection_for(entry):
    """The latent->RGB projection for previews, fitted once per loaded model."""
    from . import preview as pv

    if entry.projection is None:
        entry.projection = pv.fit_projection(entry.pipe)
    return entry.projection


def denoise_budget(job: DenoiseJob, entry, index: int, steps: int, embeds: dict, extra: dict,
                   emit) -> tuple[np.ndarray, dict]:
    """One budget: (uint8 frames, {"denoise": s, "decode": s}). Streams chunks when the model and job allow."""
    import torch

    from . import media
    from . import preview as pv

    req, pipe = job.request, entry.pipe
    tf = pipe.vae_scale_factor_temporal
    num_frames = req.frames - 1 if tf == 1 else req.frames  # AnyFlowPipeline adds one frame at tf == 1
    latent_t = (num_frames - 1) // tf + 1 if tf > 1 else num_frames + 1
    shape = _budget_shape(job, index, steps, pipe, extra, latent_t)
    stream = job.stream_chunks and shape.partition is not None and not getattr(pipe.vae, "use_tiling", False)
    grid = schedule.sampler_kwargs(pipe, steps, job.spec.last_jump_sigma)  # num_inference_steps or sigmas
    generator, noise = initial_noise(pipe, req, latent_t)
    observer = StepObserver(shape, emit, job.cancel, init_latents=noise.permute(0, 2, 1, 3, 4),
                            projection=projection_for(entry) if job.previews else None,
                            decoder=pv.StreamingDecoder(pipe.vae) if stream else None)
    if stream and "video_latents" in extra:
        observer.emit_context(extra["video_latents"])
    t_call = time.perf_counter()
    if shape.keyframe:
        first = first_frame(pipe, embeds, noise, grid, req, observer)
        extra = dict(extra, video_latents=first)
        observer.init = torch.cat([first.to(observer.init), observer.init[:, 1:]], 1)  # previews start from it
    output = pipe(**embeds, **extra, latents=noise, height=req.height, width=req.width, num_frames=num_frames,
                  **grid, guidance_scale=req.guidance_scale, generator=generator,
                  output_type="latent" if stream else "np", callback_on_step_end=observer.on_step,
                  callback_on_step_end_tensor_inputs=["latents"] if (stream or job.previews) else [])
    t_end = time.perf_counter()
    if stream:
        return observer.streamed_frames(), {"denoise": t_end - t_call - observer.decode_s,
                                            "decode": observer.decode_s}
    last = observer.last_step_at or t_call
    return media.to_uint8(output.frames[0]), {"denoise": last - t_call, "decode": t_end - last}


def first_frame(pipe, embeds: dict, noise, grid: dict, req: RenderRequest, observer: StepObserver):
    """Keyframe-first T2V: the first frame alone, from the first frame of the render's own noise, at the same
    budget. Returns its latents in the pipeline's context layout (B, 1, C, h, w)."""
    one = 0 if pipe.vae_scale_factor_temporal == 1 else 1  # AnyFlowPipeline adds one frame at tf == 1
    out = pipe(**embeds, latents=noise[:, :, :1].clone(), height=req.height, width=req.width, num_frames=one,
               **grid, guidance_scale=req.guidance_scale, output_type="latent",
               callback_on_step_end=observer.on_first_frame_step, callback_on_step_end_tensor_inputs=[])
    return out.frames.permute(0, 2, 1, 3, 4)
