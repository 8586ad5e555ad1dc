"""Run by test_farm.py in its own process (one Ray per process): a simulated two-node cluster
(ray.cluster_utils.Cluster). A farm started on the head alone gets a worker on a node added later, without a
restart, and that node renders. Prints one JSON line: {"before": n, "after": n, "workers": [labels of rows]}."""

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from studio.config import Settings  # noqa: E402
from studio.farm import RayFarm  # noqa: E402
from studio.request import RenderRequest  # noqa: E402
from studio.services import Studio  # noqa: E402


def main(data_dir: str, models_file: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "object_store_memory": 80 * 1024**2})
    ray.init(address=cluster.address, log_to_driver=False)
    settings = Settings(data_dir=Path(data_dir), default_model="t-far", models_file=Path(models_file), device="cpu")
    studio = Studio.open(settings)
    studio.engine.executor = farm = RayFarm(settings, workers=1).start()
    before = farm.size
    cluster.add_node(num_cpus=1, num_gpus=1, object_store_memory=80 * 1024**2)  # a "GPU" node joins
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
    print(json.dumps({"before": before, "after": farm.size, "workers": workers}))
    studio.close()
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
