"""A lost Ray (issue 24 item 11): a farm that started its own local Ray starts it again when the raylet is killed,
and the queued jobs and the interrupted one all render; none fails for the outage. Runs in its own process
(tests/farm_outage.py), so the session's shared Ray (test_farm*.py) is never touched."""

import json
import os
import subprocess
import sys
import threading

import pytest

pytest.importorskip("ray")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_killed_raylet_of_the_farms_own_ray_is_started_again_and_every_job_ends_done(settings):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "farm_outage.py"), str(settings.data_dir),
                          str(settings.models_file)], capture_output=True, text=True, timeout=420, cwd=ROOT)
    assert out.returncode == 0, (out.returncode, out.stdout[-2000:], out.stderr[-3000:])
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["killed"] == 1
    assert report["states"] == ["done", "done", "done"], (report, [l for l in out.stderr.splitlines() if "studio" in l])
    assert report["epoch"] == 1  # started again once
    assert any("own Ray was lost" in s for s in report["statuses"]), report["statuses"]
    assert report["rows"] == 3  # one history row per job and budget: the interrupted job's row is not doubled


def test_a_joined_cluster_that_is_gone_keeps_jobs_queued_says_so_and_renders_when_it_is_back(studio, monkeypatch,
                                                                                            caplog):
    """The decision logic without a Ray: while the cluster is gone the farm has no slots (the dispatcher claims
    nothing, the job stays queued), a waiting render is told why, the farm tries to join again every RECONNECT_S
    and has its slots back once the cluster is."""
    from studio import farm as farm_module
    from studio.dispatcher import Dispatcher
    from studio.events import Status
    from studio.farm import RayFarm, _Worker

    monkeypatch.setattr(farm_module, "RECONNECT_S", 0.0)
    monkeypatch.setattr(farm_module, "SYNC_S", 0.0)
    farm = RayFarm(studio.settings, address="10.9.8.7:6379", workers=1)
    gone, joins = [True], []
    monkeypatch.setattr(farm, "_lost", lambda: gone[0])
    monkeypatch.setattr(farm, "_reconnect", lambda: joins.append(1) or not gone[0])
    monkeypatch.setattr(farm, "_sync_workers", lambda force=False: None)
    farm._workers = [_Worker(actor=None, node_id="n")]
    studio.engine.executor = farm
    try:
        dispatcher = Dispatcher(studio)  # not started: _fill is called here, as its thread would
        jid = dispatcher.submit({"request": dict(prompt="waits", steps=1, seed=0), "policy": None}, source="cli")
        with caplog.at_level("WARNING", logger="studio.farm"):
            assert dispatcher._fill() == [] and dispatcher._fill() == []
        assert dispatcher.store.get(jid)["state"] == "queued"
        assert len(joins) >= 2  # tried again, not once and given up
        assert "the ray cluster at 10.9.8.7:6379 is gone" in caplog.text.lower()
        told = next(farm._wait_up(threading.Event()))
        assert isinstance(told, Status) and "10.9.8.7:6379 is gone" in told.message
        gone[0] = False
        assert farm.up() and farm.epoch == 1 and dispatcher.capacity == 1
    finally:
        studio.engine.executor = None  # its close would call Ray
