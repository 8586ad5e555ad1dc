"""Storyboard shots carry LoRAs (issue 17): stored, rendered with, cleared-on-edit, kept by the board JSON."""

import json

import pytest
from lora_files import make_lora

from studio.jobs.boards import BoardRunner
from studio.errors import InvalidRequest
from studio.engine.policy import Policies

POLICIES = "[policies.preview]\nsteps = 1\n[policies.final]\nsteps = 1\n"
TINY_INNER = 24  # the tiny models' transformer: 2 heads x 12


@pytest.fixture()
def runner(settings, studio):
    (settings.data_dir / "policies.toml").write_text(POLICIES)
    studio.policies = studio.engine.policies = Policies.load(settings.user_policies_file)
    make_lora(studio.settings.loras_dir / "ink.safetensors", TINY_INNER)
    return BoardRunner(studio)


def _board(runner):
    board = runner.boards.create("Styled", model="t-far")
    runner.boards.add_shot(board.id, "a red ball rolls", seed=1, approved=True, loras=[["ink.safetensors", 0.5]])
    runner.boards.add_shot(board.id, "a plain ball rolls", seed=2, approved=True)
    return runner.boards.get(board.id)


def test_a_shot_renders_with_its_lora(runner, studio):
    board = _board(runner)
    assert [s.loras for s in board.shots] == [[["ink.safetensors", 0.5]], []]
    list(runner.run(board.id, "preview"))
    rows = [studio.history.get(s.preview_id) for s in runner.boards.get(board.id).shots]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert [r["request"]["loras"] for r in rows] == [[["ink.safetensors", 0.5]], []]


def test_changing_a_shots_loras_clears_its_renders(runner):
    board = _board(runner)
    list(runner.run(board.id, "preview"))
    shot = runner.boards.get(board.id).shots[0]
    assert shot.preview_id
    same = runner.boards.update_shot(shot.id, loras=[("ink.safetensors", 0.5)])
    assert same.preview_id == shot.preview_id  # the same LoRAs: nothing to redo
    changed = runner.boards.update_shot(shot.id, loras=[["ink.safetensors", 1.0]])
    assert changed.preview_id is None and changed.loras == [["ink.safetensors", 1.0]]
    with pytest.raises(InvalidRequest):
        runner.boards.update_shot(shot.id, loras=[["ink.safetensors", 9]])


def test_board_json_round_trip_keeps_the_loras(runner, tmp_path):
    board = _board(runner)
    data = runner.export_json(board.id)
    assert [s["loras"] for s in data["shots"]] == [[["ink.safetensors", 0.5]], []]
    path = tmp_path / "board.json"
    path.write_text(json.dumps(data))
    assert [s.loras for s in runner.import_file(path).shots] == [[["ink.safetensors", 0.5]], []]
    data["shots"][0]["loras"] = [["ink.safetensors", "strong"]]
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match="shot 1: loras"):
        runner.import_file(path)


def test_duplicating_a_shot_keeps_its_loras(runner):
    board = _board(runner)
    copy = runner.boards.duplicate_shot(board.shots[0].id)
    assert copy.loras == [["ink.safetensors", 0.5]]


def test_shot_editor_lora_field(tmp_path, tiny_dirs):
    """The shot editor's "file:strength, ..." text: parsed into the shot, shown back, a bad one refused."""
    from conftest import launch_app, page_client
    from studio.jobs.shot_rules import board_store

    demo, url, studio = launch_app(tmp_path / "app", tiny_dirs)
    try:
        client = page_client(url)
        client.predict("Styled", "t-far", api_name="/board_create")
        store = board_store(studio.history)
        (board,) = store.list()
        client.predict(board["id"], "", "t2v", "a red ball", 1, 0, None, None, False,
                       "ink.safetensors:0.5, grain.safetensors", api_name="/shot_add")
        (shot,) = store.get(board["id"]).shots
        assert shot.loras == [["ink.safetensors", 0.5], ["grain.safetensors", 1.0]]
        shown = client.predict(board["id"], shot.id, api_name="/shot_select")
        assert "ink.safetensors:0.5, grain.safetensors:1" in shown
        out = client.predict(board["id"], shot.id, "t2v", "a red ball", 1, 0, None, None, False,
                             "ink.safetensors:7", api_name="/shot_save")
        assert any("loras" in str(v) for v in out)
        assert store.get(board["id"]).shots[0].loras == shot.loras  # refused: unchanged
    finally:
        demo.close()
        studio.close()
