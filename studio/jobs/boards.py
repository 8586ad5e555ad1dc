"""Storyboards at work: preview every shot cheaply, render the approved ones as finals, export.

A stage runs as a *batch* recorded in the database. A shot whose render for that
stage is already done (its history row is ``ok``) is skipped, so a batch stopped by
a crash, a restart or a cancel carries on where it stopped when run again. Each shot is a
``shot`` job (job_kinds.ShotJob) pinned to the shot's revision: a shot whose job for that
stage and revision is queued or running is not queued again (two tabs, ``board run`` twice,
a run after a crash); the stream follows that job instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import continuity
from ..engine import media
from ..store.boards import STAGES, Board, BoardStore, Shot
from .shot_rules import board_store, shot_loras
from ..errors import InvalidRequest, StudioError
from .dispatcher import JobStream
from .kinds import ShotJob
from ..engine.render import Cancelled, Failed, RenderRequest, Result


@dataclass
class ShotEvent:
    """An engine event (progress, result, ...) for one shot of a batch."""

    shot_id: str
    index: int  # position of the shot among those this batch renders
    total: int
    event: object
    kind: str = "shot"


@dataclass
class BatchDone:
    batch_id: str
    stage: str
    rendered: list[str]
    skipped: list[str]
    failed: dict[str, str]
    cancelled: bool = False
    kind: str = "batch_done"


def portable(value, base: Path | None):
    """A file path as an export writes it: relative to ``base`` (the exported file's folder), else its name."""
    if not value:
        return value
    path = Path(str(value))
    if base is not None and path.is_absolute():
        try:
            return os.path.relpath(path.resolve(), base).replace(os.sep, "/")
        except ValueError:  # another drive (Windows): no relative path exists
            return path.name
    return path.as_posix() if not path.is_absolute() else path.name


class BoardRunner:
    def __init__(self, studio, boards: BoardStore | None = None):
        self.studio = studio
        self.boards = boards or board_store(studio.history)

    # ---- running -------------------------------------------------------------------
    def shot_request(self, board: Board, shot: Shot) -> RenderRequest:
        return RenderRequest(prompt=shot.prompt, mode=shot.mode, negative_prompt=shot.negative_prompt,
                             image=shot.image, video=shot.video, seed=shot.seed, frames=shot.frames,
                             model=board.model, loras=tuple((f, s) for f, s in shot.loras))

    def _done(self, board: Board, shot: Shot, stage: str, history=None) -> bool:
        history = history or self.studio.history
        row = continuity.render_row(history, shot, stage)
        return bool(row) and not continuity.is_stale(history, board, shot, stage)

    def pending(self, board: Board, stage: str, history=None) -> tuple[list[Shot], list[Shot]]:
        """(shots this stage would render, in board order; shots already done). Finals only take approved shots.
        A continuing shot is redone when the shot it continues is (its context changes). ``history``: anything
        with HistoryStore's ``get`` (a board's rows read at once); the studio's history by default."""
        candidates = board.shots if stage == "preview" else [s for s in board.shots if s.approved]
        todo: list[Shot] = []
        redone: set[str] = set()
        for s in candidates:
            prev = continuity.previous(board, s)
            if not self._done(board, s, stage, history) or (prev is not None and prev.id in redone):
                todo.append(s)
                redone.add(s.id)
        return todo, [s for s in candidates if s.id not in redone]

    def run(self, board_id: str, stage: str, cancel: threading.Event | None = None,
            shot_ids: list[str] | None = None, session: str | None = None) -> Iterator[ShotEvent | BatchDone]:
        """Queue a stage's shots as render jobs and yield each shot's events as they happen; then BatchDone.

        Every shot is a job in the studio's queue at once, so a farm renders them side by side; a shot that
        continues another waits for that one's job. The dispatcher records each shot's render on the board, so
        jobs a restart finds queued still land on it."""
        if stage not in STAGES:
            raise StudioError(f"Stage must be one of {', '.join(STAGES)}.")
        board = self.boards.get(board_id, session)
        todo, done = self.pending(board, stage)
        if shot_ids is not None:  # e.g. "re-preview this shot": render exactly these
            todo = sorted((board.shot(sid) for sid in shot_ids), key=lambda s: s.position)
            done = []
        if stage == "final" and not todo and not done:
            raise StudioError("No approved shots: approve the shots you want as finals first.")
        policy = board.preview_policy if stage == "preview" else board.final_policy
        self.studio.policies.get(policy)  # a clear error before anything runs
        cancel = cancel or threading.Event()
        batch = self.boards.start_batch(board.id, stage)
        rendered, failed, status = [], {}, "running"
        try:
            stream = JobStream(self.studio.dispatcher(), cancel, cancel_on_close=True)
            try:
                shots = self._queue_shots(stream, board, stage, todo, policy, session, batch)
            except BaseException:
                stream.abandon()  # the shots queued before the error leave the queue
                raise
            for jid, event in stream:
                i, shot = shots[jid]
                if isinstance(event, Result):
                    rendered.append(shot.id)
                elif isinstance(event, Failed):
                    failed[shot.id] = event.message
                elif isinstance(event, Cancelled) and not cancel.is_set():  # that shot alone, from the Queue tab
                    failed[shot.id] = "Cancelled in the render queue."
                yield ShotEvent(shot.id, i, len(todo), event)
            status = "cancelled" if cancel.is_set() else "done"
        finally:
            # A consumer that stops early (closed generator) leaves the batch "interrupted": resumable.
            self.boards.finish_batch(batch, "interrupted" if status == "running" else status)
        yield BatchDone(batch, stage, rendered, [s.id for s in done], failed, cancelled=status == "cancelled")

    def _queue_shots(self, stream, board: Board, stage: str, todo: list[Shot], policy: str,
                     session: str | None, batch: str | None = None) -> dict[str, tuple[int, Shot]]:
        """Queue one job per shot, in board order; job id -> (index in the batch, shot). A shot that continues
        another waits for that shot's job at its current revision (queued here, or already queued or running)."""
        shots, job_of = {}, {}
        for i, shot in enumerate(todo):
            prev = continuity.previous(board, shot)
            job = ShotJob({"request": self.shot_request(board, shot).to_dict(), "policy": policy,
                           "board": {"board": board.id, "name": board.name, "shot": shot.id, "stage": stage,
                                     "batch": batch, "revision": shot.revision}})
            after = job_of.get(prev.id) if shot.continues and prev is not None else None
            jid = stream.submit(job, source="storyboard", session=session, after=after)
            shots[jid], job_of[shot.id] = (i, shot), jid
        return shots

    # ---- exports --------------------------------------------------------------------
    def _video_for(self, shot: Shot, stage: str | None) -> str | None:
        stages = [stage] if stage else ["final", "preview"]
        for st in stages:
            rid = getattr(shot, f"{st}_id")
            row = self.studio.history.get(rid) if rid else None
            if row and row["status"] == "ok" and row.get("video_path") and Path(row["video_path"]).is_file():
                return row["video_path"]
        return None

    def export_contact_sheet(self, board_id: str, path: str | Path, stage: str | None = None) -> Path:
        """One labelled row of sampled frames per shot (the final if there is one, else the preview)."""
        board = self.boards.get(board_id)
        rows = []
        for shot in board.shots:
            video = self._video_for(shot, stage)
            if video is None:
                continue
            frames, _ = media.read_video(video)
            tag = "final" if video == self._video_for(shot, "final") else "preview"
            rows.append((f"{shot.position + 1}. [{tag}] {shot.prompt}  (seed {shot.seed})", frames))
        if not rows:
            raise StudioError("Nothing to put on a contact sheet yet: preview the board first.")
        return media.contact_sheet(rows, path)

    def export_finals(self, board_id: str, path: str | Path) -> Path:
        """The approved shots' finals joined in board order into one mp4."""
        board = self.boards.get(board_id)
        approved = [s for s in board.shots if s.approved]
        missing = [s.position + 1 for s in approved if self._video_for(s, "final") is None]
        if not approved or missing:
            raise StudioError("Render finals first: " + (f"shots {missing} have none." if missing else "no approved shots."))
        videos = [self._video_for(s, "final") for s in approved]
        fps = self.studio.history.get(approved[0].final_id)["fps"] or 16
        skip = continuity.export_skips(self.studio.history, board, approved)
        return media.join_videos(videos, path, fps, {"board": board.name, "shots": len(videos)}, skip)

    def export_json(self, board_id: str, path: str | Path | None = None) -> dict:
        """The board with every parameter and the budgets actually used (policy, requested, capped). Files are named
        relative to the exported file's folder (with no ``path``: by name), never by this machine's absolute paths."""
        board = self.boards.get(board_id)
        base = Path(path).resolve().parent if path is not None else None
        data = {"name": board.name, "model": board.model, "preview_policy": board.preview_policy,
                "final_policy": board.final_policy, "shots": []}
        for shot in board.shots:
            entry = {k: getattr(shot, k) for k in ("mode", "prompt", "negative_prompt", "seed", "image", "video",
                                                  "frames", "approved", "continues", "loras")}
            entry.update({k: portable(entry[k], base) for k in ("image", "video")})
            for stage in STAGES:
                rid = getattr(shot, f"{stage}_id")
                row = self.studio.history.get(rid) if rid else None
                if row:
                    entry[stage] = {k: row.get(k) for k in ("id", "status", "model", "steps", "requested_steps",
                                                            "policy", "capped", "seed", "height", "width", "frames",
                                                            "fps", "video_path", "timings")}
                    entry[stage]["video_path"] = portable(row.get("video_path"), base)
            data["shots"].append(entry)
        if path is not None:
            Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        return data

    # ---- board files (headless) ---------------------------------------------------
    def import_file(self, path: str | Path, session: str | None = None) -> Board:
        """Load a board JSON file into the database. The same file maps to the same board, so runs resume:
        shots whose render parameters are unchanged keep their finished renders."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StudioError(f"Board file not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StudioError(f"{path.name} is not valid JSON: {exc}") from None
        return self.import_data(data, path, session)

    def import_data(self, data, path: str | Path, session: str | None = None) -> Board:
        """``import_file`` for a board already read (e.g. sent by the CLI to the owning studio): ``path`` is the
        board file's, which names the board (same file, same board) and anchors relative input paths."""
        path = Path(path)
        if not isinstance(data, dict) or not isinstance(data.get("shots"), list) or not data["shots"]:
            raise StudioError(f"{path.name}: expected an object with a non-empty \"shots\" list.")
        problems, shots = [], []
        for i, raw in enumerate(data["shots"], 1):
            if not isinstance(raw, dict) or not isinstance(raw.get("prompt"), str):
                problems.append(f"shot {i}: needs a \"prompt\" string")
                continue
            shot = {k: raw.get(k) for k in ("mode", "prompt", "negative_prompt", "seed", "image", "video", "frames")}
            shot["mode"] = shot["mode"] or "t2v"
            shot["negative_prompt"] = shot["negative_prompt"] or ""
            for key in ("image", "video"):
                if shot[key]:
                    p = Path(shot[key])
                    p = p if p.is_absolute() else (path.parent / p)
                    if not p.is_file():
                        problems.append(f"shot {i}: {key} file not found: {shot[key]}")
                    shot[key] = str(p.resolve())
            shot["approved"] = bool(raw.get("approved", True))
            shot["continues"] = bool(raw.get("continues", False))
            try:
                shot["loras"] = shot_loras(raw.get("loras"))
            except InvalidRequest as exc:
                problems.append(f"shot {i}: loras: {exc.errors['loras']}")
            shots.append(shot)
        if problems:
            raise StudioError(f"{path.name}: " + "; ".join(problems))
        board_id = "file-" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        if not self.boards.exists(board_id):
            self.boards.create(data.get("name") or path.stem, model=data.get("model"), board_id=board_id,
                               preview_policy=data.get("preview_policy", "preview"),
                               final_policy=data.get("final_policy", "final"), session=session)
        else:
            self.boards.update(board_id, name=data.get("name") or path.stem, model=data.get("model"),
                               preview_policy=data.get("preview_policy", "preview"),
                               final_policy=data.get("final_policy", "final"))
        existing = self.boards.get(board_id).shots
        for i, shot in enumerate(shots):
            approved = shot.pop("approved")
            if i < len(existing):
                old = existing[i]
                if shot["seed"] is None:
                    shot["seed"] = old.seed  # keep the seed a previous run picked
                self.boards.update_shot(old.id, **shot, approved=approved)
            else:
                self.boards.add_shot(board_id, **shot, approved=approved)
        for extra in existing[len(shots):]:
            self.boards.delete_shot(extra.id)
        return self.boards.get(board_id)

