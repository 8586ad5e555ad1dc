"""Restore a render from its file (issue 17, item 3): the mp4 and the PNG thumbnail carry the request, without
the server's paths; restoring gives the same request back; flags given alongside --from override it."""

import json
from pathlib import Path

import pytest
from lora_files import make_lora

from studio.cli import commands as cli
from studio.engine import media, restore
from studio.errors import NoStudioMetadata
from studio.engine.render import RenderRequest

TINY_INNER = 24


@pytest.fixture()
def rendered(studio):
    """A t-far render with settings away from the defaults and a LoRA from the loras folder."""
    make_lora(studio.settings.loras_dir / "ink.safetensors", TINY_INNER)
    req = RenderRequest(prompt="a blue fox jumping", negative_prompt="blurry", seed=1234, steps=3, frames=5,
                        height=48, width=32, loras=(("ink.safetensors", 0.75),))
    resolved, _ = studio.engine.validate(req)
    result = studio.engine.run(req)[0]
    return resolved, result


def test_the_mp4_and_the_png_restore_the_same_request(studio, rendered):
    resolved, result = rendered
    for path in (result.video_path, result.thumb_path):
        req, notes = restore.restore(path, studio.history)
        again, _ = studio.engine.validate(req)
        assert again == resolved and not notes, path


def test_files_name_inputs_without_server_paths_and_restore_them_through_history(studio, sample_media):
    req = RenderRequest(prompt="a red square moving", mode="i2v", image=str(sample_media["image"]), seed=3, steps=1)
    result = studio.engine.run(req)[0]
    meta = media.read_metadata(result.video_path)
    assert meta["image"] == "first.png" and str(sample_media["image"].parent) not in json.dumps(meta)
    restored, notes = restore.restore(result.thumb_path, studio.history)
    assert restored.image == str(sample_media["image"]) and not notes
    # another studio (no such history row): the input is named, and the user is told to give it again
    restored, notes = restore.restore(result.video_path, history=None)
    assert restored.image is None and notes == ["The first frame (first.png) is not on this machine any more: "
                                                "give it again."]


def test_a_file_without_studio_metadata_says_so(sample_media, tmp_path):
    for path in (sample_media["video"], sample_media["image"]):
        with pytest.raises(NoStudioMetadata, match=f"{path.name} has no AnyFlow Studio metadata"):
            restore.restore(path)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(NoStudioMetadata):
        restore.restore(text)


def test_cli_from_restores_and_given_flags_override(studio, rendered, settings, capsys):
    resolved, result = rendered
    studio.close()  # the CLI opens the same data folder
    argv = ["render", "--from", result.thumb_path, "--seed", "99", "--quiet", "--data-dir", str(settings.data_dir),
            "--models-file", str(settings.models_file), "--device", "cpu", "--json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["request"] == dict(resolved.to_dict(), seed=99, loras=[["ink.safetensors", 0.75]])


def test_cli_from_a_file_without_metadata_is_one_clear_error(sample_media, settings, capsys):
    argv = ["render", "--from", str(sample_media["video"]), "--data-dir", str(settings.data_dir),
            "--models-file", str(settings.models_file), "--device", "cpu"]
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "error: clip.mp4 has no AnyFlow Studio metadata" in err and "Traceback" not in err


def test_cli_render_without_prompt_or_from_asks_for_one(settings, capsys):
    argv = ["render", "--data-dir", str(settings.data_dir), "--models-file", str(settings.models_file)]
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    assert "prompt: is required: give --prompt, or --from FILE" in capsys.readouterr().err


def test_create_restores_a_dropped_file_into_its_controls(tmp_path, tiny_dirs):
    from gradio_client import handle_file

    from conftest import launch_app, page_client

    demo, url, studio = launch_app(tmp_path / "ui", tiny_dirs)
    try:
        make_lora(studio.settings.loras_dir / "ink.safetensors", TINY_INNER)
        req = RenderRequest(prompt="a blue fox jumping", negative_prompt="blurry", seed=1234, steps=3, frames=5,
                            height=16, width=16, model="t-bidi", loras=(("ink.safetensors", 0.75),))
        result = studio.engine.run(req)[0]
        client = page_client(url)
        out = client.predict(handle_file(result.thumb_path), api_name="/restore_from_file")
        out = [o.get("value") if isinstance(o, dict) else o for o in out]  # (tabs and states are not in the API)
        (mode, model, prompt, negative, image, video, steps, seed, random_seed, resolution, frames, status,
         lora_file, strength, *empty_rows) = out
        assert (mode, model, prompt, negative, steps, seed, random_seed) == (
            "t2v", "t-bidi", "a blue fox jumping", "blurry", 3, 1234, False)
        assert (resolution, frames, lora_file, strength) == ("16x16", 5, "ink.safetensors", 0.75)
        assert empty_rows == [None, 1.0, None, 1.0] and "Restored from the file" in status
        stray = tmp_path / "x.mp4"
        stray.write_bytes(b"not a video")
        out = client.predict(handle_file(str(stray)), api_name="/restore_from_file")
        assert "x.mp4 has no AnyFlow Studio metadata" in out[11]
    finally:
        demo.close()
        studio.close()


def test_create_and_compare_requests_carry_the_picked_loras(studio):
    from studio.ui import lora_picker
    from studio.ui.generate import CreateTab

    make_lora(studio.settings.loras_dir / "ink.safetensors", TINY_INNER)
    picked = lora_picker.collect("ink.safetensors", 0.5, None, 1.0, "", 1.0)
    assert picked == [["ink.safetensors", 0.5]]
    req, _, _ = CreateTab(studio, None).request("t2v", "t-far", "a fox", "", None, None, 2, 0, True, "32x32", 9,
                                                "custom", picked)
    assert req.loras == (("ink.safetensors", 0.5),)
