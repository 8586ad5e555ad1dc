"""What a render tells its consumer while it runs: typed events, in the order they happen."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


# ---- events ---------------------------------------------------------------------------
@dataclass
class Status:
    message: str
    kind: str = "status"


STOPPED = "The studio stopped: this render waits in the queue and runs when it starts again."


@dataclass
class Requeued(Status):
    """The studio stopped under a job (running or waiting): it stays in the queue and runs at the next start. A
    Status, so a consumer that knows only those shows its message."""

    message: str = STOPPED
    job_id: str = ""
    kind: str = "requeued"


@dataclass
class Progress:
    budget_index: int
    steps: int  # the budget being rendered
    step: int  # transformer calls done in this budget (1-based)
    total: int  # transformer calls this budget needs (steps x generated chunks for FAR)
    fraction: float  # of the whole plan, 0..1
    kind: str = "progress"
    stage: str = ""  # keyframe-first T2V: "first frame", then "clip"


@dataclass
class Result:
    budget_index: int
    steps: int
    role: str  # single | preview | final | compare
    record_id: str
    video_path: str
    thumb_path: str
    timings: dict
    request: dict
    frames: np.ndarray = field(repr=False)
    notes: list = field(default_factory=list)
    kind: str = "result"


@dataclass
class Preview:
    """A cheap look at the render in flight: the clean-video estimate through a linear latent->RGB projection."""

    budget_index: int
    steps: int
    step: int  # transformer calls done in this budget
    total: int
    chunk: int | None  # FAR: the chunk being denoised
    frames: np.ndarray = field(repr=False)  # uint8 (T, h, w, 3) at latent resolution
    kind: str = "preview"


@dataclass
class Chunk:
    """Causal models: frames of the final video, decoded as soon as their chunk is final."""

    budget_index: int
    steps: int
    chunk: int
    chunks: int
    first_frame: int
    seconds: float  # since this budget started
    frames: np.ndarray = field(repr=False)  # uint8 (n, H, W, 3)
    kind: str = "chunk"


@dataclass
class Failed:
    message: str
    budget_index: int
    record_id: str | None
    kind: str = "failed"


@dataclass
class Cancelled:
    budget_index: int
    record_id: str | None
    message: str = "Render cancelled."
    kind: str = "cancelled"


@dataclass
class Waiting:
    """A queued job not running yet: its place among the waiting jobs (1 = next) and how many wait."""

    position: int
    waiting: int
    kind: str = "waiting"


Event = Status | Requeued | Progress | Preview | Chunk | Result | Failed | Cancelled | Waiting
END_OF_EVENTS = object()  # the sentinel a render's event queue ends with (render.py)


