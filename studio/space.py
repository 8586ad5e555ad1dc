"""Hugging Face Space support: ZeroGPU wrapping and sessions, doing nothing elsewhere.

``gpu(duration)`` applies ``spaces.GPU(duration=...)`` where the ``spaces`` package is
installed (on a Space) and returns the function unchanged everywhere else, so
generators stay generators and streaming works the same locally.
"""

from __future__ import annotations

import os
import re
import secrets
from typing import Callable

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
