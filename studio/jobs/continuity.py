"""Storyboard continuity: a shot that continues the previous shot starts where that shot's render ends.

A continuing shot's context is the previous shot's render at the same stage (preview from preview, final from
final): its last frames for a V2V shot (a T2V shot that continues is rendered as V2V), its last frame for an I2V
shot. Its render records that render as its parent (``extends`` -> ``parent_id``), so staleness is derived, never
stored: the render is stale when the previous shot's render at that stage is no longer its parent (the previous
shot was edited, re-rolled or rendered again). The joined export drops a continuing shot's leading context frames,
which repeat the end of the shot before it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..engine import media
from ..store.boards import Board, Shot
from ..errors import StudioError
from ..engine.request import RenderRequest


def previous(board: Board, shot: Shot) -> Shot | None:
    """The shot this one continues, or None when it does not continue one."""
    if not shot.continues:
        return None
    index = shot.position  # the board's shots are in position order, 0..n-1: no scan, unless they are not
    if not (0 <= index < len(board.shots) and board.shots[index].id == shot.id):
        index = [s.id for s in board.shots].index(shot.id)
    return board.shots[index - 1] if index > 0 else None


def rendered_mode(board: Board, shot: Shot) -> str:
    """The mode the shot renders in: a T2V shot that continues the one before is a V2V render."""
    return "v2v" if shot.mode == "t2v" and previous(board, shot) is not None else shot.mode


def mode_text(board: Board, shot: Shot, names: dict) -> str:
    """The board table's mode cell: the mode it renders in, and the shot it continues ("V2V ↪ 2")."""
    prev = previous(board, shot)
    mode = names.get(rendered_mode(board, shot), shot.mode)
    return f"{mode} ↪ {prev.position + 1}" if prev is not None else mode


def render_row(history, shot: Shot, stage: str) -> dict | None:
    """The shot's finished render at ``stage`` (its history row), or None."""
    rid = getattr(shot, f"{stage}_id")
    row = history.get(rid) if rid else None
    ok = row and row["status"] == "ok" and row.get("video_path") and Path(row["video_path"]).is_file()
    return row if ok else None


def is_stale(history, board: Board, shot: Shot, stage: str) -> bool:
    """A continuing shot's render at ``stage`` was made from another render of the previous shot than its current one."""
    prev = previous(board, shot)
    row = render_row(history, shot, stage) if prev else None
    return bool(row) and row.get("parent_id") != getattr(prev, f"{stage}_id")


def stale_stages(history, board: Board, shot: Shot) -> list[str]:
    return [stage for stage in ("preview", "final") if is_stale(history, board, shot, stage)]


def continuing_request(engine, board: Board, shot: Shot, stage: str, req: RenderRequest, frames_dir: Path,
                       failed: dict | None = None) -> RenderRequest:
    """``req`` (the shot's own request) with the previous shot's render as its context; StudioError says why not."""
    prev = previous(board, shot)
    row = render_row(engine.history, prev, stage)
    if row is None or (failed and prev.id in failed):
        why = f"it failed: {failed[prev.id]}" if failed and prev.id in failed else f"it has no {stage} yet"
        if stage == "final" and not prev.approved:
            why = "it is not approved, so it has no final"
        raise StudioError(f"Shot {shot.position + 1} continues shot {prev.position + 1}, but {why}.")
    if req.mode == "i2v":
        last = media.read_video(row["video_path"])[0][-1]
        image = media.write_png(last, Path(frames_dir) / f"{row['id']}-last.png")
        return replace(req, image=str(image), video=None, extends=row["id"])
    v2v = replace(req, mode="v2v", image=None, video=row["video_path"], extends=row["id"], context_from="end")
    context = engine.context_frames_for(v2v, int(row["frames"] or 0))
    if context < 1:
        raise StudioError(f"Shot {shot.position + 1}: shot {prev.position + 1}'s render is too short to continue from.")
    return replace(v2v, context_frames=context)


def export_skips(history, board: Board, shots: list[Shot], stage: str = "final") -> list[int]:
    """For a joined export of ``shots`` (in order): how many leading frames of each to leave out, because they
    repeat the end of the shot just before it in the export."""
    skips = []
    for i, shot in enumerate(shots):
        prev = previous(board, shot)
        row = render_row(history, shot, stage)
        follows = prev is not None and i > 0 and shots[i - 1].id == prev.id
        skips.append(leading_context(row) if follows and row else 0)
    return skips


def leading_context(row: dict) -> int:
    """How many of a continuing render's first frames repeat the previous shot's last ones."""
    req = row.get("request") or {}
    if not req.get("extends"):
        return 0
    if req.get("mode") == "i2v":
        return 1
    return int(req.get("context_frames") or 0) if req.get("context_from") == "end" else 0
