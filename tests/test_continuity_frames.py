"""A continuing i2v shot's first frame (the previous render's last) goes to the session's own inputs folder,
which the Space janitor purges, not to one shared by every session."""

from studio.app import cleanup
from studio.engine import space
from studio.jobs.boards import BoardRunner
from studio.engine.policy import Policies

POLICIES = "[policies.preview]\nsteps = 1\n[policies.final]\nsteps = 1\n"


def test_continuity_frames_go_to_the_sessions_inputs(settings, studio):
    (settings.data_dir / "policies.toml").write_text(POLICIES)
    studio.policies = studio.engine.policies = Policies.load(settings.user_policies_file)
    runner, sid = BoardRunner(studio), space.new_session_id()
    board = runner.boards.create("I2V chain", model="t-bidi-kf", session=sid)
    runner.boards.add_shot(board.id, "a red ball", seed=1)
    runner.boards.add_shot(board.id, "it stops", seed=2, mode="i2v", continues=True)
    list(runner.run(board.id, "preview", session=sid))
    second = runner.boards.get(board.id, sid).shots[1]
    frame = studio.history.get(second.preview_id)["request"]["image"]
    renders = studio.settings.renders_dir
    assert str(frame).startswith(str(renders / sid / "inputs") + "/")
    assert cleanup.purge_expired_files(renders, ttl_hours=-1) >= 1  # loose: the janitor's to purge
