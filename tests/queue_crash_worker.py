"""A studio process that runs the render queue, for the queue's kill test (SIGKILL). Not a test module.

    python tests/queue_crash_worker.py DATA_DIR MODELS_FILE
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.config import Settings  # noqa: E402
from studio.jobs.dispatcher import Dispatcher  # noqa: E402
from studio.app.services import Studio  # noqa: E402


def main() -> None:
    data_dir, models_file = sys.argv[1], sys.argv[2]
    studio = Studio.open(Settings(data_dir=data_dir, models_file=models_file, default_model="t-bidi", device="cpu"))
    assert studio.claim_data_folder(), "the data folder is owned by another process"  # as app.py does
    studio.recover_after_crash()
    Dispatcher(studio).run_pending()
    print("ran the whole queue", flush=True)


if __name__ == "__main__":
    main()
