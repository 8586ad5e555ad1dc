"""Hardening: every bad input gets one clear message, crashes lose nothing, memory is checked first.

Table-driven: each case names the input and what the message must mention. "ok" cases must render.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.store.history import HistoryStore
from studio.store.queue import QueueStore
from studio.engine.render import RenderRequest
from studio.app.services import Studio
from studio.jobs.boards import BoardRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile  # noqa: E402
from conftest import wait_for_query  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return {"image": hostile.make_images(root / "img"), "video": hostile.make_videos(root / "vid")}


FIELD_CASES = [
    # (request fields, expected: "ok" or a word the message must contain)
    ({"prompt": ""}, "prompt"),
    ({"prompt": " \t\n "}, "prompt"),
    ({"prompt": "x" * 20_000}, "2,000"),
    ({"prompt": "🎬🦊 a fox made of emoji ✨"}, "ok"),
    ({"prompt": "ثعلب أحمر يركض في الثلج"}, "ok"),  # right-to-left
    ({"prompt": "a fox\x00\x07\x1b[31m in red"}, "ok"),  # control characters are stripped
    ({"steps": 0}, "steps"),
    ({"steps": -1}, "steps"),
    ({"steps": 10_000}, "steps"),
    ({"steps": "many"}, "whole number"),
    ({"steps": 2.5}, "whole number"),
    ({"steps": float("nan")}, "whole number"),
    ({"seed": "abc"}, "seed"),
    ({"seed": 2**80}, "seed"),
    ({"frames": 0}, "frames"),
    ({"frames": 12}, "ok"),  # rounded to 13 with a note
    ({"height": 30}, "multiple of 16"),
    ({"width": 0}, "width"),
    ({"width": 4096, "height": 4096, "frames": 1025}, "renders at most"),  # past the model's position table
    ({"frames": 257}, "at most 253 frames"),  # the tiny model's rope_max_seq_len 64 x 4 frames per latent frame
    ({"width": 1040}, "at most 1024 pixels"),  # 64 positions x patch 2 x the VAE's 8 pixels
    ({"fps": -3}, "fps"),
    ({"mode": "3d"}, "mode"),
    ({"model": "no-such-model"}, "Known models"),
    ({"guidance_scale": "strong"}, "guidance_scale"),
]


def _outcome(studio, req):
    """'ok', or the message. Anything other than a StudioError escaping is a failure of the test."""
    try:
        events = list(studio.engine.render(req))
    except StudioError as exc:
        return str(exc)
    last = events[-1]
    return "ok" if last.kind == "result" else last.message


@pytest.mark.parametrize("fields, expected", FIELD_CASES, ids=[str(i) for i in range(len(FIELD_CASES))])
def test_bad_fields(studio, fields, expected):
    outcome = _outcome(studio, RenderRequest(**{"prompt": "a fox", "steps": 1, "seed": 0, **fields}))
    if expected == "ok":
        assert outcome == "ok"
    else:
        assert outcome != "ok" and expected in outcome and "Traceback" not in outcome


IMAGE_CASES = [("zero_bytes", "empty"), ("not_an_image", "not an image"), ("corrupt", "damaged"),
               ("huge", "too large"), ("cmyk", "ok"), ("sixteen_bit", "ok"), ("animated", "ok"), ("rgba", "ok")]
VIDEO_CASES = [("zero_bytes", "empty"), ("garbage", "damaged"), ("audio_only", "no video stream"),
               ("one_frame", "ok"), ("odd_size", "ok"), ("variable_fps", "ok"), ("hours_long", "ok")]


@pytest.mark.parametrize("name, expected", IMAGE_CASES)
def test_bad_images(studio, files, name, expected):
    outcome = _outcome(studio, RenderRequest(prompt="a fox", mode="i2v", image=str(files["image"][name]),
                                             steps=1, seed=0))
    assert outcome == "ok" if expected == "ok" else expected in outcome


def _count_decoded_frames(monkeypatch, limit: int) -> list:
    """Count the frames ffmpeg hands back to the studio (imageio_ffmpeg.read_frames); more than ``limit`` fails
    at once instead of decoding a 2-hour file to the end."""
    import imageio_ffmpeg

    original, counts = imageio_ffmpeg.read_frames, []

    def read_frames(*args, **kwargs):
        reader = original(*args, **kwargs)
        yield next(reader)  # the metadata
        counts.append(0)
        for frame in reader:
            counts[-1] += 1
            assert counts[-1] <= limit, f"ffmpeg decoded more than the {limit} frames the render uses"
            yield frame

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", read_frames)
    return counts


@pytest.mark.parametrize("name, expected", VIDEO_CASES)
def test_bad_videos(studio, files, name, expected, monkeypatch):
    decoded = _count_decoded_frames(monkeypatch, limit=9)
    outcome = _outcome(studio, RenderRequest(prompt="a fox", mode="v2v", video=str(files["video"][name]),
                                             steps=1, seed=0, frames=9))
    assert (outcome == "ok" if expected == "ok" else expected in outcome), outcome
    assert all(n <= 9 for n in decoded)  # a 2-hour input costs only the frames used, however fast the machine
    if expected == "ok":
        assert decoded and decoded[-1] >= 1


def test_failed_renders_are_recorded_and_leave_no_partial_files(studio, files, settings):
    list(studio.engine.render(RenderRequest(prompt="a bad one", mode="i2v", image=str(files["image"]["corrupt"]),
                                            steps=1, seed=0)))
    row = studio.history.search(text="bad one")[0]
    assert row["status"] == "failed" and "damaged" in row["error"]
    assert not list(settings.data_dir.rglob(".*.part.*"))


def test_cli_bad_input_exits_2_with_one_line(tmp_path, models_file, files):
    env = dict(os.environ, HF_HUB_OFFLINE="1", STUDIO_MODEL="t-far")
    out = subprocess.run(
        [sys.executable, "-m", "studio", "render", "--prompt", "a fox", "--mode", "i2v", "--image",
         str(files["image"]["not_an_image"]), "--data-dir", str(tmp_path), "--models-file", str(models_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not an image" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


# ---- crashes ----------------------------------------------------------------------------------
def _spawn(tmp_path, models_file, what):
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "crash_worker.py"), str(tmp_path), str(models_file),
                             what], cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _integrity(db_path):
    with sqlite3.connect(db_path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def _owner(**settings):
    """The next studio on the folder, as app.py starts it: it owns the folder (the killed one let go of it by dying)
    and recovers after the crash."""
    studio = Studio.open(**settings)
    assert studio.claim_data_folder()
    studio.recover_after_crash()
    return studio


def test_kill_during_render(tmp_path, models_file):
    proc = _spawn(tmp_path, models_file, "render")
    db = tmp_path / "history.db"
    try:
        wait_for_query("SELECT count(*) FROM renders WHERE status = 'running'", db)
        time.sleep(0.3)
    finally:
        _kill(proc)
    partial = tmp_path / "renders" / "day" / ".left.part.mp4"  # as a write cut short would leave
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half an mp4")
    assert _integrity(db) == "ok"
    studio = _owner(data_dir=tmp_path, models_file=models_file, device="cpu")
    rows = studio.history.search(text="kill")
    assert rows and {r["status"] for r in rows} <= {"interrupted", "ok"} and "interrupted" in {r["status"] for r in rows}
    assert not partial.exists()  # partial files are removed on start
    studio.close()


def test_kill_during_history_writes(tmp_path, models_file):
    proc = _spawn(tmp_path, models_file, "history")
    db = tmp_path / "history.db"
    try:
        wait_for_query("SELECT count(*) > 50 FROM renders", db)
    finally:
        _kill(proc)
    assert _integrity(db) == "ok"
    store = HistoryStore(db)
    store.mark_interrupted()  # the owner's crash recovery, as Studio.recover_after_crash runs it
    n = store.count()
    assert n > 50 and len(store.search(text="write", limit=1000)) == min(n, 1000)  # FTS index agrees with the table
    assert store.search(status="running") == []  # a row cut mid-render is marked interrupted, not left running
    store.close()


def test_kill_during_finals_then_resume(tmp_path, models_file):
    proc = _spawn(tmp_path, models_file, "finals")
    db = tmp_path / "history.db"
    try:
        wait_for_query("SELECT count(*) FROM shots WHERE final_id IS NOT NULL", db, timeout=180)
    finally:
        _kill(proc)
    assert _integrity(db) == "ok"
    studio = _owner(data_dir=tmp_path, models_file=models_file, device="cpu", default_model="t-bidi")
    from studio.engine.policy import Policies

    (tmp_path / "policies.toml").write_text("[policies.preview]\nsteps = 1\n[policies.final]\nsteps = 2\n")
    studio.policies = studio.engine.policies = Policies.load(tmp_path / "policies.toml")
    boards = BoardRunner(studio)
    assert boards.boards.batches("crash-board")[-1]["status"] == "interrupted"
    finished = [s.id for s in boards.boards.get("crash-board").shots if s.final_id]
    done = list(boards.run("crash-board", "final"))[-1]
    assert done.skipped == finished and len(done.rendered) == 3 - len(finished)
    studio.close()


def test_kill_during_previews_then_run_the_stage_again(tmp_path, models_file):
    """A board's preview stage killed mid-way; the next studio runs the jobs the kill left and the stage is run
    again: one preview row per shot (the shots whose jobs still wait are not queued a second time)."""
    proc = _spawn(tmp_path, models_file, "previews")
    db = tmp_path / "history.db"
    try:
        wait_for_query("SELECT count(*) FROM renders WHERE status = 'running' AND prompt = 'preview shot 1'", db,
                       timeout=400)
    finally:
        _kill(proc)
    studio = _owner(data_dir=tmp_path, models_file=models_file, device="cpu", default_model="t-bidi")
    store = QueueStore(studio.history)
    for job in store.list(states=("queued",)):
        store.set_steps(job["id"], 1)  # keeps the test short
    studio.start_dispatcher()  # the whole queue, as app.py runs it
    done = list(BoardRunner(studio).run("preview-board", "preview"))[-1]
    assert not done.failed
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT prompt, status FROM renders ORDER BY prompt").fetchall()
    assert rows == [(f"preview shot {i}", "ok") for i in range(3)]
    shots = BoardRunner(studio).boards.get("preview-board").shots
    assert all(s.preview_id for s in shots)
    assert {j["state"] for j in store.list()} == {"done"}
    studio.close()
