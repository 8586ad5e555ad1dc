"""Write the example inputs for the studio's I2V and V2V tabs under assets/examples/.

    python scripts/make_examples.py

Procedural and deterministic (no downloads, no randomness): plain backgrounds with one
coloured shape, in the vocabulary the shapes model understands
("a <colour> <shape> moving <direction> on a <background> background").

- red_circle_on_black.png      256x256, a centred circle (a generic first frame; the tests use it)
- red_circle_start_left.png    256x256 first frame of "a red circle moving right on a black background": the
                               circle where such a clip starts (the model's world: paths centred in the frame)
- red_circle_start_top.png     the same for "... moving down ..."
- blue_square_moving_right.mp4 256x256, 24 frames at 8 fps, for V2V (the square slides right)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.engine import media  # noqa: E402

OUT = ROOT / "assets" / "examples"
SIZE = 256


def circle_image(colour=(230, 40, 40), background=(0, 0, 0), centre=(128, 128), radius=44) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), background)
    cx, cy = centre
    ImageDraw.Draw(img).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    return img


def square_clip(frames=24, colour=(40, 80, 230), background=(255, 255, 255), side=80) -> np.ndarray:
    clip = np.empty((frames, SIZE, SIZE, 3), dtype=np.uint8)
    top = (SIZE - side) // 2
    for t in range(frames):
        img = Image.new("RGB", (SIZE, SIZE), background)
        left = int(round(16 + t * (SIZE - side - 32) / (frames - 1)))
        ImageDraw.Draw(img).rectangle((left, top, left + side, top + side), fill=colour)
        clip[t] = np.asarray(img)
    return clip


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    image = OUT / "red_circle_on_black.png"
    circle_image().save(image)
    # a narrow clip's object is ~22 of 64 px and starts ~14 px before the centre: 45 / 72 px at 256
    starts = {"red_circle_start_left.png": (72, 128), "red_circle_start_top.png": (128, 72)}
    for name, centre in starts.items():
        circle_image(centre=centre, radius=45).save(OUT / name)
    video = media.write_video(square_clip(), OUT / "blue_square_moving_right.mp4", fps=8,
                              metadata={"prompt": "a blue square moving right on a white background"})
    for path in (image, *(OUT / n for n in starts), video):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
