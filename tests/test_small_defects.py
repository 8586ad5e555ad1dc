"""Small defects: a failed render's error in `history`, Compare slots a cap dropped, Analytics scoped to the
visitor's session in Space mode."""

from dataclasses import replace
from types import SimpleNamespace

from studio.cli import commands as cli
from studio.store.history import HistoryStore
from studio.ui import analytics, compare

REQ = {"mode": "t2v", "model": "m", "prompt": "a fox", "seed": 1, "steps": 4}
MINE, THEIRS = "a" * 32, "b" * 32


def _row(store, prompt, status, error=None, session=None, steps=4):
    rid = store.start(dict(REQ, prompt=prompt), steps, "p", "single", 0, session=session)
    store.finish(rid, status, timings={"total": 1.0}, error=error)
    return rid


# ---- `python -m studio history` ----------------------------------------------------------------
def test_history_prints_a_failed_renders_error(tmp_path, capsys):
    store = HistoryStore(tmp_path / "history.db")
    _row(store, "a failed fox", "failed", error="Out of memory at step 3")
    _row(store, "a good fox", "ok")
    store.close()
    assert cli.main(["history", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "error: Out of memory at step 3" in out
    assert out.count("error:") == 1  # only under the failed one


def test_history_prints_errors_on_every_page_row(tmp_path, capsys):
    store = HistoryStore(tmp_path / "history.db")
    for i in range(3):
        _row(store, f"fox {i}", "failed", error=f"problem {i}")
    store.close()
    assert cli.main(["history", "--data-dir", str(tmp_path), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "problem 2" in out and "problem 1" in out and "problem 0" not in out


# ---- Compare: slots dropped by a cap ----------------------------------------------------------
def test_slots_a_cap_dropped_say_so_and_why():
    note = "This shared Space caps step budgets at 16: [4, 8, 16, 32] -> [4, 8, 16]."
    labels = compare.dropped_slots([4, 8, 16, 32], rendered={0: 4, 1: 8, 2: 16}, notes=["Frames rounded", note])
    assert list(labels) == [3]
    assert "32 steps" in labels[3] and "dropped" in labels[3] and "16" in labels[3]
    assert compare.drop_reason(["Frames rounded", note]) == note


def test_two_slots_merged_into_the_cap():
    labels = compare.dropped_slots([8, 16, 32, 64], rendered={0: 8}, notes=[])
    assert sorted(labels) == [1, 2, 3] and all("capped at 8" in v for v in labels.values())


def test_no_slot_dropped_without_a_cap():
    assert compare.dropped_slots([2, 4], rendered={0: 2, 1: 4}, notes=[]) == {}
    assert compare.dropped_slots([2, 4], rendered={}, notes=[]) == {}  # nothing rendered (failed): not a cap


# ---- Analytics in Space mode ------------------------------------------------------------------
def _fake_studio(store, space):
    return SimpleNamespace(history=store, settings=SimpleNamespace(space=space))


def test_space_analytics_shows_only_this_sessions_stats(tmp_path):
    store = HistoryStore(tmp_path / "history.db")
    _row(store, "mine", "ok", session=MINE, steps=2)
    _row(store, "theirs", "ok", session=THEIRS, steps=8)
    space = _fake_studio(store, space=True)
    assert [r["steps"] for r in analytics.visible_stats(space, {"sid": MINE})] == [2]
    assert analytics.visible_stats(space, None) == []  # no session yet: nobody's stats
    assert [r["steps"] for r in analytics.visible_stats(_fake_studio(store, space=False), None)] == [2, 8]
    store.close()


def test_space_analytics_first_paint_shows_nobodys_stats(tmp_path, settings):
    """The charts built with the page are the same for every visitor: in Space mode they hold no one's renders."""
    import gradio as gr

    from studio.app.services import Studio

    studio = Studio.open(replace(settings, space=True))
    rid = _row(studio.history, "someone else's render", "ok", session=THEIRS, steps=8)
    studio.history.table.update(rid, {"model": "their-secret-model"})
    with gr.Blocks():
        tab = analytics.build(studio, gr.State({}))
    seconds_plot, starred_plot = tab["outputs"][1:3]
    assert "their-secret-model" not in seconds_plot.value + starred_plot.value
    studio.close()


def test_compare_in_the_app_labels_the_dropped_slot(tmp_path, tiny_dirs):
    """Through the running app: a queue cap of 2 steps (threshold -1: always on) turns budgets 1, 2, 4 into 1, 2."""

    from conftest import launch_app, page_client

    demo, url, studio = launch_app(tmp_path, tiny_dirs, policies="[queue]\nthreshold = -1\nmax_steps = 2\n")
    try:
        job = page_client(url).submit("t-far", "a red circle", [1, 2, 4], 3, False, False,
                                                api_name="/compare_budgets")
        job.result(timeout=120)
        outs = job.outputs()
    finally:
        demo.close()
        studio.close()
    last_label = [o[2]["label"] for o in outs if isinstance(o[2], dict) and o[2].get("label")][-1]
    assert last_label == "4 steps · dropped: capped at 2"
    texts = [x for o in outs for x in o if isinstance(x, str) and x.startswith("Seed")]
    assert "[1, 2, 4] -> [1, 2]" in texts[-1]  # the status says why
