"""The read-only CLI commands start at once: they import neither torch, diffusers nor gradio (issue 15, item 5).

Each runs in a fresh subprocess, as a user runs it; the wrapper prints which heavy libraries the process had
imported when the command finished.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.history import HistoryStore

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "diffusers", "gradio", "transformers")
CLI = ("import sys, json; from studio.cli import main; code = main(sys.argv[1:]); "
       f"print('HEAVY ' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr); "
       "sys.exit(code)")


@pytest.fixture()
def data_dir(tmp_path):
    store = HistoryStore(tmp_path / "data" / "history.db")
    rid = store.start({"prompt": "a finished render", "mode": "t2v", "model": "t-far"}, 2, "p", "single", 0)
    store.finish(rid, "ok", timings={"total": 0.5})
    store.close()
    return tmp_path / "data"


@pytest.mark.parametrize("argv, expect", [
    (["history"], "a finished render"),
    (["history", "--json"], '"prompt": "a finished render"'),
    (["stats"], "t-far"),
    (["models"], "t-far"),
    (["models", "--json"], '"id": "t-far"'),
    (["policies"], "queue cap"),
])
def test_a_light_command_imports_no_heavy_library(argv, expect, data_dir, models_file):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-c", CLI, *argv, "--data-dir", str(data_dir), "--models-file", str(models_file)]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert expect in out.stdout
    line = next(x for x in out.stderr.splitlines() if x.startswith("HEAVY "))
    assert json.loads(line[len("HEAVY "):]) == []
