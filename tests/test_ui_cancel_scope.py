"""One cancel bookkeeping for every render in a session: Create/Compare (``drive``) and Storyboard batches.

The storyboard tests drive ``BoardTab.run_stage`` directly with a fake batch runner, ordered by the
generator's own yields (no threads, no sleeps, no model)."""

import threading
from types import SimpleNamespace

import gradio as gr
import pytest

from studio.jobs.boards import BatchDone, ShotEvent
from studio.ui import spacemode
from studio.ui import board_tab
from studio.ui.session import cancel, cancel_scope, new_cancel


def test_cancel_scope_supersedes_the_running_render_and_cleans_up():
    running = threading.Event()
    session = {"cancel": running}
    with cancel_scope(session) as event:
        assert running.is_set(), "a render still running in the session is superseded"
        assert session["cancel"] is event and not event.is_set()
        assert cancel(session) and event.is_set(), "Cancel reaches the current render"
    assert "cancel" not in session


def test_cancel_scope_leaves_a_newer_render_alone():
    session = {}
    with cancel_scope(session):
        newer = new_cancel(session)  # another render of this session started meanwhile
    assert session["cancel"] is newer and not newer.is_set()


def test_cancel_scope_without_a_session():
    with cancel_scope(None) as event:
        assert not event.is_set()


@pytest.fixture()
def tab(studio):
    with gr.Blocks():
        model = gr.Dropdown(choices=[studio.settings.default_model], value=studio.settings.default_model)
        session = gr.State({})
        ui = board_tab.BoardViews(studio)
        tab = board_tab.BoardTab(ui, board_tab.layout(ui, model, session))
        tab.wire()
    board = ui.boards.create("Cancel test", model=None, session=None, preview_policy=tab.default_preview,
                             final_policy=tab.default_final)
    ui.boards.add_shot(board.id, mode="t2v", prompt="a red circle moving left", seed=1, frames=None, image=None,
                       video=None)
    return tab, board.id


def fake_batch(seen: dict):
    """Stands in for spacemode.board_events: one status event, then a batch that stops if cancelled."""
    def board_events(runner, board_id, stage, cancel_event, shot_ids, sid):
        seen["cancel"] = cancel_event
        shot = runner.boards.get(board_id).shots[0]
        yield ShotEvent(shot.id, 0, 1, SimpleNamespace(kind="status", message="loading the model"))
        yield BatchDone("b1", stage, rendered=[], skipped=[], failed={}, cancelled=cancel_event.is_set())
    return board_events


def test_storyboard_cancel_stops_the_batch_and_cleans_the_session(tab, monkeypatch):
    tab, board_id = tab
    seen = {}
    monkeypatch.setattr(spacemode, "board_events", fake_batch(seen))
    session = {}
    run = tab.run_stage(board_id, "preview", None, session, progress=lambda *a, **k: None)
    assert next(run)[tab.c.stop_btn].interactive, "Cancel is enabled while the batch runs"
    assert "loading the model" in next(run)[tab.c.status]
    assert session["cancel"] is seen["cancel"], "the batch's cancel event is the session's"
    assert cancel(session), "the Cancel button finds a running batch"
    done = next(run)
    assert done[tab.c.status].startswith("■ Stopped"), done[tab.c.status]
    assert not done[tab.c.stop_btn].interactive
    with pytest.raises(StopIteration):
        next(run)
    assert "cancel" not in session, "a finished batch leaves nothing for Cancel to find"


def test_storyboard_batch_closed_midway_cleans_the_session(tab, monkeypatch):
    """The browser went away mid-batch: Gradio closes the generator; the next Cancel finds nothing."""
    tab, board_id = tab
    seen = {}
    monkeypatch.setattr(spacemode, "board_events", fake_batch(seen))
    session = {}
    run = tab.run_stage(board_id, "preview", None, session, progress=lambda *a, **k: None)
    next(run)
    next(run)
    assert session["cancel"] is seen["cancel"]
    run.close()
    assert "cancel" not in session
    assert not cancel(session)
