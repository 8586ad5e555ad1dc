"""What a new user tripped over (issue 25, items 3-10), each checked where it could come back."""

import gradio as gr
import pytest

from studio.engine import judge
from studio.errors import StudioError
from studio.engine.events import Progress
from studio.engine.render import Plan, RenderRequest
from studio.ui import format as fmt
from studio.ui import create_choices, header
from studio.ui import session as ui_session

PROMPT = "a red circle moving left on a black background"


# ---- 3: the model card follows the manager ------------------------------------------------------------
def test_the_header_follows_loads_and_unloads(studio):
    picker, card, seen = header.follow(studio, "t-far", None)  # a page opening: always filled in
    assert "on disk, loads on the first render" in card and seen == []
    studio.models.get("t-far")  # a render (or the CLI) loaded it
    picker, card, seen = header.follow(studio, "t-far", seen)
    assert "loaded on" in card and seen == ["t-far"]
    assert any("t-far" in label and "loaded" in label for label, _ in picker.choices)
    assert header.follow(studio, "t-far", seen) == (gr.skip(),) * 3  # nothing changed: the page is left alone
    studio.models.unload("t-far")
    assert "on disk" in header.follow(studio, "t-far", seen)[1]


def test_a_page_opened_after_a_render_asks_the_manager(studio):
    from studio.ui import build_app

    demo = build_app(studio)
    loads = [fn for fn in demo.fns.values() if any(t[1] == "load" for t in fn.targets)]
    card_ids = {b._id for fn in loads for b in fn.outputs}
    model_card = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-card")
    assert model_card._id in card_ids, "no page-load event refreshes the model card"


# ---- 4: one reading of progress -----------------------------------------------------------------------
def test_progress_reads_budget_k_of_n_step_s_of_s_in_the_bar_and_the_status():
    plan = Plan.refine(2, 8)
    events = [Progress(budget_index=1, steps=8, step=3, total=8, fraction=0.5)]
    calls = []

    def bar(value, desc="", unit=""):
        calls.append((value, desc))

    ups = list(ui_session.updates(iter(events), plan, bar, 0.0))
    assert ups[0].text == "Rendering final (8 steps) · budget 2 of 2 · step 3 of 8"
    assert calls == [((3, 8), "final (8 steps) · budget 2 of 2")]  # the bar: 3/8 of this budget, not of the plan


# ---- 7: models ----------------------------------------------------------------------------------------
def test_random_weight_models_are_marked_for_tests(studio):
    labels = dict((mid, label) for label, mid in header.model_choices(studio))
    assert fmt.TEST_MODEL_MARK in labels["anyflow-tiny"] and fmt.TEST_MODEL_MARK in labels["anyflow-tiny-far"]
    assert fmt.TEST_MODEL_MARK not in labels["anyflow-shapes"] and fmt.TEST_MODEL_MARK not in labels["t-far"]
    order = [mid for _, mid in header.model_choices(studio)]
    assert order.index("anyflow-tiny") > order.index("t-far"), "test models come last"


def test_shapes_hints_only_with_a_model_that_draws_shapes(studio):
    hint, *columns = create_choices.hint_updates(studio, "anyflow-shapes")
    assert hint == create_choices.SHAPES_HINT and all(c.visible for c in columns)
    hint, *columns = create_choices.hint_updates(studio, "anyflow-far-1.3b")
    assert hint == create_choices.MODEL_HINT and not any(c.visible for c in columns)


def test_the_download_panel_speaks_plainly():
    from studio.ui import downloads as panel

    offline = panel.start_error(StudioError("Could not reach the hub for a/b: ConnectError: [Errno -2] Name or "
                                            "service not known. Check the network."))
    assert "Errno" not in offline and "unknown until the hub answers" in offline
    licence = panel.start_error(StudioError("'m' is under a non-commercial licence (L). Read it and accept it "
                                            "first: tick the licence box, or pass --accept-license."))
    assert "--accept-license" not in licence and "licence box" in licence
    assert "free in" in panel.free_disk()


# ---- 8: the embedded model and prompts outside its world ----------------------------------------------------
def test_an_unknown_prompt_on_the_embedded_model_says_what_it_drew(studio):
    (result,) = studio.engine.run(RenderRequest(prompt="a purple hexagon dancing", model="anyflow-shapes", steps=1,
                                                seed=3))
    note = create_choices.off_world(studio, result.request, result.frames)
    assert note and "“purple”, “hexagon”, “dancing”" in note and "It drew a" in note
    assert create_choices.off_world(studio, dict(result.request, prompt=PROMPT), result.frames) is None
    assert create_choices.off_world(studio, {"model": "t-far", "prompt": "a purple hexagon"}, result.frames) is None


@pytest.mark.parametrize("prompt,unknown", [(PROMPT, []), ("A Purple hexagon, dancing!", ["purple", "hexagon",
                                                                                          "dancing"])])
def test_unknown_words(prompt, unknown):
    assert judge.unknown_words(prompt) == unknown


# ---- 6: the queue -----------------------------------------------------------------------------------------
def test_a_follower_hears_that_the_queue_changed_its_steps_and_done_is_all_done(studio, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="studio.renders")
    from studio.jobs.dispatcher import Dispatcher
    from studio.engine.events import Result, Status
    from studio.store.queue import QueueStore

    store = QueueStore(studio.history)
    job = {"request": {"prompt": PROMPT, "steps": 3, "seed": 1}}
    jid = store.add(job, source="cli", plan={"kind": "single", "budgets": [3]})
    store.set_steps(jid, 1)  # the Queue tab, while it waits
    studio._dispatcher = dispatcher = Dispatcher(studio, slots=1)
    events = dispatcher.follow(jid)  # listening before it can start
    dispatcher.start()
    seen = list(events)
    told = [e.message for e in seen if isinstance(e, Status)]
    assert any("changed in the queue" in m and "3 -> 1" in m for m in told), told
    assert [e.steps for e in seen if isinstance(e, Result)] == [1]
    assert store.get(jid)["state"] == "done" and store.get(jid)["progress"] == 1.0
    (rid,) = store.get(jid)["result_ids"]
    lines = [r.getMessage() for r in caplog.records if r.name == "studio.renders"]  # item 9: the console's line
    assert len(lines) == 1 and lines[0].startswith(f"render {rid}: 1 step, ") and lines[0].endswith("s, from cli")


def test_picking_a_queued_job_fills_the_steps_box():
    from studio.ui import queue_tab

    assert queue_tab.steps_of(8) == 8 and queue_tab.steps_of("2 → 8") == 8
    assert queue_tab.steps_of("") == gr.skip()


# ---- 9: the console -----------------------------------------------------------------------------------------
def test_native_noise_goes_to_the_log_and_the_studios_lines_to_the_console(tmp_path, capfd):
    import os
    import sys

    from studio.app.desktop import native_noise_to

    log = tmp_path / "desktop.log"
    with native_noise_to(log):
        os.write(2, b"Release of profile requested but WebEnginePage still not deleted\n")
        print("Stopped the renders that were running.", file=sys.stderr)
    print("after the window", file=sys.stderr)
    err = capfd.readouterr().err
    assert "WebEnginePage" in log.read_text() and "WebEnginePage" not in err
    assert "Stopped the renders" in err and "after the window" in err


def test_the_console_names_the_studios_share_switch():
    import app

    lines = app.startup_lines("http://127.0.0.1:7860/", None, False)
    assert lines[0].endswith("http://127.0.0.1:7860/") and "--share" in lines[1] and "share=True" not in "".join(lines)
    assert "https://x.gradio.live" in app.startup_lines("u", "https://x.gradio.live", True)[1]


# ---- 5: storyboard ------------------------------------------------------------------------------------------
def test_a_continuation_shot_shows_the_mode_it_renders_in(studio):
    from studio.jobs import continuity
    from studio.jobs.shot_rules import board_store

    boards = board_store(studio.history)
    board = boards.create("b")
    boards.add_shot(board.id, prompt=PROMPT)
    boards.add_shot(board.id, prompt=PROMPT, continues=True)
    boards.add_shot(board.id, prompt=PROMPT, mode="i2v", image="x.png", continues=True)
    board = boards.get(board.id)
    cells = [continuity.mode_text(board, shot, fmt.MODE_SHORT) for shot in board.shots]
    assert cells == ["T2V", "V2V ↪ 1", "I2V ↪ 2"]


def test_exported_paths_are_relative_or_names(tmp_path):
    from studio.jobs.boards import portable

    render = tmp_path / "data" / "renders" / "a.mp4"
    assert portable(str(render), tmp_path / "exports" / "b") == "../../data/renders/a.mp4"
    assert portable(str(render), None) == "a.mp4" and portable(None, tmp_path) is None
    assert portable("inputs/x.png", tmp_path) == "inputs/x.png"


# ---- 10: the small ones -------------------------------------------------------------------------------------
def test_history_details_say_loras_and_extends_once():
    row = {"id": "r1", "status": "ok", "prompt": "p", "steps": 4, "parent_id": "r0",
           "request": {"mode": "v2v", "model": "m", "seed": 1, "loras": [], "extends": "r0"}}
    text = fmt.details_markdown(row)
    assert "Loras" not in text and "LoRAs" not in text and "Extends" not in text  # lineage() says Extends, once
    row["request"]["loras"] = [["/data/loras/style.safetensors", 0.8]]
    assert "**LoRAs** style.safetensors ×0.8" in fmt.details_markdown(row)


def test_stats_columns_line_up():
    from studio.cli.commands import stats_table

    rows = [{"model": "anyflow-shapes-teacher", "steps": 4, "renders": 12, "accepted_rate": 0.5, "median_seconds": 1.5},
            {"model": "t-far", "steps": 16, "renders": 3, "accepted_rate": None, "median_seconds": None}]
    lines = stats_table(rows)
    assert len({len(line) for line in lines}) == 1, lines  # every line as wide: the columns line up
    assert "starred" in lines[0] and "50%" in lines[1]


def test_light_commands_list_no_gpu_flags(capsys):
    from studio.cli.commands import build_parser

    for command in ("history", "stats", "policies"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        out = capsys.readouterr().out
        assert "--data-dir" in out and not any(f in out for f in ("--device", "--offload", "--farm", "--compile"))


def test_one_word_for_starred_and_labels_that_fit():
    from studio.ui import analytics, extend_action

    assert "Starred" in analytics.TABLE_COLUMNS and "Accepted" not in analytics.TABLE_COLUMNS
    with gr.Blocks():
        ext = extend_action.build("t")
        restore = __import__("studio.ui.restore_file", fromlist=["build"]).build()
    assert ext.frames.step == 4 and len(restore.label) <= 24
