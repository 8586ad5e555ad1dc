"""What a sweep measures from a render's frames (uint8 (T, H, W, 3)); numpy and scikit-image, no torch, no gradio.

- sharpness: the variance of the Laplacian of each frame's grey image (0-255 scale), averaged over frames;
  blurrier frames score lower (``skimage.filters.laplace``).
- temporal coherence: ``change``, the mean absolute change from one frame to the next (0..1 of full scale: how
  much moves), and ``flicker``, the mean absolute second difference in time (|f[t+1] - 2 f[t] + f[t-1]|): smooth
  motion keeps it low, frames that flash or jitter raise it.
- convergence: PSNR (dB) and SSIM (of the grey images) of a render's signature (a small copy of its frames) against the same seed's
  highest-budget render, and their mean absolute difference; does each budget approach the top one steadily?
- image-to-video: PSNR and SSIM of the first frame against the input image, fitted to the render's size.
- video-to-video: PSNR of the kept context frames against the input's, and ``v2v_move``, how far the new frames
  are from a copy of the last context frame (0: frozen or smeared; higher: the clip moves on).
- the judge (studio/engine/judge.py) on the embedded shapes model, when the prompt is of its world's form.
- ``clip_score``: the CLIP text-video score (clip_score.py), when a CLIP model is in the hub cache.
PSNR and SSIM are scikit-image's (``skimage.metrics``); PSNR of identical images is capped at PSNR_CAP dB.
"""

from __future__ import annotations

import re

import numpy as np
from scipy.ndimage import convolve
from skimage.restoration.uft import laplacian
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from . import judge

PSNR_CAP = 100.0
SIGNATURE_FRAMES, SIGNATURE_SIDE, GRID_SIDE = 17, 96, 192
SHAPES_MODELS = ("anyflow-shapes", "anyflow-shapes-teacher")  # the embedded models the judge knows
_SHAPES_PROMPT = re.compile(r"\b(red|green|blue|yellow)\s+(circle|square|triangle)\s+moving\s+(left|right|up|down)"
                            r"\s+on\s+an?\s+(black|white|gray)\s+background", re.IGNORECASE)


def _gray(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) float32 grey, 0-255."""
    f = np.asarray(frames, dtype=np.float32)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114


_LAPLACE_OP = laplacian(2, (3, 3))[1][None]  # skimage.filters.laplace's own 3x3 kernel, one frame deep


def sharpness(frames: np.ndarray) -> list[float]:
    """The variance of the Laplacian of each frame (grey, 0-255): ``skimage.filters.laplace`` of each frame, done
    for all frames in one convolution (the same kernel and borders; a frame at a time cost a sweep 5% of its
    render time)."""
    gray = _gray(frames)
    result = convolve(gray, _LAPLACE_OP, mode="reflect")
    return [float(v) for v in result.reshape(len(gray), -1).var(axis=1)]


def temporal(frames: np.ndarray) -> dict:
    """{"change", "flicker"}: mean absolute first and second differences in time, 0..1 of full scale."""
    f = np.asarray(frames, dtype=np.float32) / 255.0
    change = float(np.abs(np.diff(f, axis=0)).mean()) if len(f) > 1 else 0.0
    flicker = float(np.abs(f[2:] - 2 * f[1:-1] + f[:-2]).mean()) if len(f) > 2 else 0.0
    return {"change": change, "flicker": flicker}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images or clips of one shape (PSNR_CAP for identical ones)."""
    a, b = np.asarray(a), np.asarray(b)
    if np.array_equal(a, b):
        return PSNR_CAP
    value = peak_signal_noise_ratio(a, b, data_range=255)
    return float(min(value, PSNR_CAP)) if np.isfinite(value) else PSNR_CAP


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the grey (luma) images of two uint8 RGB images, or its mean over the frames of two clips (one SSIM
    a frame, not one a channel: a sweep's report measures thousands of frames)."""
    a, b = np.asarray(a), np.asarray(b)
    if np.array_equal(a, b):
        return 1.0
    if a.ndim == 3:
        a, b = a[None], b[None]
    side = min(a.shape[1], a.shape[2])
    win = min(7, side if side % 2 else side - 1)
    ga, gb = _gray(a), _gray(b)
    return float(np.mean([structural_similarity(x, y, data_range=255.0, win_size=win) for x, y in zip(ga, gb)]))


def fidelity(a: np.ndarray, b: np.ndarray) -> dict:
    return {"psnr": psnr(a, b), "ssim": ssim(a, b)}


def _resize(frame: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(frame))
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    return np.asarray(img)


def signature(frames: np.ndarray) -> dict:
    """The small copy of a render kept for convergence and the grid: ``clip`` (at most SIGNATURE_FRAMES frames
    spread over the clip, at most SIGNATURE_SIDE px), ``first`` and ``middle`` (at most GRID_SIDE px)."""
    frames = np.asarray(frames)
    idx = np.linspace(0, len(frames) - 1, num=min(SIGNATURE_FRAMES, len(frames))).round().astype(int)
    return {"clip": np.stack([_resize(frames[i], SIGNATURE_SIDE) for i in idx]),
            "first": _resize(frames[0], GRID_SIDE), "middle": _resize(frames[len(frames) // 2], GRID_SIDE)}


def convergence(clip: np.ndarray, top: np.ndarray) -> dict:
    """A signature clip against the same seed's highest-budget one: PSNR, SSIM, mean absolute difference (0..1)."""
    if clip.shape != top.shape:
        return {}
    mad = float(np.abs(clip.astype(np.float32) - top.astype(np.float32)).mean() / 255.0)
    return {"convergence_psnr": psnr(clip, top), "convergence_ssim": ssim(clip, top), "convergence_mad": mad}


def image_to_video(frames: np.ndarray, image: np.ndarray) -> dict:
    """First-frame fidelity to the input image (already fitted to the render's size)."""
    first = np.asarray(frames)[0]
    if image.shape != first.shape:
        return {}
    return {"i2v_psnr": psnr(first, image), "i2v_ssim": ssim(first, image)}


def video_to_video(frames: np.ndarray, context: np.ndarray) -> dict:
    """The kept context frames against the input's, and how far the new frames move from a copy of the last one."""
    frames, context = np.asarray(frames), np.asarray(context)
    n = min(len(context), len(frames))
    if n == 0 or frames.shape[1:] != context.shape[1:]:
        return {}
    out = {"v2v_context_psnr": psnr(frames[:n], context[:n])}
    new = frames[n:].astype(np.float32)
    if len(new):
        out["v2v_move"] = float(np.abs(new - context[n - 1].astype(np.float32)).mean() / 255.0)
    return out


def shapes_params(prompt: str) -> dict | None:
    """The colour, shape, direction and background a prompt of the shapes world asks for; None otherwise."""
    m = _SHAPES_PROMPT.search(prompt or "")
    if not m:
        return None
    colour, shape, direction, background = (g.lower() for g in m.groups())
    return {"colour": colour, "shape": shape, "direction": direction, "background": background}


def judged(frames: np.ndarray, prompt: str) -> dict:
    """The judge's scores (1 right, 0 wrong) per property and ``judge_all``; {} for a prompt it cannot read."""
    params = shapes_params(prompt)
    if params is None:
        return {}
    scores = judge.score_clip(frames, params)
    out = {f"judge_{k}": float(v) for k, v in scores.items()}
    out["judge_all"] = float(all(scores.values()))
    return out


def measure(frames: np.ndarray, prompt: str, *, judge_on: bool, image: np.ndarray | None = None,
            context: np.ndarray | None = None, clip=None) -> dict:
    """Every per-render metric of one clip (convergence needs the others: see ``convergence``); ``clip``: a
    text-video scorer (clip_score.py) when a CLIP model is cached."""
    frames = np.asarray(frames)
    out = {"sharpness": float(np.mean(sharpness(frames))), **temporal(frames)}
    if clip is not None:
        out["clip_score"] = clip(frames, prompt)
    if image is not None:
        out.update(image_to_video(frames, image))
    if context is not None:
        out.update(video_to_video(frames, context))
    if judge_on:
        out.update(judged(frames, prompt))
    return out
