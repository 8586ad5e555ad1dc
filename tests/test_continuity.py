"""Storyboard continuity: shots that continue the previous shot's render, in order, stale when it changes."""

import numpy as np
import pytest

from studio.jobs import continuity
from studio.engine import media
from studio.jobs.boards import BoardRunner
from studio.engine.policy import Policies
from studio.engine.render import RenderRequest, _read_inputs

POLICIES = "[policies.preview]\nsteps = 1\n[policies.final]\nsteps = 1\n"


@pytest.fixture()
def runner(settings, studio):
    (settings.data_dir / "policies.toml").write_text(POLICIES)
    studio.policies = studio.engine.policies = Policies.load(settings.user_policies_file)
    return BoardRunner(studio)


def _board(runner, first_mode="t2v", first_image=None):
    store = runner.boards
    board = store.create("Continuous", model="t-bidi-kf")
    store.add_shot(board.id, "a red ball rolls in", seed=1, approved=True, mode=first_mode, image=first_image)
    store.add_shot(board.id, "the ball bounces", seed=2, frames=13, mode="v2v", continues=True, approved=True)
    store.add_shot(board.id, "the ball rolls away", seed=3, frames=13, continues=True, approved=True)  # t2v -> v2v
    return store.get(board.id)


def _rendered(events):
    return [e.shot_id for e in events if e.kind == "shot" and e.event.kind == "result"]


def test_context_from_end_reads_the_clips_last_frames(sample_media):
    req = RenderRequest(prompt="x", mode="v2v", video=str(sample_media["video"]), width=64, height=48, fps=8,
                        frames=13, context_frames=5, context_from="end")
    every = media.read_clip(sample_media["video"], 64, 48, 8, None)
    assert np.array_equal(_read_inputs(req).frames, every[-5:])


def test_continuing_shots_render_in_order_from_the_previous_final(runner, studio):
    board = _board(runner)
    ids = [s.id for s in board.shots]
    assert _rendered(runner.run(board.id, "preview")) == ids
    assert _rendered(runner.run(board.id, "final")) == ids
    board = runner.boards.get(board.id)
    for prev, shot in zip(board.shots, board.shots[1:]):
        row = studio.history.get(shot.final_id)
        req = row["request"]
        assert row["parent_id"] == prev.final_id and req["mode"] == "v2v" and req["context_from"] == "end"
        assert req["video"] == studio.history.get(prev.final_id)["video_path"] and req["context_frames"] == 5
        assert studio.history.get(shot.preview_id)["parent_id"] == prev.preview_id  # previews chain previews
    assert not any(continuity.stale_stages(studio.history, board, s) for s in board.shots)


def test_joined_export_leaves_out_repeated_context_frames(runner, studio, tmp_path):
    board = _board(runner)
    list(runner.run(board.id, "final"))
    board = runner.boards.get(board.id)
    clips = [media.read_video(studio.history.get(s.final_id)["video_path"])[0] for s in board.shots]
    assert [len(c) for c in clips] == [9, 13, 13]
    joined, _ = media.read_video(runner.export_finals(board.id, tmp_path / "joined.mp4"))
    assert len(joined) == 9 + 8 + 8  # each continuing shot's 5 context frames left out
    expected = np.concatenate([clips[0], clips[1][5:], clips[2][5:]]).astype(int)
    assert np.abs(joined.astype(int) - expected).mean() < 3  # h264 again: close, not bit-equal


def test_editing_shot_one_makes_the_next_shots_stale_and_finals_redo_them(runner, studio):
    board = _board(runner)
    list(runner.run(board.id, "final"))
    first, second, third = runner.boards.get(board.id).shots
    runner.boards.update_shot(first.id, prompt="a blue ball rolls in", approved=True)
    board = runner.boards.get(board.id)
    assert continuity.stale_stages(studio.history, board, board.shots[1]) == ["final"]  # only finals were rendered
    assert continuity.stale_stages(studio.history, board, board.shots[2]) == []  # its parent is still current
    todo, _ = runner.pending(board, "final")
    assert [s.id for s in todo] == [first.id, second.id, third.id]  # the change carries down the chain
    assert _rendered(runner.run(board.id, "final")) == [first.id, second.id, third.id]
    board = runner.boards.get(board.id)
    assert not any(continuity.stale_stages(studio.history, board, s) for s in board.shots[1:] if s.final_id)
    runner.boards.reroll(board.shots[0].id)
    board = runner.boards.get(board.id)
    assert "final" in continuity.stale_stages(studio.history, board, board.shots[1])


def test_a_shot_after_a_failed_or_unapproved_one_is_skipped_with_a_reason(runner, tmp_path):
    board = _board(runner, first_mode="i2v", first_image=str(tmp_path / "gone.png"))
    done = list(runner.run(board.id, "preview"))[-1]
    first, second, third = board.shots
    assert "gone.png" in done.failed[first.id]
    assert "continues shot 1" in done.failed[second.id] and "failed" in done.failed[second.id]
    assert "continues shot 2" in done.failed[third.id]
    runner.boards.update_shot(first.id, mode="t2v", image=None, approved=False)
    done = list(runner.run(board.id, "final"))[-1]
    assert "not approved" in done.failed[second.id]


def test_board_json_carries_continues(runner, tmp_path):
    import json

    board = _board(runner)
    data = runner.export_json(board.id)
    assert [s["continues"] for s in data["shots"]] == [False, True, True]
    path = tmp_path / "board.json"
    path.write_text(json.dumps(data))
    imported = runner.import_file(path)
    assert [s.continues for s in imported.shots] == [False, True, True]


def test_i2v_shot_continues_from_the_last_frame(runner, studio):
    store = runner.boards
    board = store.create("I2V chain", model="t-bidi-kf")
    store.add_shot(board.id, "a red ball", seed=1)
    store.add_shot(board.id, "it stops", seed=2, mode="i2v", continues=True)
    assert len(_rendered(runner.run(board.id, "preview"))) == 2
    first, second = store.get(board.id).shots
    row = studio.history.get(second.preview_id)
    last = media.read_video(studio.history.get(first.preview_id)["video_path"])[0][-1]
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(row["request"]["image"])), last)
    assert row["parent_id"] == first.preview_id and continuity.leading_context(row) == 1
