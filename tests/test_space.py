"""Space mode: sessions see only their own renders, budgets capped, ZeroGPU wrapper, clean-up."""

import sys
import time
import types
from dataclasses import replace
from pathlib import Path

from studio.engine import space
from studio.app.cleanup import Janitor, purge_expired, remove_partial_files
from studio.store.history import HistoryStore
from studio.engine.render import Plan, RenderRequest
from studio.app.services import Studio


def test_two_sessions_do_not_see_each_others_renders(studio):
    a, b = space.new_session_id(), space.new_session_id()
    ra = [e for e in studio.engine.render(RenderRequest(prompt="visitor a fox", seed=1, steps=1), session=a)
          if e.kind == "result"][0]
    rb = [e for e in studio.engine.render(RenderRequest(prompt="visitor b fox", seed=1, steps=1), session=b)
          if e.kind == "result"][0]
    assert [r["id"] for r in studio.history.search(text="fox", session=a)] == [ra.record_id]
    assert [r["id"] for r in studio.history.search(text="fox", session=b)] == [rb.record_id]
    assert f"/{a}/" in ra.video_path and f"/{b}/" in rb.video_path  # files under unguessable session folders
    assert space.valid_session(a) and not space.valid_session("../etc") and len(a) == 32


def test_space_mode_caps_steps_by_policy(settings):
    studio = Studio.open(replace(settings, space=True))
    studio.policies.space_max_steps = 2
    events = list(studio.engine.render(RenderRequest(prompt="a long render", seed=0), Plan.refine(1, 32)))
    results = [e for e in events if e.kind == "result"]
    assert [r.steps for r in results] == [1, 2]
    row = studio.history.get(results[1].record_id)
    assert (row["steps"], row["requested_steps"], row["capped"]) == (2, 32, 1)
    studio.close()


def test_gpu_wrapper_is_identity_without_spaces(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError

    def gen(n):
        yield "preview"
        yield "final"

    assert space.gpu(60)(gen) is gen


def test_gpu_wrapped_render_still_streams_preview_first(monkeypatch, studio):
    calls = {}
    fake = types.ModuleType("spaces")

    def GPU(duration):
        def decorate(fn):
            def wrapper(*args, **kwargs):
                calls["duration"] = duration(*args, **kwargs) if callable(duration) else duration
                yield from fn(*args, **kwargs)  # ZeroGPU runs generators and forwards each yield
            return wrapper
        return decorate

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)

    def duration(prompt, preview, steps):
        return space.estimate_gpu_seconds(preview + steps, 9, 32, 32)

    @space.gpu(duration)
    def render(prompt, preview, steps):
        for event in studio.engine.render(RenderRequest(prompt=prompt, seed=0), Plan.refine(preview, steps)):
            if event.kind == "result":
                yield event.role, event.steps

    assert list(render("a wrapped fox", 1, 2)) == [("preview", 1), ("final", 2)]
    assert 15 <= calls["duration"] <= 300


def test_duration_estimate_grows_with_steps_and_frames():
    short = space.estimate_gpu_seconds(4, 81, 480, 832)
    assert space.estimate_gpu_seconds(16, 81, 480, 832) > short > space.estimate_gpu_seconds(4, 17, 480, 832)
    assert space.estimate_gpu_seconds(10_000, 81, 480, 832) == 300


def test_expired_renders_and_partial_files_are_cleaned(studio, settings):
    res = studio.engine.run(RenderRequest(prompt="an old render", seed=0, steps=1))[0]
    kept = studio.engine.run(RenderRequest(prompt="a new render", seed=0, steps=1))[0]
    studio.history.table.update(res.record_id, {"created_at": "2020-01-01T00:00:00.000+00:00"})
    assert purge_expired(studio.history, ttl_hours=24) == 1
    assert studio.history.get(res.record_id) is None and studio.history.get(kept.record_id)
    assert not Path(res.video_path).exists() and Path(kept.video_path).exists()
    partial = settings.renders_dir / "x" / ".abc.part.mp4"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half")
    assert remove_partial_files(settings.renders_dir) == 1 and not partial.exists()


def _finished_render(history: HistoryStore, video: Path) -> str:
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"an mp4")
    rid = history.start({"mode": "t2v", "model": "m", "prompt": "a fox", "seed": 1}, 1, "plan", "single", 0)
    history.finish(rid, "ok", video_path=str(video))
    return rid


def test_janitor_purges_an_expired_render_while_it_runs(tmp_path):
    history = HistoryStore(tmp_path / "data" / "history.db")
    old = _finished_render(history, tmp_path / "data" / "renders" / "old.mp4")
    new = _finished_render(history, tmp_path / "data" / "renders" / "new.mp4")
    history.table.update(old, {"created_at": "2020-01-01T00:00:00.000+00:00"})
    janitor = Janitor(history, ttl_hours=24, interval=0.01, boards=None).start()
    try:  # the janitor's own thread does the purge: wait for it, up to a deadline
        deadline = time.monotonic() + 20
        while history.get(old) is not None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        janitor.stop()
    assert history.get(old) is None, "the janitor never purged the expired render"
    assert not (tmp_path / "data" / "renders" / "old.mp4").exists()
    assert history.get(new) is not None and (tmp_path / "data" / "renders" / "new.mp4").exists()
    history.close()


def test_expired_boards_go_too_unless_a_batch_is_running(studio, settings):
    from studio.jobs.shot_rules import board_store
    from studio.ui import spacemode

    boards = board_store(studio.history)
    old, busy, fresh = (boards.create(name) for name in ("old", "busy", "fresh"))
    boards.add_shot(old.id, "a shot on an old board")
    boards.start_batch(busy.id, "preview")
    for b in (old, busy):
        boards.db["boards"].update(b.id, {"updated_at": "2020-01-01T00:00:00.000+00:00"})
    assert purge_expired(studio.history, ttl_hours=24, boards=boards) == 1
    assert not boards.exists(old.id) and boards.exists(busy.id) and boards.exists(fresh.id)
    assert list(boards.db.execute("SELECT count(*) FROM shots WHERE board_id = ?", [old.id]))[0][0] == 0
    # uploads: Gradio's cache cleanup, only in Space mode, at the same time to live
    from dataclasses import replace
    from types import SimpleNamespace

    assert spacemode.upload_cache(studio) is None
    space = SimpleNamespace(settings=replace(settings, space=True, space_ttl_hours=2.0))
    assert spacemode.upload_cache(space) == (3600, 7200)


def test_a_session_id_must_be_32_hex_digits_before_it_names_a_folder(studio, settings):
    import pytest

    from studio.errors import InvalidRequest

    for bad in ("../../etc", "a" * 31, "A" * 32, "", "0" * 31 + "/"):
        with pytest.raises(InvalidRequest, match="session"):
            list(studio.engine.render(RenderRequest(prompt="a fox", seed=0, steps=1), session=bad))
    assert not (settings.renders_dir.parent / "etc").exists()
    assert studio.history.search(text="fox") == []  # refused before any row or file
