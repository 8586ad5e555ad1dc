"""Talking to the studio that owns a data folder, from another process (the server side: ui/owner_api.py).

    owner = find_studio(data_dir)                 # None: no studio owns it (render here)
    for event in send(owner, "render", job):      # the job's events, as dicts (studio/jobs/following.py)
        ...

Standard library only: a CLI that sends its render to a running studio imports neither torch, diffusers nor
gradio. The address and the token come from the owner's announcement (ownership.py), readable by its user only.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from ..engine import input_files
from ..errors import FolderOwned, MediaError, OwnerNotAnswering, StudioError, StudioStopped
from .ownership import ANNOUNCEMENT_NAME, LOCK_NAME, Announcement, current_owner

API = "studio/api"
TOKEN_HEADER = "X-Studio-Token"
PING_TIMEOUT = 3.0  # seconds for a studio to answer a ping
READ_TIMEOUT = 120.0  # a running job sends a line at least every few seconds (keep-alives)
STARTUP_WAIT = 30.0  # a studio that owns the folder but has not announced its address yet is starting


# The studio is local: never through a proxy. urllib's default opener honours http_proxy / HTTP_PROXY even for
# 127.0.0.1, which would hand the owner token and the job (input files included) to whatever listens there.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def open_direct(req: urllib.request.Request | str, timeout: float):
    """``urlopen`` for the local studio, ignoring any proxy settings."""
    return _DIRECT.open(req, timeout=timeout)


def _url(owner: Announcement, route: str) -> str:
    return f"{owner.url.rstrip('/')}/{API}/{route}"


def _open(owner: Announcement, route: str, body: dict | None, timeout: float):
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(_url(owner, route), data=data, method="GET" if data is None else "POST",
                                 headers={TOKEN_HEADER: owner.token or "", "Content-Type": "application/json"})
    return open_direct(req, timeout)


def ping(owner: Announcement, timeout: float = PING_TIMEOUT) -> dict:
    """The studio's answer (pid, data folder, loaded models). Raises OSError or ValueError when it does not answer
    as the owner should (no address, refused, timed out, wrong token, another process on that port)."""
    if not owner.url:
        raise ValueError("it has announced no address")
    with _open(owner, "ping", None, timeout) as resp:
        answer = json.loads(resp.read().decode("utf-8"))
    if answer.get("pid") != owner.pid:
        raise ValueError(f"{owner.url} is answered by pid {answer.get('pid')}, not by the owner")
    return answer


def not_answering(data_dir: Path, owner: Announcement, why: str) -> OwnerNotAnswering:
    lock, note = Path(data_dir) / LOCK_NAME, Path(data_dir) / ANNOUNCEMENT_NAME
    return OwnerNotAnswering(
        f"the studio that owns {data_dir} ({owner.describe()}) does not answer: {why}. If it is stuck, stop it "
        f"(`kill {owner.pid}` on {owner.host}; the lock goes with the process) and try again; only if process "
        f"{owner.pid} is gone and the lock stays, remove {lock} and {note}.")


def _wait_for_address(data_dir: Path, owner: Announcement, wait: float) -> Announcement | None:
    """A studio announces its address once its server runs: wait for that while it holds the lock."""
    deadline = time.monotonic() + wait
    while not owner.url and time.monotonic() < deadline:
        time.sleep(0.2)
        owner = current_owner(data_dir)
        if owner is None:
            return None
    return owner


def find_studio(data_dir: str | Path, standalone: bool = False, wait: float = STARTUP_WAIT) -> Announcement | None:
    """The studio that owns ``data_dir`` and answers; None if no studio owns it (a command-line render that owns
    it serves nothing). Raises FolderOwned for ``standalone`` beside a studio, OwnerNotAnswering for a studio
    that holds the lock but does not answer."""
    data_dir = Path(data_dir)
    owner = current_owner(data_dir)
    if owner is None or owner.kind != "studio":
        return None
    if standalone:
        raise FolderOwned(
            f"--standalone would load a second copy of the model beside the studio that owns {data_dir} "
            f"({owner.describe()}); leave out --standalone to send the job to that studio, or stop it first")
    owner = _wait_for_address(data_dir, owner, wait)
    if owner is None:  # it stopped while starting: the folder is free
        return None
    try:
        ping(owner)
    except (OSError, ValueError) as exc:
        raise not_answering(data_dir, owner, _why(exc)) from None
    return owner


def _detail(exc: urllib.error.HTTPError) -> str | None:
    """The studio's own message in a refusal (FastAPI's ``{"detail": ...}``), if it sent one."""
    try:
        detail = json.loads(exc.read(64 * 1024) or b"{}").get("detail")
    except (OSError, ValueError, AttributeError):
        return None
    return str(detail)[:500] if isinstance(detail, str) else None


def _why(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return _detail(exc) or f"HTTP {exc.code} from {exc.url}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def loaded_models(data_dir: str | Path, timeout: float = 1.0) -> dict[str, dict]:
    """What the owning studio has loaded ({model id: device, memory...}), {} if none runs or it does not answer."""
    owner = current_owner(data_dir)
    if owner is None or owner.kind != "studio" or not owner.url:
        return {}
    try:
        return dict(ping(owner, timeout).get("loaded") or {})
    except (OSError, ValueError):
        return {}


def upload_limit_mb(owner: Announcement) -> float:
    """The largest file the studio takes (its --max-upload-mb, from its ping); the default if it does not say."""
    try:
        limit = ping(owner).get("max_upload_mb")
    except (OSError, ValueError):
        limit = None
    return float(limit) if isinstance(limit, (int, float)) and limit > 0 else input_files.DEFAULT_LIMIT_MB


def attach(path: str | None, what: str = "--image", limit_mb: float = input_files.DEFAULT_LIMIT_MB
           ) -> dict | str | None:
    """A file to send with a job: its name and bytes, read with a bound (input_files.py). A path that names
    nothing, a device, a FIFO, a folder or a file over ``limit_mb`` is refused here (MediaError), before anything
    is read or sent (the studio takes no paths from outside its folders)."""
    if not path:
        return path
    if not os.path.lexists(Path(path).expanduser()):
        raise MediaError(f"{what}: file not found: {path}")
    data = input_files.read(path, what, limit_mb)
    return {"file": Path(path).name, "data": base64.b64encode(data).decode("ascii")}


def send(owner: Announcement, route: str, job: dict, timeout: float = READ_TIMEOUT) -> Iterator[dict]:
    """POST a job to the owner and yield its events as they come. Closing the generator (e.g. on Ctrl+C) hangs up,
    and the studio cancels the job. A stream cut before the studio's ``end`` line (the studio was stopped or
    killed) raises StudioStopped, naming the job when the studio said which it was."""
    try:
        resp = _open(owner, route, job, timeout)
    except (OSError, ValueError) as exc:
        raise StudioError(f"the studio at {owner.url} did not take the job: {_why(exc)}") from None
    job_id = None
    with resp:
        while line := _readline(owner, resp, job_id):
            try:
                event = json.loads(line)
            except ValueError:  # half a line: the studio died while it wrote it
                break
            if event.get("type") == "end":
                return
            job_id = event.get("job") or job_id
            if event.get("type") != "alive":
                yield event
    raise stopped(owner, job_id)


def stopped(owner: Announcement, job_id: str | None) -> StudioStopped:
    if job_id:
        return StudioStopped(f"the studio stopped; job {job_id} waits in the queue and runs when it starts again")
    return StudioStopped(f"the studio at {owner.url} stopped before it said which job it queued; what it had "
                         "queued runs when it starts again (`python -m studio queue list` shows it)")


def _readline(owner: Announcement, resp, job_id: str | None) -> bytes:
    try:
        return resp.readline()
    except OSError:  # reset, or the connection closed mid-chunk: the studio stopped or was killed mid-job
        raise stopped(owner, job_id) from None
