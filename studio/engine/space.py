"""Hugging Face Space support: ZeroGPU wrapping and sessions, doing nothing elsewhere.

``run_on_gpu(fn, job, duration, cancel)`` runs a render's GPU work (``denoise.run``) through
``spaces.GPU(duration=...)`` where the ``spaces`` package is installed (on a Space): ZeroGPU runs it in a
worker process forked for the call and forwards each yield, so previews and chunks still stream. Only the
GPU work goes there; the history, the files and cancellation stay in the studio process. Everywhere else it
calls the function directly. ``gpu(duration)`` is the same decorator for other generator functions.
"""

from __future__ import annotations

import os
import re
import secrets
from typing import Callable, Iterator

SESSION_RE = re.compile(r"^[0-9a-f]{32}$")


def running_on_space() -> bool:
    """True on a Hugging Face Space (SPACE_ID is set there) or when STUDIO_SPACE=1 asks for Space mode."""
    return bool(os.environ.get("SPACE_ID")) or os.environ.get("STUDIO_SPACE", "").lower() in {"1", "true", "yes"}


def gpu(duration: int | Callable[..., int] = 60):
    """Decorator: ``spaces.GPU(duration=duration)`` if the spaces package is present, else the identity."""
    try:
        import spaces  # provided by the Space platform
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def run_on_gpu(fn: Callable[..., Iterator], job, duration: int, cancel) -> Iterator:
    """``fn(job)``'s events: through ``spaces.GPU`` where that package exists, with ``cancel`` (a CancelToken)
    mirrored to the worker process while it runs; else ``fn(job)`` itself."""
    try:
        import spaces  # provided by the Space platform
    except ImportError:
        return fn(job)
    return _in_worker(spaces.GPU(duration=duration)(fn), job, cancel)


def _in_worker(wrapped, job, cancel) -> Iterator:
    with cancel.crossing():
        yield from wrapped(job)


def estimate_gpu_seconds(steps_total: int, frames: int, height: int, width: int, family: str = "causal",
                         seconds_per_step_native: float = 1.2, overhead: float = 15.0, cap: int = 300) -> int:
    """A ZeroGPU duration for a render: steps x per-step cost (scaled by size, native 480x832x81 on an H100 at
    ~1.2 s/step for 1.3B) plus a fixed overhead for moving the pipeline and decoding, capped."""
    scale = (frames * height * width) / (81 * 480 * 832)
    scale = scale**1.5 if family == "bidirectional" else scale  # full attention grows faster than chunked
    return int(min(cap, overhead + steps_total * seconds_per_step_native * max(scale, 0.05)))


def new_session_id() -> str:
    """128 random bits: a visitor's renders live under this name, which no one can guess."""
    return secrets.token_hex(16)


def valid_session(session: str | None) -> bool:
    return bool(session) and bool(SESSION_RE.match(session))
