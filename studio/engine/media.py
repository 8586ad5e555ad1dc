"""Pixels in and out: the only module that encodes or decodes video.

Outputs: h264/yuv420p mp4 with +faststart and the render's parameters in the file's
metadata, PNG thumbnails, GIFs. Inputs: images and videos normalised to a model's
size (resize to cover, centre crop) and frame rate. Every write goes to a
temporary name first and is renamed into place, so no half-written file is left.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import MediaError

METADATA_KEY = "comment"  # mp4 muxer keeps title/comment; we store JSON in comment

Image.MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs with a clear error


def to_uint8(frames) -> np.ndarray:
    """(T, H, W, 3) float in [0, 1] (or uint8) -> uint8."""
    arr = np.asarray(frames)
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.part{path.suffix}")


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def write_video(frames, path: str | Path, fps: int, metadata: dict | None = None, crf: int = 18) -> Path:
    """Write an h264/yuv420p mp4 (faststart) with ``metadata`` as JSON in the comment tag."""
    import imageio_ffmpeg

    path = Path(path)
    arr = to_uint8(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise MediaError(f"expected frames of shape (T, H, W, 3), got {arr.shape}")
    _, h, w, _ = arr.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    params = ["-preset", "veryfast", "-crf", str(crf), "-movflags", "+faststart"]
    if metadata:
        params += ["-metadata", f"{METADATA_KEY}={json.dumps(metadata, ensure_ascii=False)}"]
        if metadata.get("prompt"):
            params += ["-metadata", f"title={metadata['prompt'][:200]}"]
    try:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (w, h),
            fps=fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            macro_block_size=2,  # yuv420p needs even sizes; model sizes are multiples of 16
            output_params=params,
            ffmpeg_log_level="error",
        )
        writer.send(None)
        for frame in arr:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _parse_ffmetadata(text: str) -> dict[str, str]:
    """key=value lines; a backslash escapes the next character (including a newline)."""
    fields: dict[str, str] = {}
    key, cur, escaped = None, [], False
    for ch in text + "\n":
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "=" and key is None:
            key, cur = "".join(cur), []
        elif ch == "\n":
            if key is not None and not key.startswith(";"):
                fields[key.strip().lower()] = "".join(cur)
            key, cur = None, []
        else:
            cur.append(ch)
    return fields


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata written by ``write_video`` (empty dict if none)."""
    proc = subprocess.run(
        [_ffmpeg(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise MediaError(f"{path}: could not read metadata ({proc.stderr.decode(errors='replace').strip()[:200]})")
    fields = _parse_ffmetadata(proc.stdout.decode("utf-8", errors="replace"))
    raw = fields.get(METADATA_KEY)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return {"comment": raw}


def _video_error(path: Path, exc: Exception) -> MediaError:
    text = str(exc).strip()
    if "Invalid data found" in text or "moov atom not found" in text:
        return MediaError(f"{path.name} is not a video ffmpeg can read, or it is damaged. Try an mp4 (h264) file.")
    if "meta information" in text or "no video stream" in text.lower() or "does not contain any stream" in text:
        return MediaError(f"{path.name} has no video stream (is it an audio file?).")
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    return MediaError(f"Could not read {path.name} as a video ({first}). Try an mp4 (h264) file.")


def _check_file(path: Path, kind: str) -> None:
    if not path.is_file():
        raise MediaError(f"{kind} not found: {path}")
    if path.stat().st_size == 0:
        raise MediaError(f"{kind} file is empty (0 bytes): {path.name}")


def _decode(path: Path, output_params: list[str] | None = None, max_frames: int | None = None,
            size: tuple[int, int] | None = None) -> tuple[np.ndarray, float]:
    import imageio_ffmpeg

    params = list(output_params or [])
    if max_frames is not None:
        params += ["-frames:v", str(int(max_frames))]
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", output_params=params or None)
        meta = reader.__next__()
        w, h = size or meta["size"]
        fps = float(meta.get("fps") or 0) or 16.0
        frames = [np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3) for raw in reader]
    except (RuntimeError, OSError, StopIteration, KeyError, ValueError, IOError) as exc:
        raise _video_error(path, exc) from None
    if not frames:
        raise MediaError(f"{path.name} has no video frames.")
    return np.stack(frames), fps


def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video as it is: uint8 (T, H, W, 3) and its frame rate. Raises MediaError with a clear reason."""
    path = Path(path)
    _check_file(path, "Video")
    return _decode(path, max_frames=max_frames)


def read_clip(path: str | Path, width: int, height: int, fps: float, max_frames: int) -> np.ndarray:
    """Decode an input clip ready for a model: resampled to ``fps`` by timestamp (so variable frame rates come
    out evenly spaced), scaled to cover width x height and centre-cropped, at most ``max_frames`` frames.
    ffmpeg does the work while decoding, so a 4K or hours-long file costs only the frames that are used."""
    path = Path(path)
    _check_file(path, "Video")
    vf = (f"fps={fps:g},scale={width}:{height}:force_original_aspect_ratio=increase:flags=lanczos,"
          f"crop={width}:{height}")
    frames, _ = _decode(path, ["-vf", vf], max_frames=max_frames, size=(width, height))
    return frames


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB (first frame of animations, EXIF rotation applied)."""
    path = Path(path)
    _check_file(path, "Image")
    try:
        with Image.open(path) as img:
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                img = Image.fromarray((np.asarray(img, dtype=np.float32) / 257.0).clip(0, 255).astype(np.uint8))
            return img.convert("RGB")
    except Image.DecompressionBombError:
        raise MediaError(f"{path.name} is too large to use (over {Image.MAX_IMAGE_PIXELS:,} pixels).") from None
    except UnidentifiedImageError:
        raise MediaError(f"{path.name} is not an image the studio can read (use PNG, JPEG or WebP).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{path.name} is damaged or incomplete ({exc}).") from None


def fit_frame(img: Image.Image | np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to cover (width, height) keeping aspect, then centre-crop. Returns uint8 (H, W, 3)."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    fitted = ImageOps.fit(img.convert("RGB"), (width, height), method=Image.Resampling.LANCZOS)
    return np.asarray(fitted, dtype=np.uint8)


def write_thumbnail(frames, path: str | Path, max_side: int = 320, metadata: dict | None = None) -> Path:
    """PNG of the middle frame, scaled so its longer side is at most ``max_side``; ``metadata`` as JSON in a
    text chunk named "studio"."""
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    arr = to_uint8(frames)
    img = Image.fromarray(arr[len(arr) // 2])
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if max(img.size) < 128:  # tiny models: scale up so the thumbnail is visible
        scale = 128 // max(img.size)
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    info = PngInfo()
    if metadata:
        info.add_itxt("studio", json.dumps(metadata, ensure_ascii=False))
    tmp = _tmp_path(path)
    img.save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, path)
    return path


def write_png(frame, path: str | Path) -> Path:
    """One uint8 (H, W, 3) frame as a PNG, at full size."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    Image.fromarray(to_uint8(frame)).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def write_gif(frames, path: str | Path, fps: int) -> Path:
    path = Path(path)
    arr = to_uint8(frames)
    images = [Image.fromarray(f) for f in arr]
    tmp = _tmp_path(path)
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / max(fps, 1)), loop=0)
    os.replace(tmp, path)
    return path


def sample_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames spread evenly from first to last."""
    idx = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    return frames[idx]


SHEET_LABEL_H, SHEET_PAD, SHEET_CELL = 22, 6, 128  # contact-sheet geometry: a row is label + cell + pad


def contact_sheet(rows: list[tuple[str, np.ndarray]], path: str | Path, per_row: int = 6,
                  cell: int = SHEET_CELL) -> Path:
    """A PNG with one labelled row per entry: the label, then ``per_row`` frames sampled from its clip."""
    from PIL import ImageDraw, ImageFont

    path = Path(path)
    label_h, pad = SHEET_LABEL_H, SHEET_PAD
    width = pad + per_row * (cell + pad)
    height = pad + len(rows) * (label_h + cell + pad)
    sheet = Image.new("RGB", (width, max(height, label_h + 2 * pad)), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 13)
    except OSError:
        font = ImageFont.load_default()
    y = pad
    for label, frames in rows:
        draw.text((pad, y + 3), label[:110], fill=(235, 235, 235), font=font)
        x = pad
        for frame in sample_frames(to_uint8(frames), per_row):
            img = Image.fromarray(frame)
            img.thumbnail((cell, cell), Image.Resampling.NEAREST if max(img.size) < cell else Image.Resampling.LANCZOS)
            if max(img.size) < cell:
                scale = cell / max(img.size)
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.NEAREST)
            sheet.paste(img, (x, y + label_h))
            x += cell + pad
        y += label_h + cell + pad
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    sheet.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def join_videos(paths: list[str | Path], path: str | Path, fps: int, metadata: dict | None = None,
                skip: list[int] | None = None) -> Path:
    """Concatenate clips into one mp4, in order; clips of another size are fitted to the first one's.
    ``skip``: how many leading frames of each clip to leave out (a continuing shot's context)."""
    clips = [read_video(p)[0][n:] for p, n in zip(paths, skip or [0] * len(paths))]
    if not clips:
        raise MediaError("Nothing to join: no clips.")
    h, w = clips[0].shape[1:3]
    fitted = [c if c.shape[1:3] == (h, w) else np.stack([fit_frame(f, w, h) for f in c]) for c in clips]
    return write_video(np.concatenate(fitted), path, fps, metadata)
