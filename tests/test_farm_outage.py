"""A lost Ray (issue 24 item 11): while the farm's Ray is gone the dispatcher claims nothing, jobs stay queued and
are told why, and the farm tries to join again. A real raylet kill is bench/farm_outage.py (not yet reliable)."""

import os
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
    from studio.jobs.dispatcher import Dispatcher
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
        gone[0] = False
        assert farm.up() and farm.epoch == 1 and dispatcher.capacity == 1
    finally:
        studio.engine.executor = None  # its close would call Ray
