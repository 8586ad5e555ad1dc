"""The CLI end to end, as a user runs it: `python -m studio ...` in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args, data_dir, models_file):
    env = dict(os.environ, HF_HUB_OFFLINE="1", STUDIO_MODEL="t-far", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "studio", *args, "--data-dir", str(data_dir), "--models-file", str(models_file)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_render_preview_then_history_and_models(tmp_path, models_file, sample_media):
    data = tmp_path / "data"
    out = _run("render", "--prompt", "a green triangle moving down", "--steps", "2", "--preview", "1", "--seed", "0",
               "--gif", data_dir=data, models_file=models_file)
    assert out.returncode == 0, out.stderr
    paths = out.stdout.strip().splitlines()
    assert len(paths) == 2 and all(p.endswith(".mp4") and Path(p).is_file() for p in paths)  # stdout: paths only
    assert all(Path(p).with_suffix(".gif").is_file() for p in paths)
    assert "Traceback" not in out.stderr

    out = _run("render", "--prompt", "a red square", "--mode", "v2v", "--video", str(sample_media["video"]),
               "--compare", "1,2", "--frames", "17", "--seed", "4", "--json", data_dir=data, models_file=models_file)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["ok"] and summary["seed"] == 4 and summary["plan"] == "compare"
    assert [r["steps"] for r in summary["results"]] == [1, 2]
    assert all(Path(r["video"]).is_file() and r["timings"]["total"] > 0 for r in summary["results"])
    assert summary["results"][0]["request"]["frames"] == 17

    out = _run("history", "--search", "triangle", "--json", data_dir=data, models_file=models_file)
    rows = json.loads(out.stdout)
    assert [r["steps"] for r in rows] == [2, 1] and all(r["status"] == "ok" for r in rows)
    # paging: one at a time, the line on stderr says where the next ones start
    first = _run("history", "--search", "triangle", "--limit", "1", data_dir=data, models_file=models_file)
    assert first.returncode == 0 and "1-1 of 2; the next ones: --offset 1" in first.stderr
    second = _run("history", "--search", "triangle", "--limit", "1", "--offset", "1", data_dir=data,
                  models_file=models_file)
    assert " 1 steps " in second.stdout and " 2 steps " not in second.stdout and "next ones" not in second.stderr

    out = _run("models", "--json", data_dir=data, models_file=models_file)
    listed = {r["id"]: r for r in json.loads(out.stdout)}
    assert listed["t-far"]["available"] and not listed["anyflow-far-14b"]["available"]


def test_bad_input_exits_nonzero_with_one_clear_line(tmp_path, models_file):
    out = _run("render", "--prompt", " ", "--steps", "-1", data_dir=tmp_path / "d", models_file=models_file)
    assert out.returncode == 2
    assert "error: Invalid request" in out.stderr and "prompt" in out.stderr and "steps" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
