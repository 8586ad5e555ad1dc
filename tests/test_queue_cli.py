"""The render queue from the command line, and a studio killed with jobs queued (issue 14, items 1-2)."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for_query

from studio.cli.commands import main
from studio.jobs.dispatcher import Dispatcher
from studio.store.history import HistoryStore
from studio.store.queue import QueueStore
from studio.app.services import Studio

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "diffusers", "gradio", "transformers")
CLI = ("import sys, json; from studio.cli.commands import main; code = main(sys.argv[1:]); "
       f"print('HEAVY ' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr); "
       "sys.exit(code)")


def _queue(data_dir, *jobs):
    history = HistoryStore(Path(data_dir) / "history.db")
    store = QueueStore(history)
    ids = [store.add({"request": dict(seed=0, model="t-bidi", **req)}) for req in jobs]
    history.close()
    return ids


def _jobs(data_dir):
    history = HistoryStore(Path(data_dir) / "history.db")
    try:
        return {j["id"]: j for j in QueueStore(history).list()}
    finally:
        history.close()


def test_queue_list_json_imports_no_torch(tmp_path):
    ids = _queue(tmp_path, dict(prompt="first", steps=1), dict(prompt="second", steps=1))
    out = subprocess.run([sys.executable, "-c", CLI, "queue", "list", "--json", "--data-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["id"], r["state"], r["position"]) for r in rows] == [(ids[0], "queued", 1), (ids[1], "queued", 2)]
    assert "HEAVY []" in out.stderr


def test_add_cancel_and_bad_ids(tmp_path, capsys):
    assert main(["queue", "add", "--data-dir", str(tmp_path), "--prompt", "from the cli", "--steps", "1"]) == 0
    jid = capsys.readouterr().out.strip()
    job = _jobs(tmp_path)[jid]
    assert (job["state"], job["source"], job["job"]["request"]["prompt"]) == ("queued", "cli", "from the cli")
    assert main(["queue", "cancel", jid, "--data-dir", str(tmp_path)]) == 0
    assert _jobs(tmp_path)[jid]["state"] == "cancelled"
    capsys.readouterr()
    assert main(["queue", "cancel", jid, "--data-dir", str(tmp_path)]) == 2
    assert "already finished (cancelled)" in capsys.readouterr().err
    assert main(["queue", "cancel", "no-such-job", "--data-dir", str(tmp_path)]) == 2
    assert "no queued job 'no-such-job'" in capsys.readouterr().err


def test_queue_run_exits_2_with_a_summary_when_a_job_fails(tmp_path, models_file, sample_media, capsys):
    image = tmp_path / "vanishing.png"
    shutil.copy(sample_media["image"], image)
    common = ["--data-dir", str(tmp_path), "--models-file", str(models_file), "--device", "cpu"]
    assert main(["queue", "add", *common, "--prompt", "fine", "--steps", "1", "--model", "t-bidi"]) == 0
    assert main(["queue", "add", *common, "--prompt", "gone", "--mode", "i2v", "--image", str(image),
                 "--model", "t-bidi-kf", "--steps", "1"]) == 0
    ok, gone = capsys.readouterr().out.split()
    image.unlink()  # the input file vanishes before the job runs
    assert main(["queue", "run", *common]) == 2
    err = capsys.readouterr().err
    assert "1 of 2 job(s) did not finish" in err and "vanishing.png" in err
    jobs = _jobs(tmp_path)
    assert jobs[ok]["state"] == "done" and jobs[gone]["state"] == "failed"
    assert main(["queue", "run", *common]) == 0  # nothing left to run


def test_kill_with_jobs_queued_then_restart(tmp_path, models_file):
    ids = _queue(tmp_path, dict(prompt="long job", steps=128), dict(prompt="second job", steps=1),
                 dict(prompt="third job", steps=1))
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "queue_crash_worker.py"), str(tmp_path),
                             str(models_file)], cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = tmp_path / "history.db"
    try:
        wait_for_query("SELECT count(*) FROM renders WHERE status = 'running'", db)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert [_jobs(tmp_path)[i]["state"] for i in ids] == ["running", "queued", "queued"]
    studio = Studio.open(data_dir=tmp_path, models_file=models_file, device="cpu", default_model="t-bidi")
    assert studio.claim_data_folder()
    report = studio.recover_after_crash()  # as app.py starts: the running job waits again
    assert (report.renders, report.jobs) == (1, 1) and "1 queued job(s) that were running" in report.describe()
    dispatcher = Dispatcher(studio)
    assert dispatcher.store.get(ids[0])["state"] == "queued"
    dispatcher.store.set_steps(ids[0], 1)  # a waiting job's budget may change: keeps the test short
    finished = dispatcher.run_pending()
    assert [j["id"] for j in finished] == ids and {j["state"] for j in finished} == {"done"}
    assert finished[0]["attempts"] == 2
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT prompt, status, id FROM renders ORDER BY rowid").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # exactly one row per job: the killed run's interrupted row was taken back by its re-run, its files replaced
    assert sorted((p, s) for p, s, _ in rows) == [("long job", "ok"), ("second job", "ok"), ("third job", "ok")]
    assert [j["result_ids"][0] for j in finished] == [rid for _, _, rid in rows]
    assert len(list((tmp_path / "renders").rglob("*.mp4"))) == 3
    studio.close()


def test_a_running_studio_takes_queue_add_and_refuses_queue_run(tmp_path, tiny_dirs, capsys):
    from conftest import launch_app
    from studio.ui import owner_api

    demo, url, studio = launch_app(tmp_path / "owner", tiny_dirs)
    try:
        assert studio.claim_data_folder()
        studio.recover_after_crash()
        owner_api.serve(demo.app, studio, url)  # launch_app started the studio's dispatcher, as app.py does
        data = ["--data-dir", str(studio.settings.data_dir)]
        assert main(["queue", "add", *data, "--prompt", "sent to the studio", "--steps", "1", "--model", "t-bidi"]) == 0
        jid = capsys.readouterr().out.strip()
        list(studio.dispatcher().follow(jid))  # until the studio's dispatcher has run it
        job = studio.dispatcher().store.get(jid)
        assert job["state"] == "done" and studio.history.get(job["result_ids"][0])["status"] == "ok"
        assert main(["queue", "add", *data, "--prompt", "bad", "--steps", "0"]) == 2  # checked by the studio
        assert "steps" in capsys.readouterr().err
        assert main(["queue", "run", *data]) == 2
        assert "runs its queue itself" in capsys.readouterr().err
    finally:
        demo.close()
        studio.close()


def test_queue_cancel_beside_a_running_studio_goes_to_it(tmp_path, tiny_dirs, capsys, hold_step):
    """`queue cancel ID` sends the cancel to the studio that owns the folder: its dispatcher takes the waiting job
    out at once, and whoever follows it hears so; a finished job's cancel says so."""
    from diffusers import FlowMapEulerDiscreteScheduler

    from conftest import launch_app
    from studio.ui import owner_api

    demo, url, studio = launch_app(tmp_path / "owner", tiny_dirs)
    hold = hold_step(FlowMapEulerDiscreteScheduler, at=1)
    try:
        assert studio.claim_data_folder()
        owner_api.serve(demo.app, studio, url)
        data = ["--data-dir", str(studio.settings.data_dir)]
        for prompt in ("runs first", "cancelled from the CLI"):
            assert main(["queue", "add", *data, "--prompt", prompt, "--steps", "2", "--model", "t-bidi"]) == 0
        first, second = capsys.readouterr().out.split()
        assert hold.reached.wait(60)
        events = studio.dispatcher().follow(second)
        assert main(["queue", "cancel", *data, second]) == 0
        assert capsys.readouterr().out.strip() == f"{second}: cancelled"
        assert [e.kind for e in events] == ["cancelled"]  # the follower heard it from the dispatcher itself
        hold.release.set()
        list(studio.dispatcher().follow(first))
        assert main(["queue", "cancel", *data, first]) == 2
        assert "already finished" in capsys.readouterr().err
    finally:
        hold.release.set()
        demo.close()
        studio.close()


def test_queue_run_on_a_ray_farm_runs_one_job_per_worker(tmp_path, models_file):
    """`queue run --farm ray --workers 2` starts a local Ray instance and runs the queue on both workers, two jobs
    at once; each job records the worker that rendered it (its own Ray: a separate process)."""
    pytest.importorskip("ray")
    ids = _queue(tmp_path, *(dict(prompt=f"farm job {i}", steps=2) for i in range(4)))
    out = subprocess.run([sys.executable, "-m", "studio", "queue", "run", "--data-dir", str(tmp_path),
                          "--models-file", str(models_file), "--device", "cpu", "--farm", "ray", "--workers", "2"],
                         cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = _jobs(tmp_path)
    assert {jobs[i]["state"] for i in ids} == {"done"}
    workers = {jobs[i]["worker"] for i in ids}
    assert len(workers) == 2 and all(" cpu pid " in w for w in workers), workers  # node and process, not "local:"
    starts = sorted((jobs[i]["started_at"], jobs[i]["finished_at"]) for i in ids)
    assert any(nxt[0] < cur[1] for cur, nxt in zip(starts, starts[1:]))  # two ran at the same time
