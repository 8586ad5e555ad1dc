"""Media: mp4 read-back (frames, size, codec, metadata), thumbnails, GIF, input normalisation."""

import subprocess

import numpy as np
import pytest
from PIL import Image

from studio.engine import media
from studio.errors import MediaError


def test_mp4_reads_back_with_frames_size_and_metadata(tmp_path):
    frames = np.random.default_rng(0).random((17, 48, 64, 3)).astype(np.float32)
    meta = {"prompt": "a red = circle; # \\ moving\nleft 🎬", "seed": 42, "steps": 8, "model": "m"}
    path = media.write_video(frames, tmp_path / "out.mp4", fps=8, metadata=meta)
    back, fps = media.read_video(path)
    assert back.shape == (17, 48, 64, 3) and fps == 8
    assert media.read_metadata(path) == meta
    probe = subprocess.run([media._ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    assert "h264" in probe and "yuv420p" in probe
    # +faststart: the moov atom comes before the media data
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert not list(tmp_path.glob(".*part*"))  # no temporary files left behind


def test_thumbnail_and_gif(tmp_path):
    frames = np.zeros((9, 32, 32, 3), dtype=np.uint8)
    for t in range(9):
        frames[t, :, 2 * t : 2 * t + 8] = 255  # a moving bar: every frame differs
    thumb = media.write_thumbnail(frames, tmp_path / "t.png")
    with Image.open(thumb) as img:
        assert img.format == "PNG" and max(img.size) >= 128
    gif = media.write_gif(frames, tmp_path / "a.gif", fps=8)
    with Image.open(gif) as img:
        assert img.n_frames == 9


def test_fit_frame_covers_and_crops():
    img = Image.new("RGB", (200, 100), (10, 20, 30))
    out = media.fit_frame(img, 64, 48)
    assert out.shape == (48, 64, 3) and tuple(out[0, 0]) == (10, 20, 30)


def test_input_clip_is_resampled_to_the_model_fps(sample_media):
    """read_clip (what V2V uses) keeps the clip's duration at the model's fps: 20 frames at 8 fps = 2.5 s."""
    counts = {fps: len(media.read_clip(sample_media["video"], 32, 32, fps, max_frames=100)) for fps in (4, 8, 16)}
    assert counts == {4: 10, 8: 20, 16: 40}
    assert media.read_clip(sample_media["video"], 32, 32, 16, max_frames=9).shape == (9, 32, 32, 3)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00broken"])
def test_bad_images_raise_media_error(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(MediaError):
        media.load_image(path)


def test_bad_video_raises_media_error(tmp_path):
    path = tmp_path / "bad.mp4"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(MediaError, match="bad.mp4"):
        media.read_video(path)
