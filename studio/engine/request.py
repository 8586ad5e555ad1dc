"""RenderRequest: one schema for a render, shared by the UI, the CLI, the history and file metadata;
its validation against a model; and plans of step budgets.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from . import chunks, input_files, lora
from ..errors import InvalidRequest, MediaError
from ..models.registry import MODES, ModelSpec

MIN_STEPS, MAX_STEPS = 1, 128
MAX_PROMPT_CHARS = 2000
MAX_SIDE, MAX_FRAMES = 4096, 1025
MAX_SEED = 2**32 - 1
MAX_PLAN_BUDGETS = 8


# ---- the request ------------------------------------------------------------------
@dataclass(frozen=True)
class RenderRequest:
    prompt: str
    mode: str = "t2v"
    negative_prompt: str = ""
    image: str | None = None  # i2v: path of the first frame
    video: str | None = None  # v2v: path of the clip to continue
    seed: int | None = None  # None: a random seed, recorded
    steps: int = 4
    height: int | None = None  # None: the model's native size
    width: int | None = None
    frames: int | None = None
    fps: int | None = None
    model: str | None = None  # None: the studio's default model
    guidance_scale: float = 1.0  # guidance is distilled into AnyFlow weights: keep 1.0
    context_frames: int | None = None  # v2v: at most this many input frames as context
    context_from: str = "start"  # v2v: take the context from the video's "start" or its "end" (extend)
    extends: str | None = None  # the history id this render continues (extend, storyboard continuity)
    loras: tuple[tuple[str, float], ...] = ()  # (file, strength): a name in <data dir>/loras/ or a path

    @classmethod
    def from_dict(cls, data: dict) -> "RenderRequest":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidRequest({k: "unknown field" for k in unknown})
        if "prompt" not in data:
            raise InvalidRequest({"prompt": "is required"})
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def _as_int(value: Any, name: str, errors: dict, lo: int, hi: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        errors[name] = "must be a whole number"
        return None
    try:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, float):
            if not np.isfinite(number) or number != int(number):
                raise ValueError
        number = int(number)
    except (TypeError, ValueError, OverflowError):
        errors[name] = f"must be a whole number, got {str(value)[:40]!r}"
        return None
    if not lo <= number <= hi:
        errors[name] = f"must be between {lo} and {hi}, got {number}"
        return None
    return number


def validate(req: RenderRequest, spec: ModelSpec, max_file_mb: float = input_files.DEFAULT_LIMIT_MB
             ) -> tuple[RenderRequest, list[str]]:
    """Check every field against the model; fill defaults. Returns (request, notes on adjustments). Input files
    must be regular files of at most ``max_file_mb`` (the studio's --max-upload-mb)."""
    errors: dict[str, str] = {}
    notes: list[str] = []

    prompt = req.prompt if isinstance(req.prompt, str) else ""
    prompt = "".join(ch for ch in prompt if ch.isprintable() or ch in "\n\t").strip()
    if not prompt:
        errors["prompt"] = "is empty: describe the video you want"
    elif len(prompt) > MAX_PROMPT_CHARS:
        errors["prompt"] = f"is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}"
    negative = req.negative_prompt if isinstance(req.negative_prompt, str) else ""
    if len(negative) > MAX_PROMPT_CHARS:
        errors["negative_prompt"] = f"is longer than {MAX_PROMPT_CHARS:,} characters"

    mode = req.mode
    if mode not in MODES:
        errors["mode"] = f"must be one of {', '.join(MODES)}"
    steps = _as_int(req.steps, "steps", errors, MIN_STEPS, MAX_STEPS)
    seed = _as_int(req.seed, "seed", errors, 0, MAX_SEED)
    height = _as_int(req.height if req.height is not None else spec.height, "height", errors, 16, MAX_SIDE)
    width = _as_int(req.width if req.width is not None else spec.width, "width", errors, 16, MAX_SIDE)
    for name, value in (("height", height), ("width", width)):
        if value is not None and value % 16:
            errors[name] = f"must be a multiple of 16 (nearest: {max(16, round(value / 16) * 16)}), got {value}"
    frames = _as_int(req.frames if req.frames is not None else spec.frames, "frames", errors, 1, MAX_FRAMES)
    if frames is not None and (frames - 1) % spec.temporal_factor:
        fixed = chunks.nearest_valid_frames(frames, spec.temporal_factor)
        notes.append(f"frames {frames} -> {fixed}: this model needs {spec.temporal_factor}n+1 frames")
        frames = fixed
    _check_model_limits(spec, frames, height, width, errors)
    fps = _as_int(req.fps if req.fps is not None else spec.fps, "fps", errors, 1, 120)
    context = _as_int(req.context_frames, "context_frames", errors, 1, MAX_FRAMES)
    try:
        guidance = float(req.guidance_scale)
        if not 1.0 <= guidance <= 20.0:
            raise ValueError
    except (TypeError, ValueError):
        errors["guidance_scale"] = "must be a number from 1 to 20 (AnyFlow weights want 1.0)"
        guidance = 1.0
    loras = lora.normalise(req.loras, errors)

    if mode == "i2v" and not req.image:
        errors["image"] = "i2v needs an input image"
    if mode == "v2v" and not req.video:
        errors["video"] = "v2v needs an input video"
    if req.context_from not in ("start", "end"):
        errors["context_from"] = "must be 'start' or 'end'"
    elif req.context_from == "end" and (mode != "v2v" or context is None):
        errors["context_from"] = "'end' is for v2v renders with context_frames"
    if mode != "i2v" and req.image:
        errors["image"] = f"is only used in i2v mode (mode is {mode})"
    if mode != "v2v" and req.video:
        errors["video"] = f"is only used in v2v mode (mode is {mode})"
    for name in ("image", "video"):
        path = getattr(req, name)
        if path and name not in errors:
            try:
                input_files.check(path, "file", max_file_mb)
            except MediaError as exc:
                errors[name] = str(exc)
    if errors:
        raise InvalidRequest(errors)
    if seed is None:
        seed = random.randint(0, MAX_SEED)
    resolved = replace(
        req, prompt=prompt, negative_prompt=negative, mode=mode, steps=steps, seed=seed, height=height,
        width=width, frames=frames, fps=fps, model=spec.id, guidance_scale=guidance, context_frames=context,
        image=str(req.image) if req.image else None, video=str(req.video) if req.video else None, loras=loras,
    )
    return resolved, notes


def _check_model_limits(spec: ModelSpec, frames: int | None, height: int | None, width: int | None,
                        errors: dict) -> None:
    """Frames and sides beyond what the model's position table covers (ModelSpec.max_frames / max_side) fail in
    the middle of a render: refuse them here, naming the model's maximum."""
    if frames is not None and spec.max_frames is not None and frames > spec.max_frames:
        errors["frames"] = (f"{spec.id} renders at most {spec.max_frames} frames (its position table's length); "
                            f"got {frames}")
    for name, value in (("height", height), ("width", width)):
        if value is not None and spec.max_side is not None and value > spec.max_side and name not in errors:
            errors[name] = f"{spec.id} renders at most {spec.max_side} pixels a side; got {value}"


# ---- plans --------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """Step budgets run one after another with the same seed and prompt encoding."""

    budgets: tuple[int, ...]
    kind: str = "single"  # single | refine | compare

    @classmethod
    def single(cls, steps: int) -> "Plan":
        return cls((int(steps),), "single")

    @classmethod
    def refine(cls, preview: int, steps: int) -> "Plan":
        """A cheap preview, then the user's budget. Collapses to one render if the preview is not cheaper."""
        if int(preview) >= int(steps):
            return cls.single(steps)
        return cls((int(preview), int(steps)), "refine")

    @classmethod
    def compare(cls, budgets) -> "Plan":
        seen: list[int] = []
        for b in budgets:
            if int(b) not in seen:
                seen.append(int(b))
        return cls(tuple(seen), "compare")

    def check(self) -> None:
        bad = [b for b in self.budgets if not MIN_STEPS <= b <= MAX_STEPS]
        if not self.budgets or len(self.budgets) > MAX_PLAN_BUDGETS or bad:
            raise InvalidRequest(
                {"budgets": f"give 1 to {MAX_PLAN_BUDGETS} step budgets, each {MIN_STEPS}-{MAX_STEPS}; got {list(self.budgets)}"}
            )

    def role(self, index: int) -> str:
        if self.kind == "refine":
            return "preview" if index == 0 else "final"
        return self.kind


