"""What the public API takes and gives: the types its page shows, who called (``Caller``: a Space keeps each
client's renders private), files in (only uploads) and out (only the studio's folders), LoRA names, and the
finished budgets of a queued job as JSON. The endpoints themselves are in ``public_api``.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Iterator, Literal, TypedDict

import gradio as gr
from gradio.utils import get_upload_folder

from ..errors import InvalidRequest, StudioError
from ..engine.render import Plan, Result
from . import format as fmt
from . import guard
from .create_choices import off_world
from .session import friendly_error, updates


# ---- what the endpoints take and give (the API page shows these types) ----------------------------
class FileMeta(TypedDict):
    _type: Literal["gradio.FileData"]


class FileData(TypedDict):
    """A file: gradio_client sends ``handle_file(path)`` and hands back a local path (``download_files``)."""

    path: str
    meta: FileMeta


class Rendered(TypedDict):
    history_id: str
    role: str  # preview | final | single | compare
    model: str
    mode: str
    prompt: str
    seed: int
    steps: int  # steps this video was rendered with
    steps_asked: int
    steps_why: str  # "as asked", or why the studio lowered them (a busy queue, a Space's cap, the Queue tab)
    width: int
    height: int
    frames: int
    fps: int
    seconds: float  # rendering this budget (denoise, decode, write)
    elapsed: float  # since the call began, waiting in the queue included
    timings: dict
    loras: list
    notes: list
    extends: str | None


class Compared(TypedDict):
    seed: int
    model: str
    budgets: list  # [{"steps", "seconds", "history_id"}, ...] in the order of the files
    notes: list


class HistoryEntry(TypedDict):
    history_id: str
    created_at: str
    status: str
    prompt: str
    mode: str
    model: str
    steps: int
    seed: int
    frames: int
    starred: bool
    extends: str | None


# ---- sessions and files ---------------------------------------------------------------------------
class Caller:
    """Who called: in Space mode a session id derived from the client's session hash (stable for one
    ``Client``; a new Client is a new visitor, as a new browser tab is), else None (a local studio)."""

    def __init__(self, studio):
        self.studio = studio
        self._salt = secrets.token_bytes(16)  # so the id cannot be worked out from the hash by a third party

    def session(self, request: gr.Request | None) -> str | None:
        if not self.studio.settings.space:
            return None
        key = getattr(request, "session_hash", None) or secrets.token_hex(8)
        return hashlib.sha256(self._salt + str(key).encode()).hexdigest()[:32]

    def owns(self, row: dict | None, sid: str | None) -> bool:
        return bool(row) and (not self.studio.settings.space or (sid is not None and row.get("session") == sid))


def uploaded(value, what: str) -> str | None:
    """The path of a file the client uploaded (``handle_file``), refused unless it lies in Gradio's upload
    folder: a caller names no other file on this machine."""
    if value in (None, "", {}):
        return None
    path = value.get("path") if isinstance(value, dict) else None
    safe = guard.servable(path, [Path(get_upload_folder())]) if isinstance(path, str) else None
    if safe is None:
        raise InvalidRequest({what: "must be a file sent with gradio_client's handle_file(path)"})
    return str(safe)


def file_out(studio, path) -> FileData:
    """A render's file for the client to download; only files inside the studio's folders leave."""
    safe = guard.servable(path, guard.roots(studio))
    if safe is None:
        raise StudioError(guard.NOT_SERVED.lstrip("⚠ "))
    return {"path": str(safe), "meta": {"_type": "gradio.FileData"}}


def parse_loras(items) -> tuple[tuple[str, float], ...]:
    """``["name:0.8", "other"]`` -> ((name, 0.8), (other, 1.0)). Names of files in the studio's loras folder
    only: the API takes no paths."""
    out = []
    for item in items or []:
        name, _, strength = str(item).rpartition(":") if ":" in str(item) else (str(item), "", "1")
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise InvalidRequest({"loras": f"{str(item)[:60]!r}: give a LoRA file's name (see /models), not a path"})
        try:
            out.append((name, float(strength)))
        except ValueError:
            raise InvalidRequest({"loras": f"{str(item)[:60]!r}: the strength after ':' must be a number"}) from None
    return tuple(out)


# ---- results as JSON ---------------------------------------------------------------------------------
def steps_why(row: dict, notes: list) -> str:
    asked = row.get("requested_steps") or row.get("steps")
    if not row.get("capped") and asked == row.get("steps"):
        return "as asked"
    reason = next((n for n in notes if "cap" in n.lower() and "->" in n), None)
    return f"lowered from {asked}: " + (reason or "the studio's queue changed this job's steps")


def rendered(studio, r: Result, elapsed: float) -> Rendered:
    row = studio.history.get(r.record_id) or {}
    req = r.request or {}
    world = off_world(studio, req, r.frames) if r.role != "preview" else None  # the embedded model's limits
    return {
        "history_id": r.record_id, "role": r.role, "model": req.get("model") or "", "mode": req.get("mode") or "",
        "prompt": req.get("prompt") or "", "seed": int(req.get("seed") or 0), "steps": int(r.steps),
        "steps_asked": int(row.get("requested_steps") or r.steps), "steps_why": steps_why(row, list(r.notes)),
        "width": int(req.get("width") or 0), "height": int(req.get("height") or 0),
        "frames": int(row.get("frames") or req.get("frames") or 0), "fps": int(req.get("fps") or 0),
        "seconds": fmt.render_seconds(r.timings) or 0.0, "elapsed": round(elapsed, 3),
        "timings": dict(r.timings), "loras": [list(x) for x in req.get("loras") or ()], "notes": list(r.notes) + ([world] if world else []),
        "extends": req.get("extends"),
    }


def results(events, plan: Plan, started: float) -> Iterator[tuple[Result, float]]:
    """The finished budgets of a queued job, with the seconds since the call; a failure or a cancellation
    raises gr.Error with its message (the client sees it, with no traceback)."""
    for up in updates(events, plan, None, started):
        if up.kind == "result":
            yield up.result, up.elapsed
        elif up.kind in ("failed", "cancelled"):
            raise gr.Error(up.text, print_exception=False)


def api_error(exc: StudioError) -> gr.Error:
    """A StudioError as the client sees it: the friendly message, no traceback."""
    return gr.Error(friendly_error(exc), print_exception=False)


def history_entry(row: dict) -> HistoryEntry:
    req = row.get("request") or {}
    return {"history_id": row["id"], "created_at": row.get("created_at") or "", "status": row.get("status") or "",
            "prompt": row.get("prompt") or req.get("prompt") or "", "mode": row.get("mode") or "",
            "model": row.get("model") or "", "steps": int(row.get("steps") or 0), "seed": int(row.get("seed") or 0),
            "frames": int(row.get("frames") or 0), "starred": bool(row.get("accepted")),
            "extends": row.get("parent_id") or req.get("extends")}
