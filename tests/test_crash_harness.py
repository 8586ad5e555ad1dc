"""The crash-injection harness (bench/crash.py, issue 22 item 8): its invariant checks catch what they name, and a
short run (2 trials, fixed seed, a small workload) of a studio subprocess killed mid-work ends with none of the
violations it checks (typed jobs, re-runs, shot revisions, claimers, recovery, the dispatcher)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import crash  # noqa: E402
from crash_invariants import check  # noqa: E402

from studio.store.history import HistoryStore  # noqa: E402
from studio.store.queue import QueueStore  # noqa: E402

def test_the_checks_catch_what_they_name(tmp_path):
    history = HistoryStore(tmp_path / "history.db")
    store = QueueStore(history)
    stuck, done, gone = (store.add({"request": {"prompt": p}}) for p in ("stuck", "done", "gone"))
    for jid in (stuck, done, gone):
        store.claim("local:elsewhere:1")
    store.finish(done, "done")
    store.finish(gone, "cancelled", error="Cancelled by the user.")
    rid = history.start({"prompt": "done", "mode": "t2v", "model": "m"}, 1, done, "single", 0)
    history.finish(rid, "ok", video_path=str(tmp_path / "missing.mp4"))
    history.set_accepted(rid, True)
    again = history.start({"prompt": "done", "mode": "t2v", "model": "m"}, 1, done, "single", 0)
    history.close()
    found = check(tmp_path, cancelled=set(), stars={rid, "no-such-render"})
    expected = [f"job {stuck}: still running", f"job {gone}: cancelled, but no user cancelled it",
                f"job {done} budget 0: 2 history rows", f"render {again}: still running",
                f"render {rid}: ok, but its file is gone", f"starred render {rid}: ok", "starred render no-such-render"]
    for line in expected:
        assert any(f.startswith(line) for f in found), (line, found)
    assert check(tmp_path, cancelled={gone}) != found  # a user's cancel is no violation


def test_a_short_crash_run(tmp_path, capsys):
    code = crash.main(["--trials", "2", "--seed", "3", "--kills", "1", "--window", "2", "--small",
                       "--keep", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "trials 2, kills 2, violations 0", lines
    assert code == 0
