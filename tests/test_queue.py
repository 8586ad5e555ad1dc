"""The persistent render queue (queue_store.py) and its dispatcher (dispatcher.py)."""

import shutil
import sqlite3
import threading

import pytest

from studio.jobs.dispatcher import Dispatcher
from studio.store.history import HistoryStore
from studio.engine.policy import Policies
from studio.store.queue import JobFinished, QueueStore, UnknownJob


def _job(prompt="a queued render", steps=1, **request):
    return {"request": dict(prompt=prompt, steps=steps, seed=0, **request), "policy": None}


@pytest.fixture()
def store(tmp_path):
    history = HistoryStore(tmp_path / "history.db")
    yield QueueStore(history)
    history.close()


def test_claim_is_exclusive_across_connections(tmp_path):
    first = HistoryStore(tmp_path / "history.db")
    second = HistoryStore(tmp_path / "history.db")  # another connection, as another process would have
    ids = {QueueStore(first).add(_job(f"job {i}")) for i in range(30)}
    barrier, claimed = threading.Barrier(2), {"a": [], "b": []}

    def claim_all(history, name):
        store = QueueStore(history)
        barrier.wait()
        while (job := store.claim(name)) is not None:
            claimed[name].append(job["id"])

    threads = [threading.Thread(target=claim_all, args=(h, n)) for h, n in ((first, "a"), (second, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(claimed["a"]) & set(claimed["b"])
    assert set(claimed["a"]) | set(claimed["b"]) == ids
    assert all(QueueStore(first).get(i)["attempts"] == 1 for i in ids)
    first.close()
    second.close()


def test_a_finished_job_never_changes(store):
    jid = store.add(_job())
    assert store.claim("w")["id"] == jid
    assert store.finish(jid, "done", result_ids=["r1"])
    with pytest.raises(JobFinished, match="already finished"):
        store.cancel(jid)
    with pytest.raises(JobFinished):
        store.move(jid, "top")
    with pytest.raises(JobFinished):
        store.set_steps(jid, 2)
    assert not store.finish(jid, "failed", error="late")  # not running: nothing changes
    assert store.requeue_running() == 0
    job = store.get(jid)
    assert (job["state"], job["error"], job["result_ids"]) == ("done", None, ["r1"])


def test_unknown_and_other_sessions_jobs(store):
    mine = store.add(_job(), session="a" * 32)
    with pytest.raises(UnknownJob, match="no queued job"):
        store.cancel("no-such-job")
    with pytest.raises(UnknownJob):
        store.cancel(mine, session="b" * 32)
    assert store.list(session="b" * 32) == []
    assert [j["id"] for j in store.list(session="a" * 32)] == [mine]


def test_reorder_cancel_and_change_steps(store):
    a, b, c = (store.add(_job(name)) for name in "abc")
    order = lambda: [j["id"] for j in store.list(states=("queued",))]  # noqa: E731
    store.move(c, "top")
    assert order() == [c, a, b]
    store.move(c, "down")
    assert order() == [a, c, b]
    store.move(b, "up")
    assert order() == [a, b, c]
    store.move(a, "up")  # already first: stays
    assert order() == [a, b, c]
    assert [j["position"] for j in store.list()] == [1, 2, 3]
    assert store.cancel(b) == "cancelled"
    assert order() == [a, c] and store.get(b)["state"] == "cancelled"
    store.set_steps(c, 3)
    assert store.get(c)["job"]["request"]["steps"] == 3
    with pytest.raises(Exception, match="1-128"):
        store.set_steps(c, 0)
    assert store.claim("w")["id"] == a
    assert store.cancel(a) == "cancelling" and store.cancel_requested(a)  # a running job: asked to stop
    with pytest.raises(JobFinished, match="running"):
        store.move(a, "down")


def test_prune_keeps_the_newest_finished(store):
    for _ in range(5):
        store.finish(store.add(_job()) and store.claim("w")["id"], "done")
    waiting = store.add(_job())
    assert store.prune(keep=2) == 3
    assert len(store.list()) == 3 and store.get(waiting)["state"] == "queued"


def test_the_cap_fires_from_the_queue(studio, tmp_path):
    (tmp_path / "policies.toml").write_text("[queue]\nthreshold = 1\nmax_steps = 1\n")
    studio.policies = studio.engine.policies = Policies.load(tmp_path / "policies.toml")
    dispatcher = Dispatcher(studio)
    ids = [dispatcher.submit(_job(f"capped {i}", steps=2), source="create") for i in range(3)]
    finished = dispatcher.run_pending()
    assert [j["id"] for j in finished] == ids and {j["state"] for j in finished} == {"done"}
    rows = [studio.history.get(j["result_ids"][0]) for j in finished]
    # the first saw 2 jobs waiting (more than 1): capped; the last saw none
    assert [(r["steps"], r["capped"], r["requested_steps"]) for r in rows] == [(1, 1, 2), (2, 0, 2), (2, 0, 2)]
    assert [j["plan"] for j in finished] == [{"kind": "single", "budgets": [2]}] * 3  # as asked, before the cap


def test_input_that_vanished_before_the_job_ran(studio, tmp_path, sample_media):
    image = tmp_path / "gone.png"
    shutil.copy(sample_media["image"], image)
    dispatcher = Dispatcher(studio)
    jid = dispatcher.submit(_job(mode="i2v", image=str(image), model="t-bidi-kf"), source="cli")
    image.unlink()
    (job,) = dispatcher.run_pending()
    assert job["id"] == jid and job["state"] == "failed"
    assert "gone.png" in job["error"] and "not found" in job["error"]


def test_the_thread_runs_submitted_jobs_and_listeners_see_them(studio):
    from studio.engine.events import Result

    dispatcher = Dispatcher(studio)
    jid = dispatcher.submit(_job("followed"), source="create")
    events = dispatcher.follow(jid)
    dispatcher.start()
    try:
        results = [e for e in events if isinstance(e, Result)]
    finally:
        dispatcher.stop()
    job = dispatcher.store.get(jid)
    assert job["state"] == "done" and [r.record_id for r in results] == job["result_ids"]
    with sqlite3.connect(studio.settings.history_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_queue_tab_shows_and_touches_only_the_sessions_jobs(studio):
    from dataclasses import replace

    from studio.ui import queue_tab

    mine, theirs = {"sid": "a" * 32}, {"sid": "b" * 32}
    store = QueueStore(studio.history)
    a1, a2 = (store.add(_job(f"mine {i}"), source="create", session=mine["sid"]) for i in range(2))
    b1 = store.add(_job("theirs"), source="storyboard", session=theirs["sid"])
    studio.settings = replace(studio.settings, space=True)
    assert [r[0] for r in queue_tab.rows(studio, mine)] == [a1, a2]
    assert [(r[0], r[2], r[3]) for r in queue_tab.rows(studio, theirs)] == [(b1, 1, "storyboard")]
    assert "no queued job" in queue_tab.act(studio, theirs, a1, "cancel")
    assert queue_tab.act(studio, mine, a2, "top") == f"Job {a2} moved to the top."
    assert [r[0] for r in queue_tab.rows(studio, mine)] == [a2, a1]
    assert "8 steps" in queue_tab.act(studio, mine, a1, "steps", 8)
    assert [r[4] for r in queue_tab.rows(studio, mine)] == [1, 8]
    assert queue_tab.act(studio, mine, a1, "cancel") == f"Job {a1}: cancelled."
    assert [r[0] for r in queue_tab.rows(studio, mine)] == [a2] and store.get(b1)["state"] == "queued"


def test_cancel_from_another_process_stops_the_running_job(studio, hold_step, monkeypatch):
    from studio.jobs import dispatcher as dispatcher_module

    monkeypatch.setattr(dispatcher_module, "CANCEL_CHECK_S", 0.02)  # the flag watcher reads it often
    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=2)
    dispatcher = Dispatcher(studio)
    jid = dispatcher.submit(_job("to cancel", steps=8), source="cli")
    events = dispatcher.follow(jid)
    dispatcher.start()
    other = HistoryStore(studio.settings.history_path)  # `queue cancel ID` runs in another process
    try:
        assert hold.reached.wait(30)
        assert QueueStore(other).cancel(jid) == "cancelling"
        assert dispatcher._cancels[jid].wait(10)  # the flag watcher saw it (while the render is held at step 2)
        hold.release.set()
        seen = [e.kind for e in events]
    finally:
        dispatcher.stop()
        other.close()
    job = dispatcher.store.get(jid)
    assert job["state"] == "cancelled" and "result" not in seen and seen[-1] == "cancelled"
    assert seen.count("progress") == 1  # step 1 only: it stopped at step 2
    assert [r["status"] for r in studio.history.search(text="cancel")] == ["cancelled"]


def test_a_studio_that_stops_puts_its_running_job_back_in_the_queue(studio, hold_step):
    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=2)
    dispatcher = Dispatcher(studio)
    jid = dispatcher.submit(_job("stopped midway", steps=8), source="create")
    dispatcher.start()
    assert hold.reached.wait(30)
    cancel = dispatcher._cancels[jid]
    stopper = threading.Thread(target=dispatcher.stop)
    stopper.start()
    assert cancel.wait(30)  # the stop asked the render to end
    hold.release.set()
    stopper.join()
    job = dispatcher.store.get(jid)
    assert (job["state"], job["attempts"]) == ("queued", 1)
    (again,) = Dispatcher(studio).run_pending()  # the next start runs it
    assert again["state"] == "done" and again["attempts"] == 2
    (row,) = studio.history.search(text="stopped")  # the stopped run's row, taken back by the re-run: no duplicate
    assert (row["status"], row["id"]) == ("ok", again["result_ids"][0]) and row["plan_id"] == jid


def test_storyboard_shots_queued_before_a_crash_land_on_their_board(studio):
    """A studio that dies with a batch's shots queued: the next one runs them and puts each render on its shot. The
    continuing shot waits for the shot it continues (even with two slots) and takes that render as context."""
    from studio.jobs.boards import BoardRunner
    from studio.jobs.dispatcher import JobStream

    runner = BoardRunner(studio)
    board = runner.boards.create("crash", model="t-far")
    first = runner.boards.add_shot(board.id, "first shot", seed=1)
    second = runner.boards.add_shot(board.id, "second shot", seed=2, continues=True)
    dead = Dispatcher(studio)  # never started: its jobs stay queued, as a killed studio leaves them
    runner._queue_shots(JobStream(dead), runner.boards.get(board.id), "preview", [first, second], "preview", None)
    assert runner.boards.get(board.id).shots[0].preview_id is None
    finished = Dispatcher(studio, slots=2).run_pending()  # the next studio, two jobs at once if it could
    assert [j["state"] for j in finished] == ["done", "done"]
    assert finished[1]["started_at"] >= finished[0]["finished_at"]  # the continuing shot waited
    shots = runner.boards.get(board.id).shots
    assert [s.preview_id for s in shots] == [j["result_ids"][0] for j in finished]
    assert studio.history.get(shots[1].preview_id)["parent_id"] == shots[0].preview_id


def test_a_continuing_shot_whose_shot_failed_fails_saying_why(studio):
    from studio.jobs.boards import BoardRunner

    runner = BoardRunner(studio)
    board = runner.boards.create("broken", model="t-far")
    runner.boards.add_shot(board.id, "first shot", seed=1, mode="i2v", image="/nonexistent/first.png")
    runner.boards.add_shot(board.id, "second shot", seed=2, continues=True)
    *_, done = list(runner.run(board.id, "preview"))
    assert len(done.failed) == 2 and not done.rendered
    message = done.failed[runner.boards.get(board.id).shots[1].id]
    assert message.startswith("Shot 2 continues shot 1, but it failed")


def test_an_extension_is_a_queued_job_and_survives_a_restart(studio):
    """Extend (Create, History, `render --extend`) queues a job; one queued before a crash still ends as one
    joined clip, its row the original's child with the joined length."""
    from studio.jobs import extend
    from studio.engine import media
    from studio.jobs.dispatcher import JobStream
    from studio.engine.render import RenderRequest

    original = studio.engine.run(RenderRequest(prompt="a ball rolls", model="t-far", seed=3, steps=2))[-1]
    source = extend.load_source(studio.history, original.record_id)
    req, plan = extend.extension_request(studio.engine, source, 8)
    jid = JobStream(Dispatcher(studio)).submit(extend.job(source, req, plan), source="extend")  # never run there
    (job,) = Dispatcher(studio).run_pending()  # the next studio
    assert (job["id"], job["state"], job["source"]) == (jid, "done", "extend")
    child = studio.history.get(job["result_ids"][0])
    assert child["parent_id"] == original.record_id and child["frames"] == plan.joined_frames
    assert len(media.read_video(child["video_path"])[0]) == plan.joined_frames


def test_a_studio_that_stops_keeps_a_followed_job_for_the_next_start(studio, hold_step):
    """A browser follows a running render and another waits: stopping the studio leaves both queued, and the
    follower's own Cancel event untouched (the review found stop() cancelled followed jobs)."""
    from studio.jobs.dispatcher import JobStream

    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=2)
    dispatcher = Dispatcher(studio)
    follower_cancel = threading.Event()
    stream = JobStream(dispatcher, follower_cancel, cancel_on_close=True)
    running, waiting = (stream.submit(_job(f"followed {i}", steps=8), source="create") for i in range(2))
    dispatcher.start()
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(e.kind for _, e in stream))
    reader.start()
    assert hold.reached.wait(30)
    stopper = threading.Thread(target=dispatcher.stop)
    stopper.start()
    hold.release.set()
    stopper.join()
    reader.join(10)
    assert not reader.is_alive() and seen[-1] == "requeued"  # told the render waits for the next start
    assert not follower_cancel.is_set()
    assert [dispatcher.store.get(j)["state"] for j in (running, waiting)] == ["queued", "queued"]


def test_cancelling_one_shot_in_the_queue_leaves_the_rest_of_the_batch(studio, hold_step):
    from studio.jobs.boards import BoardRunner

    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=1)
    runner = BoardRunner(studio)
    board = runner.boards.create("one out", model="t-far")
    for i in range(3):
        runner.boards.add_shot(board.id, f"shot {i}", seed=i)
    events = runner.run(board.id, "preview")
    first = next(events)  # the batch is queued; the first shot runs and holds at its first step
    assert hold.reached.wait(30)
    jid = QueueStore(studio.history).list(states=("running",))[0]["id"]
    assert studio.dispatcher().cancel(jid) == "cancelling"  # the Queue tab's Cancel on that one shot
    hold.release.set()
    *_, done = [first, *events]
    assert not done.cancelled and len(done.rendered) == 2
    assert list(done.failed.values()) == ["Cancelled in the render queue."]


def test_a_boards_own_shots_do_not_trip_the_queue_cap(studio, tmp_path):
    """Threshold 1: six shots of one batch wait behind each other, yet none is capped (they are one user's batch);
    a job from elsewhere waiting would count."""
    from studio.jobs.boards import BoardRunner

    (tmp_path / "policies.toml").write_text("[queue]\nthreshold = 1\nmax_steps = 1\n")
    studio.policies = studio.engine.policies = Policies.load(tmp_path / "policies.toml")
    runner = BoardRunner(studio)
    board = runner.boards.create("no cap", model="t-far", preview_policy="draft")
    for i in range(4):
        runner.boards.add_shot(board.id, f"uncapped {i}", seed=i)
    *_, done = runner.run(board.id, "preview")
    rows = [studio.history.get(rid) for rid in (s.preview_id for s in runner.boards.get(board.id).shots)]
    assert len(done.rendered) == 4 and {r["capped"] for r in rows} == {0}
    store = QueueStore(studio.history)
    assert store.waiting(except_batch="x") == store.waiting() == 0


def test_a_follower_hears_of_a_cancel_made_by_another_process(studio, hold_step):
    from studio.jobs.dispatcher import JobStream
    from studio.engine.events import Cancelled

    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=1)
    dispatcher = Dispatcher(studio)
    blocker = dispatcher.submit(_job("blocks the queue", steps=4), source="cli")
    stream = JobStream(dispatcher)
    jid = stream.submit(_job("cancelled elsewhere"), source="create")
    dispatcher.start()
    other = HistoryStore(studio.settings.history_path)  # `queue cancel ID` in another process
    try:
        assert hold.reached.wait(30)
        assert QueueStore(other).cancel(jid) == "cancelled"
        events = [e for _, e in stream]  # ends (within a second) though this dispatcher never saw the cancel
    finally:
        hold.release.set()
        dispatcher.stop()
        other.close()
    assert isinstance(events[-1], Cancelled) and dispatcher.store.get(blocker)["state"] in ("done", "queued")


def test_a_space_visitor_moves_jobs_only_among_their_own(store):
    mine, theirs = "a" * 32, "b" * 32
    a1 = store.add(_job("a1"), session=mine)
    b1 = store.add(_job("b1"), session=theirs)
    a2 = store.add(_job("a2"), session=mine)
    b2 = store.add(_job("b2"), session=theirs)
    a3 = store.add(_job("a3"), session=mine)
    order = lambda: [j["id"] for j in store.list(states=("queued",))]  # noqa: E731
    store.move(a3, "top", session=mine)
    assert order() == [a3, b1, a1, b2, a2]  # a3 first among a's; b1 and b2 kept their places
    store.move(a1, "up", session=mine)
    assert order() == [a1, b1, a3, b2, a2]
    store.move(b2, "down", session=theirs)  # no job of theirs after it: stays
    assert order() == [a1, b1, a3, b2, a2]
