"""A render's settings in its files, and back: the metadata written into each mp4 and PNG thumbnail, and the
request restored from such a file (Create's "Restore from a file", ``python -m studio render --from FILE``).

The metadata is the request (``RenderRequest.to_dict()``) plus the history id, the plan and the budget's steps.
It names input files and LoRAs by file name only, never by the server's paths; a restore finds the inputs again
through the history row of that id, when this studio still has it.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Callable

from . import lora, media
from ..errors import MediaError, NoStudioMetadata
from .request import RenderRequest

MARK = "AnyFlow Studio"  # the "studio" field of every file the studio writes
PNG_KEY = "studio"  # the PNG text chunk that holds the JSON
RESTORED = ("prompt", "negative_prompt", "mode", "seed", "steps", "model", "height", "width", "frames", "fps",
            "guidance_scale", "context_frames", "loras")


def file_metadata(rid: str, plan: str, req: RenderRequest, steps: int) -> dict:
    """What a render's mp4 and thumbnail carry: the request, with inputs and LoRAs named by file name only."""
    named = {k: Path(v).name for k in ("image", "video") if (v := getattr(req, k))}
    return {"studio": MARK, "id": rid, "plan": plan, **req.to_dict(), **named, "loras": lora.public(req.loras),
            "steps": steps}


def read(path: str | Path) -> dict:
    """The studio metadata of an mp4 or PNG; NoStudioMetadata when the file has none."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"File not found: {path}")
    if path.suffix.lower() == ".png":
        meta = _png_metadata(path)
    else:
        try:
            meta = media.read_metadata(path)
        except MediaError:
            meta = {}
    if not isinstance(meta, dict) or meta.get("studio") != MARK or not meta.get("prompt"):
        raise NoStudioMetadata(f"{path.name} has no AnyFlow Studio metadata: only the mp4s and PNG thumbnails the "
                               "studio writes can be restored.")
    return meta


def _png_metadata(path: Path) -> dict:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            raw = getattr(img, "text", {}).get(PNG_KEY)
    except (UnidentifiedImageError, OSError):
        return {}
    try:
        return json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}


def restore(path: str | Path, history=None, overrides: dict | None = None, *,
            accept: Callable[[str], Path | None] | None = None,
            session: str | None = None) -> tuple[RenderRequest, list[str]]:
    """The request a studio file was rendered with, then ``overrides`` (fields given alongside) on top.
    Returns (request, notes): the notes say what could not come back (an input file that is gone).

    A server passes ``accept`` (an input path -> its checked Path, or None): then only an input its history
    row recorded and ``accept`` allows comes back, never a path the file itself names. With ``session``
    (Space mode) only that session's history row is used."""
    meta = read(path)
    row = history.get(meta["id"]) if history is not None and meta.get("id") else None
    if row is not None and session is not None and row.get("session") != session:
        row = None  # another visitor's render: its inputs are not this session's to have
    recorded = (row or {}).get("request") or {}
    data = {k: meta[k] for k in RESTORED if k in meta}
    # the history row knows where a LoRA given by path was; the file itself only names it
    loras = recorded.get("loras") if lora.public(recorded.get("loras")) == data.get("loras") else data.get("loras")
    data["loras"] = tuple((str(f), float(s)) for f, s in loras or ())
    notes = []
    for kind, label in (("image", "first frame"), ("video", "clip to continue")):
        if meta.get(kind):
            found = _input_file(meta, recorded, kind, accept)
            data[kind] = found
            if found is None and kind not in (overrides or {}):
                notes.append(f"The {label} ({meta[kind]}) is not on this machine any more: give it again.")
    data.update(overrides or {})
    names = {f.name for f in fields(RenderRequest)}
    return RenderRequest(**{k: v for k, v in data.items() if k in names}), notes


def _input_file(meta: dict, recorded: dict, kind: str, accept=None) -> str | None:
    """The input file of the render that wrote ``meta``, found through its history row's request (or, on the
    local command line only, a path in files written before inputs were stored by name)."""
    if accept is not None:
        found = accept(recorded.get(kind))
        return str(found) if found else None
    candidates = [recorded.get(kind), meta.get(kind)]
    return next((str(p) for p in candidates if p and Path(p).is_absolute() and Path(p).is_file()), None)
