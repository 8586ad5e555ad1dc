"""The read-only CLI commands start at once: they import neither torch, diffusers, gradio nor pandas and numpy
(issue 15, item 5; issue 27, item 5: sqlite-utils pulled in pandas and numpy, ~0.4 s of a ~0.42 s command).

Each runs in a fresh subprocess, as a user runs it; the wrapper prints which heavy libraries the process had
imported when the command finished.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.store.history import HistoryStore
from studio.store.queue import QueueStore

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "diffusers", "gradio", "transformers", "pandas", "numpy")
CLI = ("import sys, json; from studio.cli.commands import main; code = main(sys.argv[1:]); "
       f"print('HEAVY ' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr); "
       "sys.exit(code)")


@pytest.fixture()
def data_dir(tmp_path):
    store = HistoryStore(tmp_path / "data" / "history.db")
    rid = store.start({"prompt": "a finished render", "mode": "t2v", "model": "t-far"}, 2, "p", "single", 0)
    store.finish(rid, "ok", timings={"total": 0.5})
    QueueStore(store).add({"request": {"prompt": "a waiting job", "steps": 2}})
    store.close()
    return tmp_path / "data"


@pytest.mark.parametrize("argv, expect", [
    (["history"], "a finished render"),
    (["history", "--json"], '"prompt": "a finished render"'),
    (["stats"], "t-far"),
    (["models"], "t-far"),
    (["models", "--json"], '"id": "t-far"'),
    (["policies"], "queue cap"),
    (["queue", "list"], "queued"),
])
def test_a_light_command_imports_no_heavy_library(argv, expect, data_dir, models_file):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-c", CLI, *argv, "--data-dir", str(data_dir), "--models-file", str(models_file)]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert expect in out.stdout
    line = next(x for x in out.stderr.splitlines() if x.startswith("HEAVY "))
    assert json.loads(line[len("HEAVY "):]) == []


def _run(argv, data_dir, models_file):
    cmd = [sys.executable, "-m", "studio", *argv, "--data-dir", str(data_dir), "--models-file", str(models_file)]
    return subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                          timeout=60)


def test_queue_list_says_what_it_left_out_and_pages(tmp_path, models_file):
    store = HistoryStore(tmp_path / "data" / "history.db")
    queue = QueueStore(store)
    ids = [queue.add({"request": {"prompt": f"job {i}", "steps": 2}}) for i in range(7)]
    store.close()
    first = _run(["queue", "list", "--limit", "3"], tmp_path / "data", models_file)
    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in first.stdout.splitlines()] == ids[:3]
    assert "4 of 7 jobs not printed" in first.stderr and "--offset 3 --limit 3" in first.stderr
    last = _run(["queue", "list", "--offset", "6", "--limit", "3"], tmp_path / "data", models_file)
    assert [line.split()[0] for line in last.stdout.splitlines()] == ids[6:]
    assert "#7" in last.stdout  # positions count from the head of the queue, not from the page
    everything = _run(["queue", "list"], tmp_path / "data", models_file)
    assert len(everything.stdout.splitlines()) == 7 and "not printed" not in everything.stderr
    bad = _run(["queue", "list", "--limit", "-1"], tmp_path / "data", models_file)
    assert bad.returncode == 2 and "must be 0 or more" in bad.stderr and "Traceback" not in bad.stderr
