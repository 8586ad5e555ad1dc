"""A process that owns the data folder and runs a sweep, for the sweep's kill test (SIGKILL). Not a test module.

    python tests/sweep_crash_worker.py DATA_DIR MODELS_FILE SPEC_JSON
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.jobs import sweep_run  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.app.services import Studio  # noqa: E402


def slow_steps(seconds: float) -> None:
    """Every denoising step takes ``seconds`` longer: the test has a render to kill while it runs."""
    import time

    from diffusers import FlowMapEulerDiscreteScheduler

    step = FlowMapEulerDiscreteScheduler.step

    def slow(self, *args, **kwargs):
        time.sleep(seconds)
        return step(self, *args, **kwargs)

    FlowMapEulerDiscreteScheduler.step = slow


def main() -> None:
    data_dir, models_file, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    slow_steps(float(os.environ.get("SWEEP_STEP_SECONDS", "0")))
    studio = Studio.open(Settings(data_dir=data_dir, models_file=models_file, default_model="t-bidi", device="cpu"))
    assert studio.claim_data_folder(kind="cli"), "the data folder is owned by another process"
    studio.recover_after_crash()
    for event in sweep_run.run_events(studio, spec):
        print(event["type"], flush=True)


if __name__ == "__main__":
    main()
