"""Extend a finished render by N frames: one joined clip, a child of the original in history."""

import numpy as np
import pytest

from studio.jobs import extend
from studio.engine import media
from studio.errors import InvalidRequest
from studio.engine.render import RenderRequest


def _original(studio, model, prompt="a red ball rolls"):
    return studio.engine.run(RenderRequest(prompt=prompt, model=model, seed=3, steps=2))[-1]


def test_plan_snaps_new_frames_and_fits_context_to_chunks():
    far = extend.plan_extension(30, 7, 4, [1, 3, 3, 3], max_context=30)
    assert (far.new_frames, far.context, far.snapped) == (8, 25, True)  # 25 frames = 7 latents = chunks 1+3+3
    bidi = extend.plan_extension(9, 8, 4, None, max_context=5)
    assert (bidi.new_frames, bidi.context, bidi.render_frames, bidi.joined_frames) == (8, 5, 13, 17)
    assert not bidi.snapped
    with pytest.raises(InvalidRequest):
        extend.plan_extension(9, 0, 4)


@pytest.mark.parametrize("model", ["t-far", "t-bidi-kf"])
def test_extend_joins_original_and_new_frames(studio, model):
    original = _original(studio, model)
    reference, _ = media.read_video(original.video_path)  # the source mp4, decoded once
    result, plan = extend.extend_once(studio.engine, original.record_id, 7, prompt="it bounces")
    assert plan.new_frames == 8 and plan.snapped
    assert len(result.frames) == len(reference) + 8
    # the original's frames are the joined clip's first frames, bit for bit (as decoded from the source mp4)
    assert np.array_equal(result.frames[: len(reference)], reference)
    decoded, _ = media.read_video(result.video_path)
    assert len(decoded) == len(reference) + 8  # the file holds the joined clip (lossy: frames compared above)
    child = studio.history.get(result.record_id)
    assert child["parent_id"] == original.record_id and child["frames"] == len(reference) + 8
    assert child["request"]["context_from"] == "end" and child["request"]["prompt"] == "it bounces"
    assert [r["id"] for r in studio.history.children(original.record_id)] == [result.record_id]


def test_extend_an_extension(studio):
    original = _original(studio, "t-bidi-kf")
    first, _ = extend.extend_once(studio.engine, original.record_id, 8)
    second, _ = extend.extend_once(studio.engine, first.record_id, 4)
    assert len(second.frames) == 9 + 8 + 4
    assert np.array_equal(second.frames[:17], media.read_video(first.video_path)[0])
    assert studio.history.get(second.record_id)["parent_id"] == first.record_id
    assert studio.history.get(first.record_id)["request"]["prompt"] == "a red ball rolls"  # the original's


def test_extend_refuses_a_model_without_v2v(studio):
    original = _original(studio, "t-bidi")  # t-bidi serves t2v only
    with pytest.raises(Exception, match="V2V"):
        extend.extend_once(studio.engine, original.record_id, 8)


def _cli(settings, capsys, *args) -> tuple[int, str, str]:
    """``python -m studio render ARGS`` in this process (the same parser and code path, without a fresh import)."""
    from studio.cli.commands import main

    code = main(["render", "--data-dir", str(settings.data_dir), "--models-file", str(settings.models_file),
                 "--device", "cpu", "--quiet", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_extend_by_history_id_and_by_mp4(studio, settings, capsys):
    original = _original(studio, "t-bidi-kf")
    studio.close()
    code, out, err = _cli(settings, capsys, "--extend", original.record_id, "--frames", "6", "--prompt", "more")
    assert code == 0, err
    assert "frames 6 -> 8" in err
    path = out.strip().splitlines()[-1]
    assert len(media.read_video(path)[0]) == 17
    code, out, err = _cli(settings, capsys, "--extend", path, "--frames", "4", "--prompt", "more")
    assert code == 0, err
    assert "->" not in err
    joined = out.strip().splitlines()[-1]
    assert len(media.read_video(joined)[0]) == 21
    code, out, err = _cli(settings, capsys, "--extend", "no-such-render", "--frames", "4", "--prompt", "x")
    assert code != 0 and "neither a history id nor a video file" in err and "Traceback" not in err


def test_history_details_show_parent_and_children(studio):
    from studio.ui.history import lineage

    original = _original(studio, "t-bidi-kf")
    child, _ = extend.extend_once(studio.engine, original.record_id, 4)
    assert f"Extended by `{child.record_id}`" in lineage(studio, studio.history.get(original.record_id))
    assert f"Extends `{original.record_id}`" in lineage(studio, studio.history.get(child.record_id))
