"""Typed jobs (job_kind.py, job_kinds.py): re-runs keep finished work, shots own their revision, extensions own
their source, and untyped jobs queued before kinds existed still run (issue 22, items 1-4)."""

import json
import sqlite3
import threading
import time

import numpy as np
import pytest
import sqlite_utils

from studio.jobs import extend, following as jobs
from studio.engine import media
from studio.jobs.boards import BoardRunner
from studio.jobs.dispatcher import Dispatcher, JobStream
from studio.errors import StudioError
from studio.store.history import HistoryStore, migrate
from studio.jobs.kind import load
from studio.jobs.kinds import KINDS, ShotJob
from studio.store.queue import QueueStore
from studio.engine.render import RenderRequest


def _refine(prompt: str) -> dict:
    return {"request": {"prompt": prompt, "steps": 4, "seed": 5, "model": "t-bidi"}, "preview": 1}


def _stop_after_preview(studio, hold_step, prompt: str) -> tuple[str, dict]:
    """A refine job (1 then 4 steps) whose studio stops during the final budget, its preview starred: (job id,
    the preview's row)."""
    hold = hold_step(studio.models.get("t-bidi").pipe.scheduler, at=3, timeout=120)  # the final budget's step 2
    dispatcher = Dispatcher(studio)
    jid = dispatcher.submit(_refine(prompt), source="create")
    dispatcher.start()
    assert hold.reached.wait(120)
    deadline = time.monotonic() + 60
    while 0 not in studio.history.finished_budgets(jid) and time.monotonic() < deadline:  # its files being written
        time.sleep(0.02)
    preview = studio.history.finished_budgets(jid)[0]
    studio.history.set_accepted(preview["id"])
    stopper = threading.Thread(target=dispatcher.stop)
    stopper.start()
    hold.release.set()
    stopper.join()
    assert dispatcher.store.get(jid)["state"] == "queued"
    return jid, preview


def test_take_back_never_takes_a_finished_budget(tmp_path):
    history = HistoryStore(tmp_path / "history.db")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"mp4")
    ok = history.start({"prompt": "kept"}, 1, "job-1", "refine", 0)
    history.finish(ok, "ok", video_path=str(video))
    with pytest.raises(StudioError, match="already finished"):
        history.start({"prompt": "kept"}, 1, "job-1", "refine", 0, take_back=True)
    assert history.get(ok)["status"] == "ok" and video.is_file()
    left = history.start({"prompt": "kept"}, 4, "job-1", "refine", 1)
    history.finish(left, "interrupted")
    assert history.start({"prompt": "kept"}, 4, "job-1", "refine", 1, take_back=True) == left  # its own, taken back
    assert len(history.plan("job-1")) == 2
    history.close()


def test_a_refine_job_stopped_after_its_preview_keeps_it(studio, hold_step, capsys):
    from studio.cli.commands import main

    jid, preview = _stop_after_preview(studio, hold_step, "kept preview")
    (job,) = Dispatcher(studio).run_pending()  # the next start
    assert job["state"] == "done" and job["result_ids"][0] == preview["id"]
    rows = studio.history.plan(jid)
    assert [(r["budget_index"], r["status"]) for r in rows] == [(0, "ok"), (1, "ok")]
    again = rows[0]
    assert (again["id"], again["video_path"], again["accepted"]) == (preview["id"], preview["video_path"], 1)
    assert again["finished_at"] == preview["finished_at"]  # not rendered again
    assert all(media.read_video(r["video_path"])[0] is not None for r in rows)
    assert main(["history", "--data-dir", str(studio.settings.data_dir), "--json", "--search", "kept preview"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in rows)


def test_a_rerun_that_fails_leaves_the_finished_budgets(studio, hold_step, monkeypatch):
    jid, preview = _stop_after_preview(studio, hold_step, "failing rerun")

    def no_memory(req):
        raise StudioError("not enough memory now")

    monkeypatch.setattr(studio.engine, "_check_memory", no_memory)
    (job,) = Dispatcher(studio).run_pending()
    assert job["state"] == "failed"
    rows = studio.history.plan(jid)
    assert [(r["budget_index"], r["status"]) for r in rows] == [(0, "ok"), (1, "failed")]
    assert (rows[0]["id"], rows[0]["accepted"], rows[0]["video_path"]) == (preview["id"], 1, preview["video_path"])
    assert media.read_video(rows[0]["video_path"])[0].shape[0] > 0


# ---- shots own their revision ------------------------------------------------------------------
def _board(studio, name: str, n: int = 2, **first):
    runner = BoardRunner(studio)
    board = runner.boards.create(name, model="t-far")
    for i in range(n):
        runner.boards.add_shot(board.id, f"{name} shot {i}", seed=i, **(first if i == 0 else {}))
    return runner, runner.boards.get(board.id)


def test_editing_or_deleting_a_shot_cancels_its_waiting_jobs(studio):
    runner, board = _board(studio, "edited", 3)
    dead = Dispatcher(studio)  # never started: the jobs wait
    shots = runner._queue_shots(JobStream(dead), board, "preview", board.shots, "preview", None)
    by_shot = {shot.id: jid for jid, (_, shot) in shots.items()}
    runner.boards.update_shot(board.shots[0].id, prompt="prompt B")
    runner.boards.delete_shot(board.shots[1].id)
    store = QueueStore(studio.history)
    first, second, third = (store.get(by_shot[s.id]) for s in board.shots)
    assert (first["state"], first["error"]) == ("cancelled", "Shot 1 was edited while this render waited.")
    assert (second["state"], second["error"]) == ("cancelled", "Shot 2 was deleted while this render waited.")
    assert third["state"] == "queued"
    assert runner.boards.get_shot(board.shots[0].id).revision == 1
    (done,) = Dispatcher(studio).run_pending()
    assert done["id"] == third["id"] and done["state"] == "done"


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_a_render_whose_shot_changed_while_it_ran_is_not_placed(studio, hold_step, change):
    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=1)
    runner, board = _board(studio, f"changed {change}", 1)
    shot = board.shots[0]
    got = []
    reader = threading.Thread(target=lambda: got.extend(runner.run(board.id, "preview")))
    reader.start()
    assert hold.reached.wait(60)
    if change == "edit":
        runner.boards.update_shot(shot.id, prompt="prompt B")
    else:
        runner.boards.delete_shot(shot.id)
    hold.release.set()
    reader.join(60)
    done = got[-1]
    (row,) = studio.history.search(text=f"changed {change} shot")
    assert row["status"] == "ok" and row["note"].startswith("Not placed on the storyboard: ")
    assert ("edited" if change == "edit" else "deleted") in row["note"]
    assert done.rendered == [shot.id] and not done.failed  # the job did not fail (no NotFoundError)
    if change == "edit":
        assert runner.boards.get_shot(shot.id).preview_id is None
        assert runner.pending(runner.boards.get(board.id), "preview")[0][0].id == shot.id  # still to do


def test_set_render_on_a_deleted_shot_is_a_studio_error(studio):
    runner, board = _board(studio, "gone", 1)
    runner.boards.delete_shot(board.shots[0].id)
    with pytest.raises(StudioError, match="No shot"):
        runner.boards.set_render(board.shots[0].id, "preview", "r1")


def test_a_waiting_job_of_an_edited_shot_is_refused_when_claimed(studio):
    """An edit that raced the cancel (a job claimed from another process's queue): the kind refuses to run it."""
    runner, board = _board(studio, "raced", 1)
    shot = board.shots[0]
    job = ShotJob({"request": runner.shot_request(board, shot).to_dict(), "policy": "preview",
                   "board": {"board": board.id, "name": board.name, "shot": shot.id, "stage": "preview",
                             "batch": None, "revision": shot.revision}})
    studio.history.db.execute("UPDATE shots SET revision = 7 WHERE id = ?", [shot.id])
    with pytest.raises(StudioError, match="was edited while its render waited"):
        job.plan(studio, {"id": "j"}, QueueStore(studio.history))


def test_two_preview_all_presses_queue_each_shot_once(studio, hold_step):
    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=1)
    runner, board = _board(studio, "twice", 3)
    first = runner.run(board.id, "preview")
    events = [next(first)]
    assert hold.reached.wait(30)
    second = BoardRunner(studio).run(board.id, "preview")  # another tab, while the first batch runs
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("b", list(second)))
    reader.start()
    hold.release.set()
    events += list(first)
    reader.join(60)
    assert len(QueueStore(studio.history).list()) == 3  # one job per shot
    rows = studio.history.search(text="twice shot")
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    assert sorted(got["b"][-1].rendered) == sorted(events[-1].rendered) == sorted(s.id for s in board.shots)


# ---- extensions own their source ----------------------------------------------------------------
def _original(studio, prompt="a ball rolls"):
    result = studio.engine.run(RenderRequest(prompt=prompt, model="t-far", seed=3, steps=2))[-1]
    return result, extend.load_source(studio.history, result.record_id)


def test_a_queued_extension_owns_its_source(studio):
    original, source = _original(studio)
    frames = source.frames.copy()
    req, plan = extend.extension_request(studio.engine, source, 8, seed=11)
    jid = JobStream(Dispatcher(studio)).submit(extend.job(source, req, plan), source="extend")  # waits
    studio.history.delete(original.record_id)  # the original and its file go while it waits
    (job,) = Dispatcher(studio).run_pending()
    assert (job["id"], job["state"]) == (jid, "done")
    child = studio.history.get(job["result_ids"][0])
    joined, _ = media.read_video(child["video_path"])
    assert child["status"] == "ok" and len(joined) == plan.joined_frames
    assert np.abs(joined[: len(frames)].astype(int) - frames.astype(int)).mean() < 3  # starts with its source


def test_a_legacy_extension_whose_source_vanished_fails_its_row(studio):
    """A job queued before extensions copied their source: the original deleted, joining fails, and the row too
    (it held the un-joined continuation as ``ok``)."""
    original, source = _original(studio)
    req, plan = extend.extension_request(studio.engine, source, 8, seed=11)
    legacy = {"request": req.to_dict(), "extend": {"source": original.record_id, "plan": plan.__dict__}}
    jid = QueueStore(studio.history).add(legacy, source="extend", kind="extension")
    studio.history.delete(original.record_id, remove_files=False)  # its file stays for the render to read
    (job,) = Dispatcher(studio).run_pending()
    assert (job["id"], job["state"]) == (jid, "failed") and "Joining the extension failed" in job["error"]
    (row,) = studio.history.plan(jid)
    assert row["status"] == "failed" and "Joining the extension failed" in row["error"]


def test_rerunning_an_extended_clip_redoes_the_extension(studio):
    original, source = _original(studio, "extend me again")
    req, plan = extend.extension_request(studio.engine, source, 8, seed=11, steps=1)
    (first,) = list(e for e in extend._raising(jobs.follow_extension(studio, source, req, plan))
                    if e.kind == "result")
    jid, again_plan = jobs.queue_extension_rerun(studio, first.record_id)
    assert again_plan == plan
    (job,) = Dispatcher(studio).run_pending()
    rerun = studio.history.get(job["result_ids"][0])
    made = studio.history.get(first.record_id)
    for key in ("frames", "seed", "prompt", "steps", "parent_id"):
        assert rerun[key] == made[key], key
    assert rerun["frames"] == plan.joined_frames == len(media.read_video(rerun["video_path"])[0])


# ---- untyped jobs queued before kinds existed ------------------------------------------------------
def test_untyped_jobs_queued_before_kinds_migrate(tmp_path):
    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "history.db"))
    migrate(db, upto=8)
    for jid, job in (("r", {"request": {"prompt": "p"}}), ("s", {"request": {"prompt": "p"}, "board": {
            "board": "b", "shot": "s1", "stage": "preview", "batch": None}}),
            ("e", {"request": {"prompt": "p"}, "extend": {"source": "x", "plan": {}}})):
        db.conn.execute("INSERT INTO jobs (id, kind, request, state, position) VALUES (?, 'render', ?, 'queued', 1)",
                        [jid, json.dumps(job)])
    db.conn.commit()
    db.conn.close()
    history = HistoryStore(tmp_path / "history.db")
    store = QueueStore(history)
    kinds = {jid: load(store.get(jid), KINDS) for jid in "rse"}
    assert {jid: k.name for jid, k in kinds.items()} == {"r": "render", "s": "shot", "e": "extension"}
    assert store.get("s")["key"] == kinds["s"].key == "shot:s1:preview:0"
    assert all(store.get(jid)["job"]["v"] == 1 for jid in "rse")
    history.close()


def test_history_rerun_of_an_extended_clip_queues_the_extension(studio):
    from studio.ui import history as history_tab

    original, source = _original(studio, "rerun from history")
    req, plan = extend.extension_request(studio.engine, source, 4, seed=11, steps=1)
    (first,) = [e for e in extend._raising(jobs.follow_extension(studio, source, req, plan)) if e.kind == "result"]
    row = studio.history.get(first.record_id)
    assert extend.is_extension(row) and not extend.is_extension(studio.history.get(original.record_id))
    jid = history_tab.rerun_extension(studio, row)
    queued = QueueStore(studio.history).get(jid)
    assert queued["kind"] == "extension" and queued["state"] in ("queued", "running", "done")  # its dispatcher runs
    assert queued["job"]["request"]["seed"] == 11 and queued["job"]["extend"]["plan"]["new_frames"] == plan.new_frames
