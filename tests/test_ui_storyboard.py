"""Storyboards, budget policies, analytics and Space mode through the UI (gradio_client, in-process).

Tiny test models (32x32, 9 frames); policies here are 1-step previews and 2-step finals so a board
of three shots previews and finishes in a few seconds on 2 cores.
"""

import json
import sys
import types
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402

from conftest import launch_app, page_client  # noqa: E402
from studio.engine import space  # noqa: E402
from studio.jobs.shot_rules import board_store  # noqa: E402
from studio.config import ASSETS_DIR  # noqa: E402
from studio.store.history import Query  # noqa: E402
from studio.ui import analytics  # noqa: E402

POLICIES = """
[policies.preview]
steps = 1
[policies.final]
steps = 2
"""


def _launch(root, tiny_dirs, space_mode=False):
    return launch_app(root, tiny_dirs, policies=POLICIES, space=space_mode)


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_dirs):
    demo, url, studio = _launch(tmp_path_factory.mktemp("boards-ui"), tiny_dirs)
    yield page_client(url), studio
    demo.close()
    studio.close()


def texts(outputs):
    return [v for out in outputs for v in (out if isinstance(out, (list, tuple)) else [out]) if isinstance(v, str)]


def run(client, *args, api_name):
    job = client.submit(*args, api_name=api_name)
    job.result(timeout=120)
    return job.outputs()


def galleries(outputs):
    """Each yielded gallery value (a list of {image, caption} items)."""
    found = []
    for out in outputs:
        for v in out if isinstance(out, (list, tuple)) else [out]:
            v = v.get("value") if isinstance(v, dict) and v.get("__type__") == "update" else v
            if isinstance(v, list) and v and isinstance(v[0], dict) and "caption" in v[0]:
                found.append(v)
    return found


def live_updates(outputs) -> list[dict]:
    """The finished shots in the Storyboard's live component's values (a list each: the shots finished since the
    last one), in order, each once."""
    found, seen = [], set()
    for out in outputs:
        for v in out if isinstance(out, (list, tuple)) else [out]:
            if isinstance(v, str) and v.startswith('[{"shot"') and v not in seen:
                seen.add(v)
                found.extend(json.loads(v))
    return found


def test_storyboard_preview_all_then_finals(app):
    client, studio = app
    store = board_store(studio.history)
    client.predict("Circles", "t-far", api_name="/board_create")
    (board,) = [b for b in store.list() if b["name"] == "Circles"]
    for i, prompt in enumerate(["a red circle moving left", "a blue square moving right", "a green circle falling"]):
        client.predict(board["id"], "", "t2v", prompt, 10 + i, 0, None, None, api_name="/shot_add")
    shots = store.get(board["id"]).shots
    assert [s.seed for s in shots] == [10, 11, 12]

    outs = run(client, board["id"], "", api_name="/board_preview_all")
    # shot by shot: each finished shot sends its own tile and row (issue 27), not the whole board
    finished = live_updates(outs)
    assert [d["index"] for d in finished] == [0, 1, 2], finished
    assert all(d["caption"].endswith(" preview") and d["tile"].startswith("data:image/png;base64,")
               and d["row"][6].startswith("1 step") for d in finished)
    # the batch streams none of the gallery (the page draws the whole board once, chained after the batch)
    assert galleries(outs) == []
    opened = client.predict(board["id"], api_name="/board_open")
    assert [sum(item["caption"].endswith(" preview") for item in g) for g in galleries([opened])] == [3]
    assert any("Rendering 3 previews at **preview** (1 step)" in t for t in texts(outs))
    assert any(t.startswith("✓ Done: previews") and "3 rendered" in t for t in texts(outs))
    shots = store.get(board["id"]).shots
    assert all(studio.history.get(s.preview_id)["steps"] == 1 for s in shots)

    # approve two shots, render finals at the final policy
    for shot in (shots[0], shots[2]):
        client.predict(board["id"], shot.id, api_name="/shot_approve")
    outs = run(client, board["id"], "", api_name="/board_finals")
    assert any("Rendering 2 finals at **final** (2 steps)" in t for t in texts(outs))
    shots = store.get(board["id"]).shots
    finals = [studio.history.get(s.final_id) for s in shots if s.final_id]
    assert [(r["steps"], r["policy"]) for r in finals] == [(2, "final"), (2, "final")]

    # approving one more: finals carry on, the two finished ones are skipped (and said so)
    client.predict(board["id"], shots[1].id, api_name="/shot_approve")
    first_final = shots[0].final_id
    outs = run(client, board["id"], "", api_name="/board_finals")
    assert any("Rendering 1 final at **final** (2 steps); 2 already done, skipped" in t for t in texts(outs))
    assert store.get(board["id"]).shots[0].final_id == first_final

    # exports: contact sheet, joined finals, board JSON
    files, _, note = client.predict(board["id"], api_name="/board_export")
    files = files.get("value", files) if isinstance(files, dict) else files
    assert all(Path(f).is_file() for f in files)
    names = sorted(Path(f).suffix for f in files)
    assert names == [".json", ".mp4", ".png"], files
    assert "Exported 3 files" in note


def test_shot_editing_reorder_and_reroll(app):
    client, studio = app
    store = board_store(studio.history)
    client.predict("Edits", "t-far", api_name="/board_create")
    (board,) = [b for b in store.list() if b["name"] == "Edits"]
    for prompt in ("first shot", "second shot"):
        client.predict(board["id"], "", "t2v", prompt, 1, 0, None, None, api_name="/shot_add")
    a, b = store.get(board["id"]).shots
    client.predict(board["id"], b.id, api_name="/shot_up")
    assert [s.prompt for s in store.get(board["id"]).shots] == ["second shot", "first shot"]
    client.predict(board["id"], a.id, api_name="/shot_duplicate")
    assert [s.prompt for s in store.get(board["id"]).shots] == ["second shot", "first shot", "first shot"]
    client.predict(board["id"], a.id, "t2v", "first shot, edited", 5, 0, None, None, api_name="/shot_save")
    assert store.get_shot(a.id).prompt == "first shot, edited" and store.get_shot(a.id).seed == 5
    outs = run(client, board["id"], a.id, api_name="/shot_reroll")  # new seed, then a preview of that shot
    shot = store.get_shot(a.id)
    assert shot.seed != 5 and shot.preview_id and studio.history.get(shot.preview_id)["seed"] == shot.seed
    assert any("New seed" in t for t in texts(outs))
    client.predict(board["id"], b.id, api_name="/shot_delete")
    assert len(store.get(board["id"]).shots) == 2
    # an i2v shot keeps its uploaded first frame under the studio's own folder (it outlives Gradio's cache)
    image = ASSETS_DIR / "examples" / "red_circle_on_black.png"
    if image.is_file():
        client.predict(board["id"], "", "i2v", "a red circle moving right", 3, 0, handle_file(str(image)), None,
                       api_name="/shot_add")
        shot = store.get(board["id"]).shots[-1]
        assert shot.mode == "i2v" and Path(shot.image).is_file() and "/inputs/" in shot.image
        client.predict(board["id"], shot.id, api_name="/shot_delete")
    # an i2v shot without an image is refused with a message, nothing added
    outs = client.predict(board["id"], "", "i2v", "needs an image", 1, 0, None, None, api_name="/shot_add")
    assert any("needs a first frame" in t for t in texts([outs])) and len(store.get(board["id"]).shots) == 2


def test_analytics_table_matches_history_stats(app):
    client, studio = app
    rows = studio.history.search(Query(status="ok", limit=5))
    studio.history.set_accepted(rows[0]["id"], True)
    table, seconds_svg, starred_svg, summary = client.predict(api_name="/budget_stats")
    stats = studio.history.stats()
    shown = [dict(zip(table["headers"], r)) for r in table["data"]]
    assert len(shown) == len(stats) and stats
    for got, want in zip(shown, stats):
        assert (got["Model"], int(got["Steps"]), int(got["Renders"])) == (want["model"], want["steps"], want["renders"])
        assert got["Starred"] == f"{100 * want['accepted_rate']:.0f}%"
        assert float(got["Median seconds"]) == pytest.approx(want["median_seconds"])
    assert "finished render" in summary
    assert seconds_svg.count('class="bar"') == len(stats) and starred_svg.count('class="bar"') == len(stats)


def test_analytics_bars_group_by_budget_in_step_order_one_colour_per_model():
    from studio.ui import charts

    ids = ["anyflow-shapes", "anyflow-wan-1.3b", "anyflow-shapes-teacher"]
    assert analytics.model_tags(ids) == {"anyflow-shapes": "shapes", "anyflow-wan-1.3b": "wan-1.3b",
                                         "anyflow-shapes-teacher": "shapes-teacher"}
    rows = [{"model": m, "steps": n, "renders": 1, "accepted_rate": 0.5, "median_seconds": n / 4}
            for m in ("anyflow-shapes", "anyflow-shapes-teacher") for n in (16, 2)]
    seconds, starred = analytics.budget_charts(rows)
    ticks = [seconds.index(f">{n}</text>") for n in (2, 16)]
    assert ticks[0] < ticks[1]  # numeric step order, not text order
    for svg in (seconds, starred):
        assert svg.count('class="bar"') == 4
        assert svg.count(f'fill="{charts.PALETTE[0]}"') == 3 and svg.count(f'fill="{charts.PALETTE[1]}"') == 3
    assert ">shapes</text>" in seconds and ">shapes-teacher</text>" in seconds  # short legend tags
    assert 'data-series="anyflow-shapes-teacher" data-steps="16"' in seconds  # hover keeps the whole id
    assert "50%" in starred and ">100</text>" in starred  # % starred on a 0-100 axis
    one, _ = analytics.budget_charts(rows[:2])
    assert ">anyflow-shapes</text>" in one and one.count('class="bar"') == 2
    empty, _ = analytics.budget_charts([])
    assert "no finished renders yet" in empty and 'class="bar"' not in empty


def render_args(prompt, seed, steps=1, refine=False, preview=1):
    return ("t2v", "t-far", prompt, "", None, None, steps, seed, False, "32x32", 9, refine, preview)


def test_space_sessions_do_not_see_each_other(tmp_path, tiny_dirs):
    demo, url, studio = _launch(tmp_path, tiny_dirs, space_mode=True)
    studio.policies.space_max_steps = 2
    try:
        a, b = page_client(url), page_client(url)
        ra = run(a, *render_args("visitor a fox", 1), api_name="/render")
        rb = run(b, *render_args("visitor b fox", 2, steps=4), api_name="/render")
        items_a, _ = a.predict("fox", "Any", "Any", "Any", "Any", False, api_name="/history_search")
        items_b, _ = b.predict("fox", "Any", "Any", "Any", "Any", False, api_name="/history_search")
        assert [i["caption"].split(" · ")[-1] for i in items_a] == ["visitor a fox"]
        assert [i["caption"].split(" · ")[-1] for i in items_b] == ["visitor b fox"]
        rows = studio.history.search(Query(text="fox"))
        assert len({r["session"] for r in rows}) == 2 and all(space.valid_session(r["session"]) for r in rows)
        # b's render was capped by the Space policy, and the UI said so on the render
        assert any("capped from 4" in str(v) for out in rb for v in out), "label names the cap"
        assert any("caps step budgets at 2" in t for t in texts(rb))
        # a's render came back to a, recorded under a's session
        (res_a,) = [o[4] for o in ra if isinstance(o[4], dict) and o[4].get("role")]
        session_a = studio.history.get(res_a["record_id"])["session"]
        assert studio.history.get(res_a["record_id"])["prompt"] == "visitor a fox"
        # a cannot open b's render by id; b can (the control)
        b_id = next(r["id"] for r in rows if r["prompt"] == "visitor b fox")
        _, details = a.predict(b_id, api_name="/history_details")
        _, own = b.predict(b_id, api_name="/history_details")
        assert "visitor b fox" in own and "visitor b" not in details
        # boards are per session too
        a.predict("A's board", "t-far", api_name="/board_create")
        store = board_store(studio.history)
        (board,) = store.list()
        assert board["session"] == session_a
        assert "A's board" in str(a.predict(board["id"], api_name="/board_open"))  # the owner opens it
        assert "A's board" not in str(b.predict(board["id"], api_name="/board_open"))
    finally:
        demo.close()
        studio.close()


def test_gpu_wrapped_render_still_yields_its_preview_first(app, monkeypatch):
    client, studio = app
    calls = []
    fake = types.ModuleType("spaces")

    def GPU(duration):
        def decorate(fn):
            def wrapper(*args, **kwargs):
                calls.append(duration(*args, **kwargs) if callable(duration) else duration)
                yield from fn(*args, **kwargs)  # ZeroGPU runs generators and forwards each yield
            return wrapper
        return decorate

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    outs = run(client, *render_args("a wrapped red circle", 3, steps=3, refine=True), api_name="/render")
    roles = [o[4]["role"] for o in outs if isinstance(o[4], dict) and o[4].get("role")]
    assert roles == ["preview", "final"]
    first_live = next(i for i, o in enumerate(outs) if isinstance(o[4], dict) and o[4].get("role"))
    assert any("chunk" in str(v) for o in outs[:first_live] for v in o), "chunks streamed before the preview result"
    assert len(calls) == 1 and 15 <= calls[0] <= 300  # one GPU call, duration from steps and frames


def test_seconds_chart_draws_one_coloured_line_per_model():
    from studio.ui import charts

    empty = charts.seconds_chart([])
    assert "<svg" in empty and "timings appear here" in empty and "<polyline" not in empty
    rows = [{"steps": s, "seconds": 0.3 * s, "model": m} for m in ("student", "teacher<x>") for s in (2, 4, 16)]
    svg = charts.seconds_chart(rows)
    assert svg.count('class="series"') == 2 and svg.count("<circle") == 6
    assert charts.PALETTE[0] in svg and charts.PALETTE[1] in svg  # distinct colours, in the legend too
    assert "teacher&lt;x&gt;" in svg and "teacher<x>" not in svg  # names are escaped
    assert ">16<" in svg and ">5<" in svg  # budget ticks; y axis rounded up to 5 s (max 4.8)
