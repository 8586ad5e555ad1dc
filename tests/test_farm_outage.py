"""A lost Ray (issue 24 item 11): while the farm's Ray is gone the dispatcher claims nothing, jobs stay queued and
are told why, and the farm tries to join again; a real raylet killed under a farm of its own is started again and
every job ends done (bench/farm_outage.py, in a process of its own: it kills that process's raylet)."""

import json
import os
import subprocess
import sys
import threading

import pytest

pytest.importorskip("ray")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_joined_cluster_that_is_gone_keeps_jobs_queued_says_so_and_renders_when_it_is_back(studio, monkeypatch,
                                                                                            caplog):
    """The decision logic without a Ray: while the cluster is gone the farm has no slots (the dispatcher claims
    nothing, the job stays queued), a waiting render is told why, the farm tries to join again every RECONNECT_S
    and has its slots back once the cluster is."""
    from studio.farm import ray_farm as farm_module
    from studio.jobs.dispatcher import PLACE_S, Dispatcher, JobStream
    from studio.engine.events import Status
    from studio.farm.ray_farm import RayFarm, _Worker

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
        with caplog.at_level("WARNING", logger="studio.farm.ray_farm"):
            assert dispatcher._fill() == [] and dispatcher._fill() == []
        assert dispatcher.store.get(jid)["state"] == "queued"
        assert len(joins) >= 2  # tried again, not once and given up
        assert "the ray cluster at 10.9.8.7:6379 is gone" in caplog.text.lower()
        told = next(farm._wait_up(threading.Event()))
        assert isinstance(told, Status) and "10.9.8.7:6379 is gone" in told.message
        stream = JobStream(dispatcher)  # a follower of the job still in the queue hears why it waits, once
        stream.add(jid)
        heard = [e for _, e in stream._look()]
        assert any(isinstance(e, Status) and "10.9.8.7:6379 is gone" in e.message for e in heard), heard
        stream._looked = -PLACE_S
        assert not any(isinstance(e, Status) for _, e in stream._look())  # said once per outage, not every second
        gone[0] = False
        assert farm.up() and farm.epoch == 1 and dispatcher.capacity == 1
    finally:
        studio.engine.executor = None  # its close would call Ray


def test_a_killed_raylet_of_its_own_is_started_again_and_every_job_ends_done(tmp_path, tiny_dirs):
    """The raylet of the farm's own Ray is SIGKILLed while the first of three jobs renders: the farm starts its Ray
    again (no farm thread touches the old one meanwhile: RayGate), nothing is failed, each job renders once."""
    from conftest import _models_toml

    models = tmp_path / "models.toml"
    models.write_text(_models_toml(tiny_dirs), encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "farm_outage.py"), str(tmp_path / "data"),
                          str(models)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["killed"] >= 1 and report["epoch"] >= 1, report
    assert report["states"] == ["done"] * 3 and report["rows"] == 3, report
    assert any("Ray was lost" in s for s in report["statuses"]), report["statuses"]
    assert "Traceback" not in out.stderr, out.stderr[-4000:]
