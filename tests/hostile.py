"""Hostile input files, made on the fly (used by test_hardening.py)."""

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from studio.engine import media


def _ffmpeg(*args: str) -> None:
    subprocess.run([media._ffmpeg(), "-v", "error", "-y", *args], check=True, capture_output=True)


def make_images(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    out["zero_bytes"] = root / "zero.png"
    out["zero_bytes"].write_bytes(b"")
    out["not_an_image"] = root / "notes.png"
    out["not_an_image"].write_text("this is a text file, not a picture")
    out["corrupt"] = root / "corrupt.jpg"
    good = root / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(good)
    out["corrupt"].write_bytes(good.read_bytes()[:200])
    out["huge"] = root / "huge.png"
    Image.new("1", (20000, 20000)).save(out["huge"])  # 400 Mpx, a few KB on disk
    out["cmyk"] = root / "cmyk.jpg"
    Image.new("CMYK", (50, 30), (0, 255, 255, 0)).save(out["cmyk"])
    out["sixteen_bit"] = root / "sixteen.png"
    Image.fromarray((np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 20)).save(out["sixteen_bit"])
    out["animated"] = root / "anim.gif"
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(out["animated"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["rgba"] = root / "rgba.png"
    Image.new("RGBA", (33, 17), (255, 0, 0, 128)).save(out["rgba"])
    return out


def make_videos(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    out["zero_bytes"] = root / "zero.mp4"
    out["zero_bytes"].write_bytes(b"")
    out["garbage"] = root / "garbage.mp4"
    out["garbage"].write_bytes(bytes(range(256)) * 40)
    out["audio_only"] = root / "audio.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(out["audio_only"]))
    out["one_frame"] = root / "one.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "1", "-pix_fmt", "yuv420p",
            str(out["one_frame"]))
    out["odd_size"] = root / "odd.avi"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=63x37:rate=12:duration=2", "-c:v", "mpeg4", str(out["odd_size"]))
    out["variable_fps"] = root / "vfr.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=25:duration=2", "-vf",
            "setpts='if(gt(N,10),PTS+0.5/TB,PTS)'", "-fps_mode", "vfr", "-pix_fmt", "yuv420p", str(out["variable_fps"]))
    out["hours_long"] = root / "long.mp4"  # 2 hours at 1 fps, tiny frames: only the frames used are decoded
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:size=32x32:rate=1:duration=7200", "-c:v", "libx264", "-preset",
            "ultrafast", "-pix_fmt", "yuv420p", str(out["hours_long"]))
    return out
