"""Run by test_farm.py and test_farm_nodes.py in its own process (one Ray per process): a simulated two-node
cluster (ray.cluster_utils.Cluster). Prints one JSON line. Modes:

- ``added`` (the default): a farm started on the head alone gets a worker on a node added later, without a
  restart, and that node renders. {"before": n, "after": n, "workers": [labels of rows]}.
- ``lost``: a head (1 worker) and a second node (1 worker); a render lands on the second node's worker and the
  node is removed mid-render (``cluster.remove_node``): the render completes on the head's worker.
  {"before", "after" (farm sizes), "events", "rows", "integrity", "resumed_s", "node_b", ...}."""

import json
import sqlite3
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from studio.config import Settings  # noqa: E402
from studio.farm.ray_farm import RayFarm  # noqa: E402
from studio.engine.events import Failed, Progress, Result, Status  # noqa: E402
from studio.engine.request import Plan, RenderRequest  # noqa: E402
from studio.app.services import Studio  # noqa: E402

_STORE = 80 * 1024**2


def main(data_dir: str, models_file: str, mode: str = "added") -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "object_store_memory": _STORE})
    ray.init(address=cluster.address, log_to_driver=False)
    settings = Settings(data_dir=Path(data_dir), default_model="t-far", models_file=Path(models_file), device="cpu")
    studio = Studio.open(settings)
    try:
        report = (node_added if mode == "added" else node_lost)(cluster, studio)
    finally:
        studio.close()
    print(json.dumps(report))
    ray.shutdown()
    cluster.shutdown()


def node_added(cluster, studio) -> dict:
    studio.engine.executor = farm = RayFarm(studio.settings, workers=1).start()
    before = farm.size
    cluster.add_node(num_cpus=1, num_gpus=1, object_store_memory=_STORE)  # a "GPU" node joins
    cluster.wait_for_nodes()
    farm._synced = 0.0  # the next dispatch looks at the nodes (it does every few seconds anyway)
    results = []
    threads = [threading.Thread(target=lambda i: results.extend(studio.engine.run(RenderRequest(prompt="n", seed=i,
               steps=2))), args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    workers = [studio.history.get(r.record_id)["timings"].get("worker") for r in results]
    return {"before": before, "after": farm.size, "workers": workers}


def node_lost(cluster, studio) -> dict:
    node_b = cluster.add_node(num_cpus=1, object_store_memory=_STORE)
    cluster.wait_for_nodes()
    studio.engine.executor = farm = RayFarm(studio.settings, workers=1).start()
    before = farm.size
    head = ray.get_runtime_context().get_node_id()
    for w in farm._workers:  # routing takes the least recently used idle worker: make it node B's
        w.last_used = time.monotonic() if w.node_id == head else 0.0
    # a cheap preview, then 64 steps: the node goes during the second budget, so the first must not run again
    events = studio.engine.render(RenderRequest(prompt="lost", seed=7, steps=64), Plan.refine(2, 64))
    seen, on = [], None
    for event in events:
        seen.append(event)
        if isinstance(event, Progress) and event.budget_index == 1:
            on = next(w for w in farm._workers if w.busy).node_id
            break
    removed = time.monotonic()
    cluster.remove_node(node_b)
    removed_s = time.monotonic() - removed
    resumed = detected = None
    for event in events:
        seen.append(event)
        if detected is None and isinstance(event, Status) and "died" in event.message:
            detected = time.monotonic() - removed
        if resumed is None and isinstance(event, Progress) and any(isinstance(e, Status) and "died" in e.message
                                                                     for e in seen):
            resumed = time.monotonic() - removed
    results = [e for e in seen if isinstance(e, Result)]
    with sqlite3.connect(studio.settings.history_path) as db:
        rows = db.execute("SELECT status, steps FROM renders ORDER BY created_at").fetchall()
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    return {"before": before, "after": farm.size, "on_node_b": on == node_b.node_id, "head": head,
            "statuses": [e.message for e in seen if isinstance(e, Status)],
            "failed": [e.message for e in seen if isinstance(e, Failed)],
            "results": [[r.budget_index, r.steps] for r in results], "rows": rows, "integrity": integrity,
            "workers": [studio.history.get(r.record_id)["timings"].get("worker") for r in results],
            "remove_node_s": round(removed_s, 2),
            "detected_s": None if detected is None else round(detected, 2), "resumed_s": None if resumed is None else round(resumed, 2)}


if __name__ == "__main__":
    main(*sys.argv[1:4])
