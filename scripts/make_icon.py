"""Draw the studio's icon (assets/icon.png, 256x256): three flow lines on a dark rounded square.

    .venv/bin/python scripts/make_icon.py
"""

from pathlib import Path

from PIL import Image, ImageDraw

SIZE, SCALE = 256, 4  # drawn 4x larger, then downscaled: smooth edges


def draw() -> Image.Image:
    s = SIZE * SCALE
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 5, fill=(24, 26, 38, 255))
    colours = [(255, 122, 69), (255, 196, 84), (96, 180, 255)]
    for i, colour in enumerate(colours):
        y0 = s * (0.30 + 0.20 * i)
        points = [(s * (0.16 + 0.0068 * k * 10), y0 + s * 0.07 * ((k % 4) in (1, 2)) - s * 0.035) for k in range(11)]
        d.line(points, fill=colour, width=s // 14, joint="curve")
        x, y = points[-1]
        d.ellipse((x - s / 20, y - s / 20, x + s / 20, y + s / 20), fill=colour)
    return img.resize((SIZE, SIZE), Image.LANCZOS)


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "assets" / "icon.png"
    draw().save(out, optimize=True)
    print(out)
