"""The studio UI driven in-process through gradio_client, on the tiny test models (32x32, 9 frames)."""

from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402

from conftest import launch_app, page_client  # noqa: E402
from studio.config import ASSETS_DIR  # noqa: E402
from studio.store.history import Query  # noqa: E402
from studio.ui import format as fmt  # noqa: E402

PROMPT = "a red circle moving left on a black background"
EXAMPLE_IMAGE = ASSETS_DIR / "examples" / "red_circle_on_black.png"
EXAMPLE_VIDEO = ASSETS_DIR / "examples" / "blue_square_moving_right.mp4"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_dirs):
    if not (EXAMPLE_IMAGE.is_file() and EXAMPLE_VIDEO.is_file()):
        import runpy

        runpy.run_path(str(ASSETS_DIR.parent / "scripts" / "make_examples.py"), run_name="__main__")
    demo, url, studio = launch_app(tmp_path_factory.mktemp("ui"), tiny_dirs)
    client = page_client(url)
    yield client, studio
    demo.close()
    studio.close()


def render_args(mode="t2v", model="t-far", prompt=PROMPT, image=None, video=None, steps=3, seed=7, random_seed=False,
                resolution="32x32", frames=9, refine=False, preview=1):
    return (mode, model, prompt, "", image, video, steps, seed, random_seed, resolution, frames, refine, preview)


def outputs_of(client, *args, api_name="/render"):
    job = client.submit(*args, api_name=api_name)
    job.result(timeout=120)
    return job.outputs()


def results(outputs):
    """The result-info dicts (hidden JSON output, index 4) in the order the UI showed them."""
    return [o[4] for o in outputs if isinstance(o[4], dict) and o[4].get("role")]


def statuses(outputs):
    return [o[1] for o in outputs if isinstance(o[1], str)]


def _text(value) -> str:
    """A status string, or the label of a video or image update."""
    return value if isinstance(value, str) else str(value.get("label") or "") if isinstance(value, dict) else ""


def video_value(value):
    if isinstance(value, dict):
        value = value.get("value", value)
    if isinstance(value, dict):
        value = value.get("video") or value.get("path")
    return value


def test_t2v_preview_then_refine(app):
    client, studio = app
    outs = outputs_of(client, *render_args(steps=4, refine=True, preview=1))
    shown = results(outs)
    assert [r["role"] for r in shown] == ["preview", "final"]
    assert [r["steps"] for r in shown] == [1, 4]
    # the preview was on screen while the refine still ran: its steps and chunks are reported after it
    at = {o[4]["role"]: i for i, o in enumerate(outs) if isinstance(o[4], dict) and o[4].get("role")}
    refining = [i for i, o in enumerate(outs) if any("final (4 steps)" in _text(v) for v in o)]
    assert refining and at["preview"] < refining[0] < at["final"], (at, refining)
    # the video output carries the preview first, then the refined video, each labelled with steps and seconds
    videos = [o[0] for o in outs if isinstance(o[0], dict) and o[0].get("label", "").startswith(("Preview", "Final"))]
    assert [v["label"].split(" · ")[:2] for v in videos] == [["Preview", "1 step"], ["Final", "4 steps"]]
    assert all(Path(video_value(v)).is_file() for v in videos)
    assert any("step 1 of" in s for s in statuses(outs)), "per-step progress shown"
    live = [v for o in outs for v in o if isinstance(v, dict) and "chunk" in str(v.get("label", ""))]
    assert live, "streamed chunks shown in the live strip while the render runs"
    estimates = [v for o in outs for v in o if isinstance(v, dict) and "estimate at step" in str(v.get("label", ""))]
    assert estimates, "per-step previews (no VAE) shown in the live strip"
    assert "Done" in statuses(outs)[-1]
    rows = [studio.history.get(r["record_id"]) for r in shown]
    assert [(r["status"], r["steps"], r["seed"]) for r in rows] == [("ok", 1, 7), ("ok", 4, 7)]


def test_compare_returns_one_result_per_budget(app):
    client, studio = app
    outs = outputs_of(client, "t-far", PROMPT, [1, 2, 4], 11, False, False, api_name="/compare_budgets")
    labelled = {}
    for out in outs:
        for slot in out[:4]:
            if isinstance(slot, dict) and video_value(slot) and "·" in slot.get("label", ""):
                labelled[slot["label"].split(" · ")[0]] = video_value(slot)
    assert set(labelled) == {"1 step", "2 steps", "4 steps"}
    charts = [x for out in outs for x in out if isinstance(x, str) and "seconds-chart" in x]
    assert charts and charts[-1].count("<circle") == 3  # the seconds chart: one point per finished budget
    assert charts[-1].count('class="series"') == 1 and 'data-model="t-far"' in charts[-1]
    rows = studio.history.search(Query(text="red circle", steps=2))
    assert any(r["plan_kind"] == "compare" and r["seed"] == 11 for r in rows)


def test_compare_before_distillation_renders_the_teacher_at_the_same_budgets(app):
    client, studio = app
    outs = outputs_of(client, "t-bidi-kf", PROMPT, [1, 2], 13, False, True, api_name="/compare_budgets")
    teacher_slots = {}
    for out in outs:
        for slot in out[-6:-2]:  # the teacher row (the header's picker and card come last)
            if isinstance(slot, dict) and video_value(slot) and "·" in slot.get("label", ""):
                teacher_slots[slot["label"].split(" · ")[0]] = video_value(slot)
    assert set(teacher_slots) == {"1 step", "2 steps"} and all(Path(v).is_file() for v in teacher_slots.values())
    rows = studio.history.search(Query(text="red circle"))
    mine = [r for r in rows if r["plan_kind"] == "compare" and r["seed"] == 13]
    assert sorted((r["model"], r["steps"]) for r in mine) == [("t-bidi", 1), ("t-bidi", 2), ("t-bidi-kf", 1),
                                                              ("t-bidi-kf", 2)]
    assert any("t-bidi:" in str(o[5]) for o in outs), "the status sums up both models"
    assert "loaded on" in str(outs[-1][-1]), "the header card is refreshed after the compare"


def test_compare_needs_two_to_four_budgets(app):
    client, _ = app
    outs = outputs_of(client, "t-far", PROMPT, [4], 1, False, False, api_name="/compare_budgets")
    assert any("pick 2 to 4" in str(o[5]) for o in outs)


def test_i2v_with_the_example_image(app):
    client, studio = app
    outs = outputs_of(client, *render_args(mode="i2v", image=handle_file(str(EXAMPLE_IMAGE)), steps=2))
    (res,) = results(outs)
    assert res["mode"] == "i2v" and res["role"] == "single"
    assert studio.history.get(res["record_id"])["request"]["image"]


def test_v2v_with_the_example_video(app):
    client, studio = app
    outs = outputs_of(client, *render_args(mode="v2v", video=handle_file(str(EXAMPLE_VIDEO)), steps=2))
    (res,) = results(outs)
    assert res["mode"] == "v2v"
    assert Path(res["video"]).is_file()


def test_bad_input_is_a_message_not_a_traceback(app):
    client, _ = app
    outs = outputs_of(client, *render_args(prompt="   "))
    assert results(outs) == []
    assert statuses(outs)[0].startswith("⚠ Please fix: Prompt is empty")
    outs = outputs_of(client, *render_args(mode="i2v", model="t-bidi"))
    assert "does not do I2V" in statuses(outs)[0] and "t-far" in statuses(outs)[0]
    outs = outputs_of(client, *render_args(mode="i2v"))
    assert "First frame i2v needs an input image" in statuses(outs)[0]
    assert not any("Traceback" in s for s in statuses(outs))


def test_render_found_by_history_search(app):
    client, studio = app
    prompt = "a yellow triangle moving up on a gray background"
    (res,) = results(outputs_of(client, *render_args(prompt=prompt, steps=2)))
    items, summary = client.predict("yellow triangle", "Any", "Any", "Any", "Any", False, api_name="/history_search")
    assert any(prompt in (item.get("caption") or "") for item in items), items
    assert "shown" in summary
    items, _ = client.predict("yellow triangle", "v2v", "Any", "Any", "Any", False, api_name="/history_search")
    assert items == []
    # details of that record list every parameter and its timings
    _, details = client.predict(res["record_id"], api_name="/history_details")
    assert "**Seed** 7" in details and "**Steps** 2" in details and "denoise" in details
    # re-run loads the parameters back into the Create tab
    rerun = client.predict(res["record_id"], api_name="/history_rerun")
    assert prompt in rerun and 7 in rerun and 2 in rerun
    # delete (the confirm button's endpoint) removes the row and its files
    row = studio.history.get(res["record_id"])
    client.predict("yellow triangle", "Any", "Any", "Any", "Any", False, api_name="/history_delete")
    assert studio.history.get(res["record_id"]) is None
    assert not Path(row["video_path"]).exists() and not Path(row["thumb_path"]).exists()


def test_cancel_stops_and_records_cancelled(app, hold_step):
    client, studio = app
    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=2)  # step 2 waits until we have cancelled
    job = client.submit(*render_args(steps=8, prompt="a green square moving right on a white background"),
                        api_name="/render")
    assert hold.reached.wait(120), "the render never reached step 2"
    assert client.predict(api_name="/cancel").startswith("■ Cancelling")  # a render was running
    hold.release.set()
    job.result(timeout=60)
    outs = job.outputs()
    assert any(s.startswith("■") for s in statuses(outs))
    assert results(outs) == [] and not any("step 2 of" in s for s in statuses(outs))  # stopped within step 2
    rows = studio.history.search(Query(text="green square"))
    assert [r["status"] for r in rows] == ["cancelled"]


def test_format_helpers():
    class Spec:
        width, height, frames, fps, temporal_factor = 832, 480, 81, 16, 4

        def valid_frame_counts(self, up_to):
            return [n for n in range(1, up_to + 1) if (n - 1) % 4 == 0]

    res = fmt.resolution_choices(Spec())
    assert res[0] == ("832×480 (native)", "832x480") and ("480×832 (portrait)", "480x832") in res
    assert all(int(v.split("x")[0]) % 16 == 0 and int(v.split("x")[1]) % 16 == 0 for _, v in res)
    assert fmt.parse_resolution("624x352") == (624, 352)
    frames = [v for _, v in fmt.frame_choices(Spec())]
    assert 81 in frames and all((n - 1) % 4 == 0 for n in frames)
    assert fmt.result_label("final", 8, {"denoise": 1.0, "decode": 0.25, "write": 0.1, "load": 3}) == "Final · 8 steps · 1.35 s"
