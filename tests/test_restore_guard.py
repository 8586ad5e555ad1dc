"""Restore from a file in the UI: paths in an uploaded file's metadata are data, not promises. Only an input
History's re-run would re-use comes back, and in Space mode only a session's own render's inputs."""

import json
import shutil
from dataclasses import replace

from PIL import Image, PngImagePlugin

from studio.engine import restore, space
from studio.engine.render import RenderRequest
from studio.app.services import Studio
from studio.ui import restore_file

IMAGE_AT = 6  # where Create's image is in restore_file.outputs


def crafted_png(path, **meta):
    info = PngImagePlugin.PngInfo()
    info.add_text(restore.PNG_KEY, json.dumps({"studio": restore.MARK, "prompt": "a fox", "mode": "i2v",
                                               "steps": 1, **meta}))
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def test_a_metadata_path_outside_the_studio_is_not_given_to_create(studio, tmp_path):
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    for named in ("/etc/passwd", str(outside)):
        png = crafted_png(tmp_path / "crafted.png", image=named, id="no-such-row")
        out = restore_file.on_restore(studio, str(png))
        assert out[IMAGE_AT] is None, named
        assert "give it again" in out[restore_file.STATUS_AT]


def test_a_history_row_pointing_outside_the_studio_is_not_given_to_create(studio, sample_media, tmp_path):
    req = RenderRequest(prompt="a red square moving", mode="i2v", image=str(sample_media["image"]), seed=3, steps=1)
    result = studio.engine.run(req)[0]  # its input lies outside the studio's folders
    out = restore_file.on_restore(studio, result.thumb_path)
    assert out[IMAGE_AT] is None and "give it again" in out[restore_file.STATUS_AT]


def test_a_space_session_gets_only_its_own_renders_input_back(settings, sample_media):
    studio = Studio.open(replace(settings, space=True))
    try:
        a, b = space.new_session_id(), space.new_session_id()
        image = studio.settings.renders_dir / a / "inputs" / "first.png"
        image.parent.mkdir(parents=True)
        shutil.copy(sample_media["image"], image)
        req = RenderRequest(prompt="a red square moving", mode="i2v", image=str(image), seed=3, steps=1)
        result = [e for e in studio.engine.render(req, session=a) if e.kind == "result"][0]
        theirs = restore_file.on_restore(studio, result.thumb_path, {"sid": b})
        assert theirs[IMAGE_AT] is None and "give it again" in theirs[restore_file.STATUS_AT]
        mine = restore_file.on_restore(studio, result.thumb_path, {"sid": a})
        assert mine[IMAGE_AT] == str(image.resolve())
    finally:
        studio.close()
