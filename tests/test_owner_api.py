"""The CLI beside a running studio: renders and board runs go to the studio that owns the data folder.

A studio runs in this process on the tiny test models (launch_app), owns its data folder and serves its API
(studio/ui/owner_api.py); `python -m studio` runs in a subprocess, as a user runs it beside a studio.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import launch_app
from studio.app import ownership
from studio.store.history import Query
from studio.ui import guard, owner_api

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "diffusers", "gradio")
# Runs the CLI, then says on stderr which heavy libraries the process imported.
CLI = ("import sys; from studio.cli.commands import main; code = main(sys.argv[1:]); "
       f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr); sys.exit(code)")


def cli(*argv, data_dir):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("STUDIO_MODEL", None)
    cmd = [sys.executable, "-c", CLI, *argv, "--data-dir", str(data_dir)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def heavy(out) -> list:
    line = next(x for x in out.stderr.splitlines() if x.startswith("HEAVY "))
    return json.loads(line[len("HEAVY "):].replace("'", '"'))


@pytest.fixture(scope="module")
def owner(tmp_path_factory, tiny_dirs):
    """A studio on the tiny models that owns its data folder and serves the API, as app.py runs it."""
    demo, url, studio = launch_app(tmp_path_factory.mktemp("owner"), tiny_dirs)
    assert studio.claim_data_folder()
    studio.recover_after_crash()
    owner_api.serve(demo.app, studio, url)
    yield studio
    demo.close()
    studio.close()


def rows(studio) -> list[dict]:
    return studio.history.search(Query(limit=1000))


def test_the_announcement_holds_a_token_only_its_user_may_read(owner):
    note = ownership.current_owner(owner.settings.data_dir)
    assert note.kind == "studio" and note.url and len(note.token) >= 32
    assert (owner.settings.data_dir / ownership.ANNOUNCEMENT_NAME).stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("token", [None, "wrong"])
def test_the_api_refuses_a_caller_without_the_token(owner, token):
    note = ownership.current_owner(owner.settings.data_dir)
    req = urllib.request.Request(f"{note.url.rstrip('/')}/studio/api/ping", headers={"X-Studio-Token": token or ""})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 401


def test_a_render_goes_to_the_studio_on_its_loaded_model(owner):
    owner.models.get("t-far")  # the studio has the model loaded already
    before = len(rows(owner))
    out = cli("render", "--prompt", "a blue ball sent to the studio", "--steps", "1", "--seed", "3",
              data_dir=owner.settings.data_dir)
    assert out.returncode == 0, out.stderr
    [path] = out.stdout.splitlines()
    assert path.endswith(".mp4") and Path(path).is_file()
    assert "sent to the studio at" in out.stderr and "Traceback" not in out.stderr
    assert len(rows(owner)) == before + 1 and rows(owner)[0]["video_path"] == path
    assert owner.models.load_counts["t-far"] == 1  # no second copy: the studio's model rendered it
    assert heavy(out) == []  # the CLI imported neither torch, diffusers nor gradio


def test_an_i2v_compare_render_sends_its_image_and_prints_json(owner, sample_media):
    out = cli("render", "--prompt", "the first frame, moving", "--mode", "i2v", "--image", str(sample_media["image"]),
              "--compare", "1,2", "--seed", "5", "--json", data_dir=owner.settings.data_dir)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["ok"] and summary["seed"] == 5 and summary["plan"] == "compare"
    assert [r["steps"] for r in summary["results"]] == [1, 2]
    image = Path(summary["results"][0]["request"]["image"])
    assert image.parent == owner.settings.renders_dir / "inputs"  # a copy the studio owns, not the CLI's path
    assert guard.servable(image, guard.input_roots(owner)) == image.resolve()  # so History's re-run finds it
    assert image.read_bytes() == sample_media["image"].read_bytes()
    assert heavy(out) == []


def test_bad_input_sent_to_the_studio_is_one_line(owner):
    out = cli("render", "--prompt", " ", "--steps", "-1", data_dir=owner.settings.data_dir)
    assert out.returncode == 2 and out.stdout == ""
    errors = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "Invalid request" in errors[0] and "Traceback" not in out.stderr


def test_standalone_beside_the_studio_is_refused_with_the_reason(owner):
    before = len(rows(owner))
    out = cli("render", "--prompt", "a second copy", "--steps", "1", "--standalone", data_dir=owner.settings.data_dir)
    assert out.returncode == 2 and out.stdout == ""
    assert "--standalone would load a second copy of the model" in out.stderr
    assert f"pid {os.getpid()}" in out.stderr and len(rows(owner)) == before


def test_board_run_goes_to_the_studio(owner, tmp_path, sample_media):
    shutil.copy(sample_media["image"], tmp_path / "first.png")
    board = {"name": "sent board", "model": "t-far", "shots": [
        {"prompt": "a red square", "seed": 1},
        {"prompt": "from the first frame", "mode": "i2v", "image": "first.png", "seed": 2},  # relative to the file
    ]}
    (tmp_path / "board.json").write_text(json.dumps(board), encoding="utf-8")
    out = cli("board", "run", str(tmp_path / "board.json"), "--quiet", "--export-dir", str(tmp_path / "out"),
              data_dir=owner.settings.data_dir)
    assert out.returncode == 0, out.stderr
    paths = out.stdout.splitlines()
    assert len(paths) == 2 and all(Path(p).is_file() for p in paths)
    assert "board 'sent board': 2 shots; preview: 2 to render" in out.stderr
    assert (tmp_path / "out" / "board.json").is_file() and heavy(out) == []
    again = cli("board", "run", str(tmp_path / "board.json"), "--quiet", data_dir=owner.settings.data_dir)
    assert again.returncode == 0 and again.stdout == "" and "0 to render, 2 already done" in again.stderr


# A process that owns a data folder and announces an address where nothing answers, until its stdin closes.
STALE = ("import sys; from studio.app.ownership import FolderLock; lock = FolderLock(sys.argv[1]); "
         "lock.acquire(); lock.announce(sys.argv[2], 'token'); print('owned', flush=True); sys.stdin.read()")


def _dead_url() -> str:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_a_studio_that_does_not_answer_is_named_with_how_to_clear_it(tmp_path):
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", STALE, str(data), _dead_url()], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "owned"
        out = cli("render", "--prompt", "anyone there?", "--steps", "1", data_dir=data)
        assert out.returncode == 2 and out.stdout == ""
        errors = [x for x in out.stderr.splitlines() if x.startswith("error:")]
        assert len(errors) == 1 and "does not answer" in errors[0]
        assert f"kill {proc.pid}" in errors[0] and "studio.lock" in errors[0] and "studio.json" in errors[0]
        history = cli("history", data_dir=data)  # read-only commands still work beside it
        assert history.returncode == 0 and heavy(history) == []
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_a_client_that_hangs_up_cancels_its_render(owner):
    import time

    from studio.app import owner_client

    note = ownership.current_owner(owner.settings.data_dir)
    job = {"request": {"prompt": "a render nobody waits for", "steps": 128, "seed": 9, "model": "t-far"}}
    events = owner_client.send(note, "render", job)
    assert next(e for e in events if e["type"] == "progress")["step"] >= 1
    events.close()  # hang up mid-render, as Ctrl+C does
    deadline = time.monotonic() + 60
    while (row := rows(owner)[0])["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)  # the studio's render thread finishes the row
    assert row["prompt"] == "a render nobody waits for" and row["status"] == "cancelled"
