"""Storyboards, budget policies, queue caps and stats, through the engine (no UI)."""

import json

import pytest
from PIL import Image

from studio.engine import media
from studio.errors import StudioError
from studio.engine.policy import Policies, QueueCaps, cap_budgets
from studio.engine.render import RenderRequest
from studio.jobs.boards import BoardRunner

POLICIES = """
[queue]
threshold = 2
max_steps = 2
[policies.preview]
steps = 1
[policies.final]
steps = 3
[policies.tiny-final]
steps = 2
frames = 5
"""


@pytest.fixture()
def boards(settings, studio):
    (settings.data_dir / "policies.toml").write_text(POLICIES)
    studio.policies = studio.engine.policies = Policies.load(settings.user_policies_file)
    return BoardRunner(studio)


def _board(boards, n=3):
    board = boards.boards.create("Test board")
    for i in range(n):
        boards.boards.add_shot(board.id, f"shot number {i} a red circle", seed=i)
    return boards.boards.get(board.id)


def test_preview_all_then_finals_of_approved_shots(boards, studio):
    board = _board(boards)
    events = list(boards.run(board.id, "preview"))
    results = [e for e in events if e.kind == "shot" and e.event.kind == "result"]
    assert [r.index for r in results] == [0, 1, 2]  # shot by shot, each as it finishes
    assert all(r.event.steps == 1 for r in results) and events[-1].kind == "batch_done"
    board = boards.boards.get(board.id)
    assert all(s.preview_id for s in board.shots)
    boards.boards.approve(board.shots[0].id)
    boards.boards.approve(board.shots[2].id)
    done = list(boards.run(board.id, "final"))[-1]
    assert len(done.rendered) == 2 and not done.failed
    finals = [studio.history.get(s.final_id) for s in boards.boards.get(board.id).shots if s.final_id]
    assert [(r["steps"], r["policy"]) for r in finals] == [(3, "final"), (3, "final")]


def test_interrupted_finals_resume_without_redoing(boards, studio):
    board = _board(boards)
    for shot in board.shots:
        boards.boards.approve(shot.id)
    stream = boards.run(board.id, "final")
    for ev in stream:
        if ev.kind == "shot" and ev.event.kind == "result":
            break  # the app "stops" after the first shot's final
    stream.close()
    assert boards.boards.batches(board.id)[-1]["status"] == "interrupted"
    first = boards.boards.get(board.id).shots[0].final_id
    done = list(boards.run(board.id, "final"))[-1]
    assert len(done.skipped) == 1 and len(done.rendered) == 2
    assert boards.boards.get(board.id).shots[0].final_id == first
    assert len(studio.history.search(text="number 0", status="ok")) == 1  # the finished shot was not redone


def test_exports_read_back(boards, tmp_path):
    board = _board(boards)
    list(boards.run(board.id, "preview"))
    for shot in board.shots:
        boards.boards.approve(shot.id)
    list(boards.run(board.id, "final"))
    joined = boards.export_finals(board.id, tmp_path / "finals.mp4")
    frames, _ = media.read_video(joined)
    assert len(frames) == 3 * 9  # the sum of the shots' frames
    sheet = boards.export_contact_sheet(board.id, tmp_path / "sheet.png")
    with Image.open(sheet) as img:
        row = media.SHEET_LABEL_H + media.SHEET_CELL + media.SHEET_PAD
        assert (img.height - media.SHEET_PAD) / row == 3  # one row per shot
    data = boards.export_json(board.id, tmp_path / "board.json")
    again = json.loads((tmp_path / "board.json").read_text())
    assert again == data and [s["final"]["steps"] for s in data["shots"]] == [3, 3, 3]
    assert data["shots"][1]["seed"] == 1 and data["shots"][1]["final"]["policy"] == "final"
    # no absolute paths of this machine: each render is named relative to the exported file (issue 25, item 5)
    for shot in data["shots"]:
        path = shot["final"]["video_path"]
        assert not path.startswith("/") and (tmp_path / path).resolve().is_file(), path


def test_editing_a_shot_clears_its_renders_and_approval(boards):
    board = _board(boards, 1)
    list(boards.run(board.id, "preview"))
    shot = boards.boards.approve(board.shots[0].id)
    assert shot.approved and shot.preview_id
    edited = boards.boards.update_shot(shot.id, prompt="a blue square")
    assert not edited.approved and edited.preview_id is None
    list(boards.run(board.id, "preview"))
    previewed = boards.boards.get_shot(shot.id)
    rerolled = boards.boards.reroll(shot.id)
    assert rerolled.seed != previewed.seed and rerolled.preview_id is None and previewed.preview_id
    moved = boards.boards.move_shot(boards.boards.duplicate_shot(shot.id).id, 0)
    assert [s.position for s in moved.shots] == [0, 1]


def test_queue_above_threshold_caps_budget_and_records_it(boards, studio):
    events = list(studio.engine.render(RenderRequest(prompt="a capped fox", seed=1), policy="final", waiting=5))
    result = [e for e in events if e.kind == "result"][0]
    assert result.steps == 2 and any("capped" in n for n in result.notes)
    row = studio.history.get(result.record_id)
    assert (row["steps"], row["requested_steps"], row["capped"], row["policy"]) == (2, 3, 1, "final")
    events = list(studio.engine.render(RenderRequest(prompt="a calm fox", seed=1), policy="final", waiting=0))
    row = studio.history.get([e for e in events if e.kind == "result"][0].record_id)
    assert (row["steps"], row["capped"]) == (3, 0)


def test_policy_sets_size_and_frames(boards, studio):
    result = [e for e in studio.engine.render(RenderRequest(prompt="a short clip", seed=0), policy="tiny-final")
              if e.kind == "result"][0]
    assert result.frames.shape[0] == 5 and result.steps == 2


def test_caps_merge_duplicates_and_the_strictest_limit_wins():
    assert cap_budgets((2, 8, 16), 4) == ((2, 4), (2, 8))
    policies = Policies(caps=QueueCaps(threshold=1, max_steps=8), space_max_steps=4)
    assert policies.limit(waiting=0) == (None, None)
    assert policies.limit(waiting=3)[0] == 8 and "waiting" in policies.limit(waiting=3)[1]
    assert policies.limit(waiting=3, space=True)[0] == 4 and "Space" in policies.limit(waiting=3, space=True)[1]


def test_stats_per_model_and_budget(boards, studio):
    for seed in range(3):
        studio.engine.run(RenderRequest(prompt="stats", seed=seed, steps=1))
    rid = studio.engine.run(RenderRequest(prompt="stats", seed=9, steps=2))[0].record_id
    studio.history.set_accepted(rid)
    stats = {(r["model"], r["steps"]): r for r in studio.history.stats()}
    assert stats[("t-far", 1)]["renders"] == 3 and stats[("t-far", 1)]["accepted_rate"] == 0
    assert stats[("t-far", 2)]["accepted_rate"] == 1.0 and stats[("t-far", 2)]["median_seconds"] > 0


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"shots": []}', "non-empty"),
    ('{"shots": [{"mode": "t2v"}]}', "prompt"),
    ('{"shots": [{"prompt": "x", "mode": "i2v", "image": "missing.png"}]}', "image file not found"),
])
def test_bad_board_files_get_clear_messages(boards, tmp_path, content, message):
    path = tmp_path / "board.json"
    path.write_text(content)
    with pytest.raises(StudioError, match=message):
        boards.import_file(path)


def test_board_file_rerun_keeps_finished_shots(boards, tmp_path):
    path = tmp_path / "board.json"
    path.write_text(json.dumps({"name": "f", "shots": [{"prompt": "one", "seed": 1}, {"prompt": "two"}]}))
    board = boards.import_file(path)
    list(boards.run(board.id, "preview"))
    again = boards.import_file(path)  # same file, same board: renders and random seeds kept
    assert again.id == board.id and [s.preview_id for s in again.shots] == [s.preview_id for s in boards.boards.get(board.id).shots]
    assert boards.pending(again, "preview") == ([], again.shots)


def test_changing_model_or_policy_invalidates_the_renders_it_made(boards):
    board = _board(boards, 2)
    list(boards.run(board.id, "preview"))
    for shot in board.shots:
        boards.boards.approve(shot.id)
    list(boards.run(board.id, "final"))
    same = boards.boards.update(board.id, name="renamed", final_policy="final")  # no real change: renders kept
    assert all(s.preview_id and s.final_id for s in same.shots)
    repolicied = boards.boards.update(board.id, final_policy="tiny-final")
    assert all(s.preview_id and not s.final_id for s in repolicied.shots)  # finals redone at the new policy
    assert len(boards.pending(repolicied, "final")[0]) == 2
    remodelled = boards.boards.update(board.id, model="t-bidi")
    assert all(not s.preview_id and not s.final_id for s in remodelled.shots)
