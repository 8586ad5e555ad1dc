"""Review fixes in studio/jobs/extend.py: an extension keeps the original's LoRAs and guidance, its thumbnail restores,
and a join that fails on the disk marks the row failed."""

import numpy as np
import pytest

from studio.jobs import extend
from studio.engine import media, restore
from studio.errors import StudioError
from studio.engine.render import RenderRequest


def _original(studio, model="t-bidi-kf"):
    return studio.engine.run(RenderRequest(prompt="a red ball rolls", model=model, seed=3, steps=2))[-1]


def _source(request: dict) -> extend.Source:
    frames = np.zeros((9, 32, 32, 3), np.uint8)
    return extend.Source("clip.mp4", frames, 8, {"id": "r1", "request": request})


def test_an_extension_inherits_the_originals_loras_and_guidance_unless_given(studio):
    old = {"prompt": "p", "model": "t-bidi-kf", "loras": [["ink.safetensors", 0.5]], "guidance_scale": 3.0}
    req, _ = extend.extension_request(studio.engine, _source(old), 8)
    assert req.loras == (("ink.safetensors", 0.5),) and req.guidance_scale == 3.0
    req, _ = extend.extension_request(studio.engine, _source(old), 8, loras=(), guidance_scale=1.5)
    assert req.loras == () and req.guidance_scale == 1.5


def test_the_extensions_thumbnail_restores(studio):
    result, _ = extend.extend_once(studio.engine, _original(studio).record_id, 8)
    meta = restore.read(result.thumb_path)
    assert meta["prompt"] == "a red ball rolls" and meta.get("joined_frames") == 17


def test_a_join_that_fails_on_the_disk_marks_the_row_failed(studio, monkeypatch):
    original = _original(studio)

    def full_disk(frames, path, fps, metadata=None, _write=media.write_video, **k):
        if metadata and "joined_frames" in metadata:  # the join's write, not the render's
            raise OSError(28, "No space left on device")
        return _write(frames, path, fps, metadata, **k)

    monkeypatch.setattr(media, "write_video", full_disk)
    with pytest.raises(StudioError, match="Joining the extension failed.*No space left"):
        extend.extend_once(studio.engine, original.record_id, 8)
    rows = studio.history.children(original.record_id)
    assert [r["status"] for r in rows] == ["failed"] and "No space left" in rows[0]["error"]
