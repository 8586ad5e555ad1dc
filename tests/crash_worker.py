"""A studio process for the crash tests to kill (SIGKILL). Not a test module.

    python tests/crash_worker.py DATA_DIR MODELS_FILE render|history|finals|previews
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.config import Settings  # noqa: E402
from studio.engine.render import Plan, RenderRequest  # noqa: E402
from studio.app.services import Studio  # noqa: E402
from studio.jobs.boards import BoardRunner  # noqa: E402


def main() -> None:
    data_dir, models_file, what = sys.argv[1], sys.argv[2], sys.argv[3]
    studio = Studio.open(Settings(data_dir=data_dir, models_file=models_file, default_model="t-bidi", device="cpu"))
    assert studio.claim_data_folder(), "the data folder is owned by another process"  # as app.py does
    studio.recover_after_crash()
    if what == "render":  # long renders, one after another, until killed
        while True:
            studio.engine.run(RenderRequest(prompt="a render to kill", steps=128, seed=0), Plan.single(128))
    elif what == "history":  # history writes as fast as possible, until killed
        i = 0
        while True:
            rid = studio.history.start({"prompt": f"write {i}", "mode": "t2v", "model": "m"}, 1, "p", "single", 0)
            studio.history.finish(rid, "ok", timings={"total": 0.1})
            i += 1
    elif what == "finals":  # a board whose finals are slow; killed after the first one lands
        boards = BoardRunner(studio)
        (Path(data_dir) / "policies.toml").write_text("[policies.preview]\nsteps = 1\n[policies.final]\nsteps = 96\n")
        from studio.engine.policy import Policies

        studio.policies = studio.engine.policies = Policies.load(Path(data_dir) / "policies.toml")
        board = boards.boards.create("crash board", board_id="crash-board")
        for i in range(3):
            shot = boards.boards.add_shot(board.id, f"crash shot {i}", seed=i)
            boards.boards.approve(shot.id)
        for _ in boards.run(board.id, "final"):
            pass
        print("finished all finals", flush=True)
    elif what == "previews":  # a board's preview stage, slow shots (the second continues the first); killed mid-way
        boards = BoardRunner(studio)
        (Path(data_dir) / "policies.toml").write_text("[policies.preview]\nsteps = 12\n")
        from studio.engine.policy import Policies

        studio.policies = studio.engine.policies = Policies.load(Path(data_dir) / "policies.toml")
        studio.start_dispatcher()  # the whole queue, as app.py runs it
        board = boards.boards.create("preview board", board_id="preview-board", model="t-far")
        for i in range(3):
            boards.boards.add_shot(board.id, f"preview shot {i}", seed=i, continues=i == 1)
        for _ in boards.run(board.id, "preview"):
            pass
        print("finished all previews", flush=True)


if __name__ == "__main__":
    main()
