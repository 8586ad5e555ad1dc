"""The procedural world: one shape of one colour moving in a straight line on a plain background.

Captions are exactly ``a {colour} {shape} moving {direction} on a {background} background``.
Everything here is numpy and deterministic given a ``numpy.random.Generator``.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

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
DIRECTIONS = {  # unit motion in image coordinates (x right, y down)
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}

# 144 colour/shape/direction/background combinations; these 14 (~10%) are never shown in training.
# Every single value still occurs in training; each held-out row is a new *combination*.
HELD_OUT = (
    ("red", "circle", "left", "white"),
    ("red", "triangle", "down", "gray"),
    ("red", "square", "up", "black"),
    ("green", "square", "right", "white"),
    ("green", "circle", "up", "gray"),
    ("green", "triangle", "left", "black"),
    ("blue", "triangle", "right", "white"),
    ("blue", "square", "down", "gray"),
    ("blue", "circle", "down", "black"),
    ("yellow", "circle", "right", "gray"),
    ("yellow", "square", "left", "white"),
    ("yellow", "triangle", "up", "black"),
    ("red", "circle", "right", "black"),
    ("blue", "triangle", "left", "gray"),
)

ALL_COMBOS = tuple(itertools.product(COLOURS, SHAPES, DIRECTIONS, BACKGROUNDS))
_HELD = set(HELD_OUT)
TRAIN_COMBOS = tuple(c for c in ALL_COMBOS if c not in _HELD)

# Native clip geometry of the embedded model.
SIZE = 64
FRAMES = 17


def caption(colour: str, shape: str, direction: str, background: str) -> str:
    return f"a {colour} {shape} moving {direction} on a {background} background"


@dataclass(frozen=True)
class ClipParams:
    colour: str
    shape: str
    direction: str
    background: str
    size: float  # side / diameter in pixels
    x0: float  # centre at frame 0
    y0: float
    travel: float  # pixels travelled from the first to the last frame

    @property
    def caption(self) -> str:
        return caption(self.colour, self.shape, self.direction, self.background)

    def centre(self, frame: int, frames: int = FRAMES) -> tuple[float, float]:
        dx, dy = DIRECTIONS[self.direction]
        f = frame / max(frames - 1, 1)
        return self.x0 + dx * self.travel * f, self.y0 + dy * self.travel * f

    def to_dict(self) -> dict:
        return asdict(self)


# Two amounts of variation. "wide": anywhere across the frame, sizes 20-26 px, travel 24-32 px (the teacher's
# first phase); "narrow": the shipped world, near the centre line, sizes 21-24, travel 26-30 (the teacher's
# second phase, the student, the benchmark and the studio's examples).
VARIATION = {
    "wide": dict(size=(20, 26), travel=(24, 32), along=5, across=(20, 44)),
    "narrow": dict(size=(21, 24), travel=(26, 30), along=3, across=(27, 37)),
    # "free": starts anywhere the object is whole, travels 16-30 px and may leave the frame. Teaches continuing a
    # first frame in the caption's direction from wherever the object is (keyframe-first T2V, I2V from any image).
    "free": dict(size=(21, 24), travel=(16, 30)),
}


def sample_params(rng: np.random.Generator, combo=None, size: int = SIZE, variation: str = "narrow") -> ClipParams:
    """Random clip parameters; ``combo`` fixes (colour, shape, direction, background)."""
    if combo is None:
        combo = TRAIN_COMBOS[rng.integers(len(TRAIN_COMBOS))]
    colour, shape, direction, background = combo
    v = VARIATION[variation]
    s = size / 64.0
    obj = rng.uniform(*v["size"]) * s
    travel = rng.uniform(*v["travel"]) * s
    if variation == "free":
        x0, y0 = rng.uniform(obj / 2, size - obj / 2, 2)
        return ClipParams(colour, shape, direction, background, float(obj), float(x0), float(y0), float(travel))
    along = size / 2 + rng.uniform(-v["along"], v["along"]) * s  # centre of the path along the motion axis
    across = rng.uniform(*v["across"]) * s  # position across the motion axis
    dx, dy = DIRECTIONS[direction]
    if dx:
        x0, y0 = along - dx * travel / 2, across
    else:
        x0, y0 = across, along - dy * travel / 2
    return ClipParams(colour, shape, direction, background, float(obj), float(x0), float(y0), float(travel))


_SS = 3  # supersampling for anti-aliased edges


def shape_masks(shape: str, cx, cy, obj: float, size: int = SIZE) -> np.ndarray:
    """Coverage in [0, 1] of ``shape`` centred at (cx[t], cy[t]) for every t: float32 (T, size, size)."""
    cx = np.asarray(cx, np.float32).reshape(-1, 1, 1)
    cy = np.asarray(cy, np.float32).reshape(-1, 1, 1)
    g = ((np.arange(size * _SS, dtype=np.float32) + 0.5) / _SS)
    x = g[None, None, :]
    y = g[None, :, None]
    r = np.float32(obj / 2)
    if shape == "circle":
        m = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    elif shape == "square":
        m = (np.abs(x - cx) <= r) & (np.abs(y - cy) <= r)
    elif shape == "triangle":  # pointing up, base = height = obj, centred on its bounding box
        top = cy - r
        half = (y - top) * 0.5  # half-width grows from 0 at the apex to r at the base
        m = (y >= top) & (y <= cy + r) & (np.abs(x - cx) <= half)
    else:
        raise ValueError(shape)
    t = m.shape[0]
    return m.reshape(t, size, _SS, size, _SS).mean(axis=(2, 4), dtype=np.float32)


def shape_mask(shape: str, cx: float, cy: float, obj: float, size: int = SIZE) -> np.ndarray:
    return shape_masks(shape, [cx], [cy], obj, size)[0]


def render_clip(p: ClipParams, frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """uint8 (T, H, W, 3)."""
    bg = np.array(BACKGROUNDS[p.background], np.float32)
    fg = np.array(COLOURS[p.colour], np.float32)
    cs = [p.centre(t, frames) for t in range(frames)]
    a = shape_masks(p.shape, [c[0] for c in cs], [c[1] for c in cs], p.size, size)[..., None]
    return np.clip(bg * (1 - a) + fg * a + 0.5, 0, 255).astype(np.uint8)


def sample_batch(rng: np.random.Generator, n: int, combos=None, frames: int = FRAMES, size: int = SIZE,
                 variation: str = "narrow"):
    """n clips: (uint8 array (n, T, H, W, 3), list of ClipParams). ``combos`` defaults to TRAIN_COMBOS."""
    combos = TRAIN_COMBOS if combos is None else combos
    params = [sample_params(rng, combos[rng.integers(len(combos))], size, variation) for _ in range(n)]
    return np.stack([render_clip(p, frames, size) for p in params]), params


def eval_params(n: int, held_out: bool, seed: int = 1234, size: int = SIZE) -> list[ClipParams]:
    """A fixed, balanced evaluation set: cycles through the (seen or held-out) combos."""
    rng = np.random.default_rng(seed + (1 if held_out else 0))
    combos = list(HELD_OUT if held_out else TRAIN_COMBOS)
    order = rng.permutation(len(combos))
    return [sample_params(rng, combos[order[i % len(combos)]], size) for i in range(n)]
