"""ModelManager under concurrency: loads in progress hold their room, lend cannot lose its model.

Threads are ordered by events, never by sleeps. `_load` is replaced by a fake that builds a LoadedModel
of the size the manager estimated (optionally blocking on an event), so no weights are read. Where the
question is "what if another thread runs in the gap between two lock holds", the manager's lock is
replaced by one that lets another thread run at the next moment it is free.
"""

import threading
from dataclasses import replace
from types import SimpleNamespace

import pytest

from studio.errors import NotEnoughMemory, StudioError, WeightsUnavailable
from studio.models.manager import GB, LoadedModel, ModelManager


class InterleavingLock:
    """The manager's lock; `then(action)` runs `action` in another thread the next time the lock is let go,
    as a thread waiting for the lock would, and waits for it."""

    def __init__(self):
        self._lock = threading.RLock()
        self._depth = 0
        self._then = None

    def then(self, action):
        self._then = action

    def __enter__(self):
        self._lock.acquire()
        self._depth += 1
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        free = self._depth == 0
        self._lock.release()
        if free and self._then is not None:
            action, self._then = self._then, None
            other = threading.Thread(target=action)
            other.start()
            other.join()


def _fake_load(manager, gates=None, fail=()):
    """A `_load` that builds an entry of the estimated size. gates: {model id: (started, go)} events."""
    gates = gates or {}

    def load(spec, folder):
        if spec.id in gates:
            started, go = gates[spec.id]
            started.set()
            assert go.wait(10), "the test never let the load finish"
        if spec.id in fail:
            raise WeightsUnavailable(f"'{spec.id}' failed to load (injected)")
        pipe = SimpleNamespace(transformer=SimpleNamespace(config={"num_layers": 2}))
        return LoadedModel(spec=spec, pipe=pipe, folder=folder, device="cpu", dtype="float32",
                           nbytes=manager.estimate_bytes(spec, folder), load_seconds=0.0)
    return load


def _room_for_one(settings):
    """A manager whose budget holds t-far or t-bidi, not both."""
    probe = ModelManager(settings)
    sizes = [probe.estimate_bytes(probe.registry.get(m), probe.resolve(probe.registry.get(m)))
             for m in ("t-far", "t-bidi")]
    budget = 1.2 * max(sizes)
    assert budget < sum(sizes)
    return ModelManager(replace(settings, memory_budget_gb=budget / GB))


def _in_thread(fn, *args):
    outcome = {}

    def run():
        try:
            outcome["value"] = fn(*args)
        except Exception as exc:  # reported by the test
            outcome["error"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_load_in_progress_holds_its_room(settings):
    manager = _room_for_one(settings)
    started, go = threading.Event(), threading.Event()
    manager._load = _fake_load(manager, {"t-far": (started, go)})
    thread, outcome = _in_thread(manager.get, "t-far")
    assert started.wait(10)  # t-far is loading, not yet loaded
    try:
        with pytest.raises(NotEnoughMemory, match="loading"):
            manager.get("t-bidi")
    finally:
        go.set()
        thread.join()
    assert "error" not in outcome
    assert manager.is_loaded("t-far") and not manager.is_loaded("t-bidi")
    assert manager.loaded_bytes() <= manager.budget_bytes


def test_a_failed_load_gives_its_room_back(settings):
    manager = _room_for_one(settings)
    started, go = threading.Event(), threading.Event()
    manager._load = _fake_load(manager, {"t-far": (started, go)}, fail=("t-far",))
    thread, outcome = _in_thread(manager.get, "t-far")
    assert started.wait(10)
    with pytest.raises(NotEnoughMemory):  # while t-far loads, its room is taken
        manager.get("t-bidi")
    go.set()
    thread.join()
    assert isinstance(outcome.get("error"), WeightsUnavailable)
    manager.get("t-bidi")  # the failed load's room is free again
    assert manager.is_loaded("t-bidi") and not manager.is_loaded("t-far")


def test_lend_takes_the_model_before_anyone_can_evict_it(settings):
    """Another thread that would evict t-far (as a load needing room does) runs in the first gap lend
    leaves. It must find t-far in use: lend does not lose its model and load it again."""
    manager = ModelManager(settings)
    manager._lock = InterleavingLock()
    manager._load = _fake_load(manager)
    manager.get("t-far")
    refused = []

    def evict_if_idle():
        try:
            manager.unload("t-far")
        except StudioError:  # in use: not evicted
            refused.append(True)

    manager._lock.then(evict_if_idle)
    with manager.lend("t-far") as lent:
        assert manager.is_loaded("t-far") and lent.pipe is not None and lent.in_use == 1
    assert refused == [True]
    assert manager.load_counts["t-far"] == 1


def test_component_config_survives_an_eviction_in_the_gap(settings):
    manager = ModelManager(settings)
    manager._lock = InterleavingLock()
    manager._load = _fake_load(manager)
    manager.get("t-far")
    manager._lock.then(lambda: manager.unload("t-far"))
    assert manager.component_config("t-far", "transformer") == {"num_layers": 2}
    assert not manager.is_loaded("t-far")  # the eviction did run, right after the config was read
