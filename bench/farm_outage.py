"""A lost Ray, for real (issue 24 item 11): a farm on a Ray of its own (as `app.py --farm ray --workers 1` starts
one), three queued jobs; the raylet this process started is killed while the first renders. Prints one JSON
line: {"states": [...], "statuses": [...], "epoch": n, "back_s": s, "rows": n}.

    python bench/farm_outage.py DATA_DIR MODELS_FILE    # MODELS_FILE names a "t-far" model (tests' tiny_dirs)

The test suite runs it (tests/test_farm_outage.py). Before RayGate (ray_farm.py), 3 runs in 6 ended with Ray's
"accesses the Ray's worker after it is shutdown", killing the process: a farm thread still inside a call on the
old core worker while the farm shut it down to start it again."""

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from studio.config import Settings  # noqa: E402
from studio.engine.events import Progress, Status  # noqa: E402
from studio.farm.ray_farm import RayFarm  # noqa: E402
from studio.app.services import Studio  # noqa: E402


def _job(prompt: str, steps: int) -> dict:
    return {"request": dict(prompt=prompt, steps=steps, seed=0), "policy": None}


def main(data_dir: str, models_file: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = Settings(data_dir=Path(data_dir), default_model="t-far", models_file=Path(models_file), device="cpu")
    studio = Studio.open(settings)
    studio.engine.executor = farm = RayFarm(settings, workers=1).start()  # no --ray-address: its own local Ray
    statuses, rendering = [], threading.Event()
    terms = []  # Ray's own SIGTERM handler (set by ray.init in the main thread) would exit the process: count them
    signal.signal(signal.SIGTERM, lambda *_: terms.append(time.monotonic()))

    def listen(jid, event):
        if isinstance(event, Status):
            statuses.append(event.message)
        elif isinstance(event, Progress):
            rendering.set()

    dispatcher = studio.start_dispatcher()
    jids = [dispatcher.submit(_job(f"outage {i}", 48 if i == 0 else 1), source="cli", listener=listen)
            for i in range(3)]
    rendering.wait(120)
    raylets = [p for p in psutil.Process().children(recursive=True) if p.name() == "raylet"]
    for p in raylets:  # this process's own raylet only (a child of this process), never another test's Ray
        p.kill()
    killed = time.monotonic()
    deadline = killed + 240
    while time.monotonic() < deadline and any(studio.dispatcher().store.get(j)["state"] not in ("done", "failed",
                                                                                                "cancelled")
                                               for j in jids):
        time.sleep(0.5)
    states = [studio.dispatcher().store.get(j)["state"] for j in jids]
    rows = sum(len(studio.history.finished_budgets(j)) for j in jids)
    report = {"errors": [studio.dispatcher().store.get(j)["error"] for j in jids], "states": states, "statuses": statuses, "epoch": farm.epoch, "killed": len(raylets),
              "back_s": round(time.monotonic() - killed, 1), "rows": rows, "sigterms": len(terms)}
    studio.stop_dispatcher()
    farm.close()
    studio.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
