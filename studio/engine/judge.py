"""A judge for the procedural "shapes" world of the embedded model (issue 4).

Given generated frames (uint8, (T, H, W, 3)) and the parameters the clip was asked for
(colour, shape, direction, background), it decides what it *sees* and scores each property:

- background: the median colour of the border pixels, nearest palette background;
- object colour: the pixels far from that background, majority of nearest palette colours;
- direction: a least-squares line through the object's centroid track (the centroid of
  non-background pixels per frame); the dominant axis and sign of the displacement, which
  must be at least ``min_travel`` pixels (a still or flickering object gets no direction);
- shape: how much of its bounding box the object fills (square ~1.0, circle ~0.79,
  triangle ~0.5), majority over frames.

Pure numpy; no gradio, no torch. ``score_batch`` aggregates accuracies over many clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

# The world's palette (kept in step with training/data.py; a test checks they agree).
COLOURS = {
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 70, 240),
    "yellow": (240, 220, 30),
}
BACKGROUNDS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
METRICS = ("colour", "background", "direction", "shape")

_FILL_SQUARE = 0.83  # fill ratio above: square (the VAE softens corners: 0.84-0.97 on decoded squares)
_FILL_CIRCLE = 0.67  # between: circle (0.74-0.82); below: triangle (0.52-0.60)


@dataclass
class Verdict:
    colour: str | None
    background: str
    direction: str | None
    shape: str | None
    travel: float  # pixels travelled by the centroid (least-squares fit)
    fill: float  # median fill ratio of the bounding box
    detected: float  # fraction of frames with an object

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _nearest(rgb: np.ndarray, palette: Mapping[str, tuple]) -> str:
    names = list(palette)
    cols = np.array([palette[n] for n in names], np.float32)
    return names[int(np.argmin(((cols - rgb) ** 2).sum(-1)))]


def _get(p: Any, key: str):
    return p[key] if isinstance(p, Mapping) else getattr(p, key)


def judge_clip(frames: np.ndarray, min_area: int = 12, min_travel: float = 6.0) -> Verdict:
    """What the judge sees in one clip: uint8 (T, H, W, 3) (floats in [0, 1] are accepted)."""
    v = np.asarray(frames)
    if v.dtype != np.uint8:
        v = np.clip(v * 255.0 + 0.5, 0, 255).astype(np.uint8)
    v = v.astype(np.float32)
    t_len, h, w, _ = v.shape

    border = np.concatenate(
        [v[:, 0].reshape(-1, 3), v[:, -1].reshape(-1, 3), v[:, :, 0].reshape(-1, 3), v[:, :, -1].reshape(-1, 3)]
    )
    bg = np.median(border, axis=0)
    background = _nearest(bg, BACKGROUNDS)

    dist = np.sqrt(((v - bg) ** 2).sum(-1))  # (T, H, W)
    mask = dist > 80.0
    if mask.sum() < min_area:
        return Verdict(None, background, None, None, 0.0, 0.0, 0.0)

    # Object colour: the nearest palette colour of each object pixel, majority vote.
    names = list(COLOURS)
    cols = np.array([COLOURS[n] for n in names], np.float32)
    px = v[mask]
    votes = np.bincount(np.argmin(((px[:, None, :] - cols[None]) ** 2).sum(-1), axis=1), minlength=len(names))
    colour = names[int(np.argmax(votes))]
    contrast = max(float(np.sqrt(((np.array(COLOURS[colour], np.float32) - bg) ** 2).sum())), 1.0)
    alpha = np.clip(dist / contrast, 0.0, 1.0)

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, ts, fills = [], [], [], []
    for t in range(t_len):
        m = alpha[t] > 0.5
        if m.sum() < min_area:
            continue
        a = alpha[t] * (alpha[t] > 0.25)
        cx.append(float((a * xs).sum() / a.sum()))
        cy.append(float((a * ys).sum() / a.sum()))
        ts.append(t)
        rows = np.where(m.any(1))[0]
        colsx = np.where(m.any(0))[0]
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, colsx[0], colsx[-1] + 1
        fills.append(float(alpha[t, y0:y1, x0:x1].sum() / ((y1 - y0) * (x1 - x0))))
    detected = len(ts) / t_len
    if len(ts) < max(2, t_len // 2):
        return Verdict(colour, background, None, None, 0.0, 0.0, detected)

    ts_a = np.array(ts, np.float32)
    sx = np.polyfit(ts_a, np.array(cx), 1)[0] * (t_len - 1)
    sy = np.polyfit(ts_a, np.array(cy), 1)[0] * (t_len - 1)
    travel = float(max(abs(sx), abs(sy)))
    if travel < min_travel:
        direction = None
    elif abs(sx) >= abs(sy):
        direction = "right" if sx > 0 else "left"
    else:
        direction = "down" if sy > 0 else "up"

    kinds = ["square" if f > _FILL_SQUARE else "circle" if f > _FILL_CIRCLE else "triangle" for f in fills]
    shape = max(SHAPES, key=kinds.count)
    return Verdict(colour, background, direction, shape, travel, float(np.median(fills)), detected)


def score_clip(frames: np.ndarray, params: Any) -> dict[str, bool]:
    """Per-metric correctness of one clip against the parameters it was asked for."""
    verdict = judge_clip(frames)
    return {
        "colour": verdict.colour == _get(params, "colour"),
        "background": verdict.background == _get(params, "background"),
        "direction": verdict.direction == _get(params, "direction"),
        "shape": verdict.shape == _get(params, "shape"),
    }


def score_batch(videos: Iterable[np.ndarray], params: Iterable[Any]) -> dict[str, float]:
    """Accuracy per metric (0..1) over a batch, plus ``all`` (every metric right) and ``n``."""
    rows = [score_clip(v, p) for v, p in zip(videos, params)]
    n = len(rows)
    out: dict[str, float] = {m: (sum(r[m] for r in rows) / n if n else 0.0) for m in METRICS}
    out["all"] = sum(all(r.values()) for r in rows) / n if n else 0.0
    out["n"] = n
    return out


# ---- prompts outside the world (what the UI says beside a render of an unknown prompt) ---------------------
GLUE = {"a", "an", "the", "moving", "moves", "on", "background", "to", "going", "of"}
VOCABULARY = set(COLOURS) | set(BACKGROUNDS) | set(SHAPES) | set(DIRECTIONS) | {"grey"} | GLUE


def speaks_shapes(spec) -> bool:
    """Whether a model draws this world: the embedded models trained in this repo (not the random-weight ones)."""
    return spec.source_kind == "embedded" and "random weights" not in (spec.title or "").lower()


def unknown_words(prompt: str) -> list[str]:
    """The prompt's words this world has no meaning for, in order, once each."""
    words = [w.strip(".,;:!?\"'()").lower() for w in str(prompt or "").split()]
    out: list[str] = []
    for word in words:
        if word and word not in VOCABULARY and word not in out:
            out.append(word)
    return out


def described(verdict: Verdict) -> str:
    """The verdict as a caption: "a red circle moving left on a black background" (parts it could not see left out)."""
    thing = " ".join(p for p in (verdict.colour, verdict.shape or ("shape" if verdict.colour else None)) if p)
    text = f"a {thing}" if thing else "no clear shape"
    if verdict.direction:
        text += f" moving {verdict.direction}"
    return f"{text} on a {verdict.background} background"


def off_world_note(prompt: str, frames: np.ndarray) -> str | None:
    """For a prompt with words outside the shapes world: which words, and what the model drew instead. None for a
    prompt inside the world."""
    unknown = unknown_words(prompt)
    if not unknown:
        return None
    shown = ", ".join(f"“{w}”" for w in unknown[:6])
    return (f"The embedded model knows only its shapes world (colours, circle/square/triangle, left/right/up/down, "
            f"black/white/gray backgrounds): {shown} mean nothing to it. It drew {described(judge_clip(frames))}.")
