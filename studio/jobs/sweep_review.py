"""Blind review of a sweep: its rendered clips one at a time, in a random order drawn when the sweep was made, with
nothing that tells the budget, the model or the time. A clip is served as a copy of its video with no metadata,
under a random name (the render's own file carries its settings in the mp4's metadata and its id in its name).

What the review view and the API get for a clip: ``{"item", "index", "total", "reviewed", "verdict"}`` and the
blind copy's path; the budget appears only in the report (sweep_report.py), never here.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from ..engine import media
from . import sweep_jobs
from ..errors import StudioError
from ..store.sweeps import SweepStore

VERDICTS = {"accept": True, "reject": False, "clear": None}


def queue(studio, sid: str) -> list[dict]:
    """The sweep's rendered items in review order (each: its item id and verdict only)."""
    store = SweepStore(studio.history)
    store.get(sid)  # UnknownSweep
    items = [i for i in store.items(sid) if i.get("render_status") == "ok" and i.get("video_path")]
    items.sort(key=lambda i: i["review_rank"])
    return [{"item": i["id"], "verdict": _verdict(i.get("review"))} for i in items]


def _verdict(review) -> str | None:
    return {1: "accepted", 0: "rejected"}.get(review)


def clip(studio, sid: str, index: int) -> dict:
    """The clip at ``index`` (wrapped into range) of the review order: {"item", "index", "total", "reviewed",
    "verdict", "video"}; ``video`` is the blind copy. StudioError when nothing is rendered yet."""
    order = queue(studio, sid)
    if not order:
        raise StudioError("nothing to review yet: no clip of this sweep has rendered")
    index = int(index) % len(order)
    entry = order[index]
    return {"item": entry["item"], "index": index, "total": len(order),
            "reviewed": sum(1 for e in order if e["verdict"] is not None), "verdict": entry["verdict"],
            "video": blind_copy(studio, sid, entry["item"])}


def blind_copy(studio, sid: str, item_id: str) -> str:
    """The item's video without metadata under a random name (made on first use)."""
    store = SweepStore(studio.history)
    item = store.item(item_id)
    if item is None or item["sweep_id"] != sid:
        raise StudioError(f"no clip {str(item_id)[:60]!r} in sweep {sid}")
    if item.get("blind") and Path(item["blind"]).is_file():
        return item["blind"]
    row = studio.history.get(item["render_id"]) if item.get("render_id") else None
    if not row or not row.get("video_path"):
        raise StudioError("this clip's render is gone from the history")
    frames, fps = media.read_video(row["video_path"])
    path = sweep_jobs.sweep_folder(studio, sid) / "blind" / f"{secrets.token_hex(8)}.mp4"
    media.write_video(frames, path, max(1, round(fps)), metadata=None)
    store.set_blind(item_id, str(path))
    return str(path)


def review(studio, sid: str, item_id: str, verdict: str) -> dict:
    """Record "accept", "reject" (or "clear") for a clip of the sweep; its queue entry afterwards."""
    if verdict not in VERDICTS:
        raise StudioError(f"a verdict is accept, reject or clear, not {str(verdict)[:20]!r}")
    store = SweepStore(studio.history)
    item = store.item(item_id)
    if item is None or item["sweep_id"] != sid or not item.get("render_id"):
        raise StudioError(f"no rendered clip {str(item_id)[:60]!r} in sweep {sid}")
    store.set_review(item_id, VERDICTS[verdict])
    return {"item": item_id, "verdict": _verdict(None if VERDICTS[verdict] is None else int(VERDICTS[verdict]))}
