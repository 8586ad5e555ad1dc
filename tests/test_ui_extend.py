"""The UI's Extend action (Create result, History entry) and History's re-run filling the LoRA picker (issue 17),
driven through gradio_client on the tiny test models (32x32, 9 frames)."""

from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from lora_files import make_lora  # noqa: E402

from conftest import launch_app, page_client  # noqa: E402
from studio.engine import media  # noqa: E402
from studio.engine.render import RenderRequest  # noqa: E402

PROMPT = "a red circle moving left on a black background"
TINY_INNER = 24  # the tiny models' transformer: 2 heads x 12


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_dirs):
    demo, url, studio = launch_app(tmp_path_factory.mktemp("ui-extend"), tiny_dirs)
    yield url, studio
    demo.close()
    studio.close()


def outputs_of(client, *args, api_name):
    job = client.submit(*args, api_name=api_name)
    job.result(timeout=120)
    return job.outputs()


def render(client, prompt=PROMPT) -> dict:
    """A 2-step t-far render through /render; its result info (the hidden JSON output)."""
    outs = outputs_of(client, "t2v", "t-far", prompt, "", None, None, 2, 7, False, "32x32", 9, False, 1,
                      api_name="/render")
    found = [o[4] for o in outs if isinstance(o[4], dict) and o[4].get("role")]
    assert found, [o[1] for o in outs]
    return found[-1]


def test_extend_from_create_then_from_history(app):
    url, studio = app
    client = page_client(url)
    info = render(client)
    rid = info["record_id"]
    outs = outputs_of(client, info, 7, "", api_name="/extend_create")
    video, status, details, new_info = outs[-1][:4]
    assert f"extended `{rid}`: 9 + 8 frames" in status  # 7 asked, snapped to the model's step of 4
    child_id = new_info["record_id"]
    assert child_id != rid and new_info["extends"] == rid
    assert any("Extending" in str(o[1]) for o in outs[:-1]), "the status streams while it renders"
    shown = video.get("value", video) if isinstance(video, dict) else video
    path = shown.get("video", shown).get("path") if isinstance(shown, dict) else shown
    assert len(media.read_video(path)[0]) == 17
    child = studio.history.get(child_id)
    assert (child["parent_id"], child["frames"]) == (rid, 17)
    assert child["request"]["prompt"] == PROMPT  # the prompt box was empty: the original's
    assert [c["id"] for c in studio.history.children(rid)] == [child_id]

    # History: open the extension, extend it with a new prompt; the new entry is shown with its parent
    client.predict(child_id, api_name="/history_details")
    outs = outputs_of(client, 4, "it keeps rolling", *_filters(), api_name="/extend_history")
    final = [x for x in outs[-1] if isinstance(x, str)]
    assert any(f"extended `{child_id}`: 17 + 4 frames" in x for x in final), final
    grandchild = studio.history.children(child_id)[0]
    assert (grandchild["frames"], grandchild["request"]["prompt"]) == (21, "it keeps rolling")
    assert any(f"Extends `{child_id}`" in x for x in final), "the details shown are the new entry's, with its parent"
    assert any("21 joined (" in x for x in final), "the details count the joined clip, not only the new render"
    assert len(media.read_video(grandchild["video_path"])[0]) == 21


def _filters():
    return ("", "Any", "Any", "Any", "Any", False)  # History's search box and filters, as the gallery shows them


def test_extend_without_a_finished_render_says_so(app):
    url, _ = app
    outs = outputs_of(page_client(url), None, 8, "", api_name="/extend_create")
    assert "Pick a finished render to extend" in outs[-1][1] and "Traceback" not in outs[-1][1]


def test_rerun_in_create_fills_the_lora_picker_and_the_next_render_uses_it(app):
    url, studio = app
    make_lora(studio.settings.loras_dir / "ink.safetensors", TINY_INNER)
    original = studio.engine.run(RenderRequest(prompt="a green square", model="t-far", seed=2, steps=1,
                                               loras=(("ink.safetensors", 0.75),)))[-1]
    client = page_client(url)  # a fresh browser session: its picker starts empty
    client.predict(original.record_id, api_name="/history_details")  # select it in History
    rerun = client.predict(api_name="/history_rerun")
    rows = [r.get("value") if isinstance(r, dict) else r for r in rerun[-6:]]
    assert rows == ["ink.safetensors", 0.75, None, 1.0, None, 1.0]
    info = render(client, prompt="a green square again")  # Render reads the picker's state, which re-run set
    assert studio.history.get(info["record_id"])["request"]["loras"] == [["ink.safetensors", 0.75]]
    Path(studio.settings.loras_dir / "ink.safetensors").unlink()
