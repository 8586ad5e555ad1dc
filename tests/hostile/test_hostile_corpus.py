"""The hostile-input corpus (cases.toml, data): every CLI command and flag, and the owner API, given bad values.

Each case says what it runs (``argv`` for ``python -m studio``, or ``api`` for a request to the owner API), the
exit status (or HTTP status) it must give and a regex its message must match. One test runs them all, in this
process (``studio.cli.main``, stdout/stderr captured), and fails on any traceback: on stderr, or logged by the
studio (any log record carrying an exception). A case whose exit is not 0 must print exactly one ``error:`` line.

Placeholders in argv: {data} a fresh data folder; {owned} one a studio in this process owns (its API answers);
{afile} a regular file; {corrupt} a folder whose history.db is garbage; {fifo} a named pipe; {folder} a folder;
{image} {video} good inputs; {big} a 300 MB sparse file; {board} a board of one shot; {board_zero} one whose shot's
image is /dev/zero; {notjson} a file that is not JSON; {mp4} a finished render of {data}; {id} its history id;
{silent} HOST:PORT of a socket that accepts and says nothing; {http} HOST:PORT of the studio's web server.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import socket
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from conftest import _models_toml, launch_app  # noqa: E402

CASES = tomllib.loads((HERE / "cases.toml").read_text(encoding="utf-8"))["case"]


class _Tracebacks(logging.Handler):
    """Log records that carry an exception (a traceback in the studio's log)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_dirs, sample_media):
    """The files the placeholders name, the models env, and a studio that owns {owned}."""
    from studio.ui import owner_api

    root = tmp_path_factory.mktemp("hostile-corpus")
    models = root / "models.toml"
    models.write_text(_models_toml(tiny_dirs), encoding="utf-8")
    saved = {k: os.environ.get(k) for k in ("STUDIO_MODELS_FILE", "STUDIO_MODEL", "STUDIO_DEVICE", "STUDIO_DATA_DIR")}
    os.environ.update(STUDIO_MODELS_FILE=str(models), STUDIO_MODEL="t-far", STUDIO_DEVICE="cpu")
    os.environ.pop("STUDIO_DATA_DIR", None)
    places = _files(root, sample_media)
    demo, url, studio = launch_app(root / "owner", tiny_dirs)
    assert studio.claim_data_folder()
    token = owner_api.serve(demo.app, studio, url)
    places.update(owned=str(studio.settings.data_dir), http=url.split("//")[1].rstrip("/"))
    silent = socket.create_server(("127.0.0.1", 0))  # accepts TCP, never says a word (--ray-address)
    silent.listen(8)
    places.update(silent=f"127.0.0.1:{silent.getsockname()[1]}")
    yield {"places": places, "url": url, "token": token}
    silent.close()
    demo.close()
    studio.close()
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _files(root: Path, media: dict) -> dict:
    (root / "afile").write_text("not a folder")
    (root / "corrupt").mkdir()
    (root / "corrupt" / "history.db").write_bytes(os.urandom(4096))
    os.mkfifo(root / "fifo")
    (root / "folder").mkdir()
    with open(root / "big.png", "wb") as f:
        f.truncate(300 * 2**20)  # sparse: 300 MB to stat, nothing on disk
    (root / "notjson.json").write_text("{ not json")
    (root / "board.json").write_text(json.dumps({"name": "b", "shots": [{"prompt": "a fox"}]}))
    (root / "board_zero.json").write_text(json.dumps(
        {"name": "z", "shots": [{"prompt": "a fox", "mode": "i2v", "image": "/dev/zero"}]}))
    return {"data": str(root / "data"), "afile": str(root / "afile"), "corrupt": str(root / "corrupt"),
            "fifo": str(root / "fifo"), "folder": str(root / "folder"), "image": str(media["image"]),
            "video": str(media["video"]), "big": str(root / "big.png"), "board": str(root / "board.json"),
            "board_zero": str(root / "board_zero.json"), "notjson": str(root / "notjson.json")}


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    from studio.cli import commands as cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _run_api(case: dict, world: dict) -> tuple[int, str, str]:
    api = case["api"]
    headers = {"Content-Type": "application/json"}
    if api.get("token", True):
        headers["X-Studio-Token"] = world["token"] if api.get("token", True) is True else api["token"]
    body = api.get("body")
    data = None if body is None else body.encode("utf-8")
    req = urllib.request.Request(f"{world['url'].rstrip('/')}/studio/api/{api['route']}", data=data,
                                 method=api.get("method", "POST" if data is not None else "GET"), headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=60) as resp:
            return resp.status, resp.read().decode("utf-8", "replace"), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace"), ""


def _fill(argv: list[str], places: dict) -> list[str]:
    return [a.format(**places) for a in argv]


def _render_one(places: dict) -> None:
    """{mp4} and {id}: a finished render in {data}, for --extend, --from and queue cases."""
    code, out, err = _run_cli(["render", "--data-dir", places["data"], "--prompt", "a corpus fox", "--steps", "1",
                               "--seed", "1", "--json", "--quiet"])
    assert code == 0, err
    result = json.loads(out)["results"][0]
    places.update(mp4=result["video"], id=result["id"])


def _check(case: dict, code: int, out: str, err: str, logged: list[str]) -> str | None:
    """What is wrong with a case's outcome, or None."""
    text = out + err
    if "Traceback" in text or logged:
        return f"traceback: {(logged or [text])[-1][-400:]}"
    if code != case["exit"]:
        return f"exit {code}, expected {case['exit']}: {text[-400:]}"
    if not re.search(case["message"], text, re.S):
        return f"message does not match {case['message']!r}: {text[-400:]}"
    if "argv" in case and code != 0 and "usage:" not in err and sum("error:" in ln for ln in err.splitlines()) != 1:
        return f"not one error line: {err[-400:]}"
    return None


def test_the_hostile_corpus(world):
    assert len(CASES) >= 120
    places, failures = dict(world["places"]), []
    _render_one(places)
    catcher = _Tracebacks()
    logging.getLogger().addHandler(catcher)
    try:
        for case in CASES:
            catcher.records.clear()
            try:
                code, out, err = (_run_api(case, world) if "api" in case
                                  else _run_cli(_fill(case["argv"], places)))
            except Exception as exc:  # noqa: BLE001 - an escaped exception is the finding
                code, out, err = -1, "", f"Traceback: {type(exc).__name__}: {exc}"
            problem = _check(case, code, out, err, list(catcher.records))
            if problem:
                failures.append(f"{case['name']}: {problem}")
    finally:
        logging.getLogger().removeHandler(catcher)
    assert not failures, f"{len(failures)} of {len(CASES)} cases failed:\n" + "\n".join(failures)
