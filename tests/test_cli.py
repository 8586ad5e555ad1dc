"""The CLI end to end, as a user runs it: `python -m studio ...` in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


FAR_14B_REPO = "nvidia/AnyFlow-FAR-Wan2.1-14B-Diffusers"


def _run(*args, data_dir, models_file, hf_home=None):
    """``python -m studio ARGS``. Its Hugging Face cache is ``hf_home`` (default: an empty folder next to
    ``data_dir``), never the machine's, so what this machine has downloaded changes nothing."""
    hf_home = Path(hf_home or Path(data_dir).parent / "hf-cache")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HUB_OFFLINE="1", STUDIO_MODEL="t-far", PYTHONUNBUFFERED="1", HF_HOME=str(hf_home),
               HF_HUB_CACHE=str(hf_home / "hub"))
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

    hf_home = tmp_path / "hf"  # an empty Hugging Face cache: what this machine has downloaded does not count
    out = _run("models", "--json", data_dir=data, models_file=models_file, hf_home=hf_home)
    listed = {r["id"]: r for r in json.loads(out.stdout)}
    assert listed["t-far"]["available"] and not listed["anyflow-far-14b"]["available"]
    # the same cache with a (fake) snapshot of the 14B model: the CLI looked there, and only there
    snapshot = _fake_hub_snapshot(hf_home / "hub", FAR_14B_REPO)
    listed = {r["id"]: r for r in json.loads(_run("models", "--json", data_dir=data, models_file=models_file,
                                                  hf_home=hf_home).stdout)}
    assert listed["anyflow-far-14b"]["available"] and listed["anyflow-far-14b"]["folder"] == str(snapshot)


def _fake_hub_snapshot(cache: Path, repo: str) -> Path:
    """The layout huggingface_hub keeps a downloaded repo in: refs/main names a snapshot folder."""
    commit = "0" * 40
    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}", encoding="utf-8")
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot


def test_bad_input_exits_nonzero_with_one_clear_line(tmp_path, models_file):
    out = _run("render", "--prompt", " ", "--steps", "-1", data_dir=tmp_path / "d", models_file=models_file)
    assert out.returncode == 2
    assert "error: Invalid request" in out.stderr and "prompt" in out.stderr and "steps" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
