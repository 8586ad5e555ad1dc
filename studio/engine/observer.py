"""StepObserver: what a render reports at each step of one budget (progress, previews, streamed chunks).

The pipeline calls ``callback_on_step_end(pipe, i, t, kwargs)`` after every transformer call. The observer turns
those calls into events: a ``Progress`` per call; with previews on, a ``Preview`` of the clean-video estimate
(x0, through the model's linear latent->RGB projection, no VAE); for causal (FAR) models with streaming on, a
``Chunk`` with each chunk's decoded frames as soon as its last step is done. It raises ``RenderCancelled`` at the
first step after a cancel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import RenderCancelled
from .events import Chunk, Preview, Progress


@dataclass
class BudgetShape:
    """The fixed facts of one budget's denoising that the events need."""

    index: int  # which budget of the plan
    steps: int
    budgets: tuple[int, ...]  # the whole plan's, to weigh progress
    calls: int  # transformer calls this budget makes (steps x generated chunks, or 2 x steps keyframe-first)
    partition: list[int] | None  # FAR chunk partition in latent frames, None for bidirectional models
    context_chunks: int  # FAR chunks that are given (V2V / I2V context), not generated
    keyframe: bool  # keyframe-first T2V: a first-frame call, then the clip

    def fraction(self, done: int) -> float:
        """Of the whole plan, weighted by steps: a 2-step preview is a small slice of a 2-then-8 plan."""
        before = sum(self.budgets[: self.index])
        return (before + self.steps * min(done, self.calls) / self.calls) / sum(self.budgets)

    def bounds(self, chunk: int) -> tuple[int, int]:
        return sum(self.partition[:chunk]), sum(self.partition[: chunk + 1])


class StepObserver:
    def __init__(self, shape: BudgetShape, emit: Callable, cancel, *, init_latents=None, projection=None,
                 decoder=None):
        self.shape, self.emit, self.cancel = shape, emit, cancel
        self.init = init_latents  # z at step 0 in the callback's (B, T, C, h, w) layout, for previews
        self.projection = projection  # (W, b), or None: no previews
        self.decoder = decoder  # preview.StreamingDecoder, or None: no chunk streaming
        self.done = 0  # transformer calls so far
        self.last_step_at: float | None = None
        self.decode_s = 0.0
        self.streamed: list[np.ndarray] = []
        self.started = time.perf_counter()
        self._prev = None

    # ---- callbacks -------------------------------------------------------------------------
    def on_first_frame_step(self, _pipe, _i, _t, _kwargs) -> dict:
        """Keyframe-first T2V: a step of the first frame's own call."""
        self._check_cancel()
        self.done += 1
        self._progress("first frame")
        return {}

    def on_step(self, pipe, i, _t, kwargs) -> dict:
        self._check_cancel()
        shape = self.shape
        chunk = shape.context_chunks + self.done // shape.steps if shape.partition else None
        self.done += 1
        latents = kwargs.get("latents")
        if self.projection is not None and latents is not None:
            self._preview(pipe, i, chunk, latents)
        if self.decoder is not None and i == shape.steps - 1:
            self.emit_chunk(chunk, latents)
        self.last_step_at = time.perf_counter()
        self._progress("clip" if shape.keyframe else "")
        return {}

    # ---- streamed chunks ---------------------------------------------------------------------
    def emit_context(self, video_latents) -> None:
        """The V2V / I2V context is final from the start: show it at once."""
        for chunk in range(self.shape.context_chunks):
            lo, hi = self.shape.bounds(chunk)
            self.emit_chunk(chunk, video_latents[:, lo:hi])

    def emit_chunk(self, chunk: int, latents) -> None:
        t = time.perf_counter()
        frames = self.decoder.decode(latents)
        self.decode_s += time.perf_counter() - t
        first_frame = sum(len(f) for f in self.streamed)
        self.streamed.append(frames)
        self.emit(Chunk(self.shape.index, self.shape.steps, chunk, len(self.shape.partition), first_frame,
                        time.perf_counter() - self.started, frames))

    def streamed_frames(self) -> np.ndarray:
        return np.concatenate(self.streamed)

    # ---- helpers -----------------------------------------------------------------------------
    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise RenderCancelled()

    def _progress(self, stage: str) -> None:
        s = self.shape
        self.emit(Progress(s.index, s.steps, self.done, s.calls, s.fraction(self.done), stage=stage))

    def _preview(self, pipe, i: int, chunk: int | None, latents) -> None:
        from . import preview as pv

        if i == 0:
            lo, hi = self.shape.bounds(chunk) if self.shape.partition else (0, self.init.shape[1])
            self._prev = self.init[:, lo:hi]
        sigmas = pipe.scheduler.sigmas
        x0 = pv.x0_estimate(self._prev, latents, float(sigmas[i]), float(sigmas[i + 1]))
        self._prev = latents
        self.emit(Preview(self.shape.index, self.shape.steps, self.done, self.shape.calls, chunk,
                          pv.project(x0, *self.projection)))
