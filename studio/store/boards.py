"""BoardStore: storyboards (ordered shots) and their render batches, in the studio database.

Boards share ``history.db`` with the render history (one file, one set of numbered
migrations in ``history.py``) and its connection lock. A shot points at the history
rows of its latest preview and final; editing what a shot renders clears them, so
nothing stale is ever shown as that shot's result.

A shot carries a ``revision`` that every edit of what it renders bumps (a board's new model or policy bumps all of
its shots'). A shot's render job pins the revision it was queued for (job_kinds.ShotJob, key
``shot:ID:STAGE:REVISION``): editing or deleting the shot cancels its waiting jobs, and a render whose revision is
no longer the shot's is never placed on it (``place_render``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from typing import Protocol

from . import liveness
from ..errors import StudioError
from .history import HistoryStore, insert_with_fresh_id, new_id, utc_now
from .queue import QueueStore

# Fields that change what a shot renders: editing any of them invalidates its renders.
RENDER_FIELDS = ("mode", "prompt", "negative_prompt", "seed", "image", "video", "frames", "continues", "loras")
STAGES = ("preview", "final")
_SET_RENDER = {  # literal statements (the stage picks one)
    "preview": "UPDATE shots SET preview_id = ?, updated_at = ? WHERE id = ?",
    "final": "UPDATE shots SET final_id = ?, updated_at = ? WHERE id = ?",
}
_RESET_STAGE = {  # literal statements: no SQL is built from values
    "preview": "UPDATE shots SET preview_id = NULL WHERE board_id = ?",
    "final": "UPDATE shots SET final_id = NULL WHERE board_id = ?",
}


@dataclass
class Shot:
    id: str
    board_id: str
    position: int
    prompt: str
    mode: str = "t2v"
    negative_prompt: str = ""
    seed: int | None = None
    image: str | None = None
    video: str | None = None
    frames: int | None = None
    approved: bool = False
    preview_id: str | None = None
    final_id: str | None = None
    updated_at: str | None = None
    continues: bool = False  # its context is the previous shot's render (see continuity.py)
    loras: list = field(default_factory=list)  # [[file, strength], ...], as a request's ``loras``
    revision: int = 0  # bumped by every edit of what it renders

    def to_dict(self) -> dict:
        return asdict(self)


def job_key(shot_id: str, stage: str | None = None, revision: int | None = None) -> str:
    """The queue key of a shot's render job (one queued or running per shot, stage and revision); with no stage,
    the prefix every job of that shot's keys start with."""
    if stage is None:
        return f"shot:{shot_id}:"
    return f"shot:{shot_id}:{stage}:{int(revision or 0)}"


@dataclass
class Board:
    id: str
    name: str
    model: str | None = None
    preview_policy: str = "preview"
    final_policy: str = "final"
    session: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    shots: list[Shot] = field(default_factory=list)

    def shot(self, shot_id: str) -> Shot:
        for s in self.shots:
            if s.id == shot_id:
                return s
        raise StudioError(f"No shot {shot_id} on board '{self.name}'.")

    def to_dict(self) -> dict:
        return asdict(self)


def _shot(row: dict) -> Shot:
    row = dict(row)
    row["approved"] = bool(row.get("approved"))
    row["continues"] = bool(row.get("continues"))
    row["loras"] = json.loads(row.get("loras") or "[]")
    return Shot(**row)


class ShotRules(Protocol):
    """What a shot may hold. The store keeps shots; what a mode, a seed or a LoRA list may be is decided by the
    layers above it (the models' modes, the engine's seed range and LoRA checks): ``jobs.shot_rules`` gives the
    studio's rules, and every ``BoardStore`` is made with them."""

    def mode(self, value) -> str:
        """``value`` as a shot's mode; StudioError when it is none."""

    def new_seed(self) -> int:
        """A fresh random seed."""

    def loras(self, value) -> list[list]:
        """A shot's LoRAs as stored and compared: [[file, strength], ...]; InvalidRequest for a bad list."""


class BoardStore:
    def __init__(self, history: HistoryStore, rules: ShotRules):
        self.db = history.db
        self._lock = history.lock
        self.rules = rules
        self.history = history
        self._queue = QueueStore(history)

    def _cancel_jobs(self, shot_ids, why: str) -> None:
        """The waiting render jobs of these shots leave the queue, saying why (their renders would be stale)."""
        for sid in shot_ids:
            self._queue.cancel_keyed(job_key(sid), why)

    def mark_interrupted(self, spared=lambda claimer: False) -> int:
        """Crash recovery (only the data folder's owner): a batch still "running" belongs to a process that
        stopped, unless ``spared(its claimed_by)`` says that process lives; "interrupted", it can be resumed.
        Returns how many were marked."""
        return self.history.mark_table_interrupted("batches", {"status": "interrupted"}, spared)

    def running_claims(self) -> dict[str, str | None]:
        """The batches still "running": id -> the process that started them."""
        with self._lock:
            return dict(self.db.execute("SELECT id, claimed_by FROM batches WHERE status = 'running'").fetchall())

    # ---- boards ------------------------------------------------------------------
    def create(self, name: str, *, model: str | None = None, preview_policy: str = "preview",
               final_policy: str = "final", session: str | None = None, board_id: str | None = None) -> Board:
        name = (name or "").strip() or "Untitled board"
        now = utc_now()
        row = {"id": board_id or new_id(), "name": name[:200], "model": model, "preview_policy": preview_policy,
               "final_policy": final_policy, "session": session, "created_at": now, "updated_at": now}
        with self._lock, self.db.conn:
            self.db["boards"].insert(row)
        return self.get(row["id"])

    def exists(self, board_id: str) -> bool:
        with self._lock:
            return bool(list(self.db["boards"].rows_where("id = ?", [board_id])))

    def get(self, board_id: str, session: str | None = None) -> Board:
        with self._lock:
            rows = list(self.db["boards"].rows_where("id = ?", [board_id]))
            if not rows or (session is not None and rows[0]["session"] != session):
                raise StudioError(f"No board with id {board_id}.")
            shots = [_shot(r) for r in self.db["shots"].rows_where("board_id = ?", [board_id], order_by="position")]
        return Board(**rows[0], shots=shots)

    def list(self, session: str | None = None) -> list[dict]:
        where, args = ("session = ?", [session]) if session is not None else (None, None)
        with self._lock:
            boards = list(self.db["boards"].rows_where(where, args, order_by="updated_at desc"))
            for b in boards:
                b["shots"] = self.db.execute("SELECT count(*) FROM shots WHERE board_id = ?", [b["id"]]).fetchone()[0]
        return boards

    def update(self, board_id: str, **changes) -> Board:
        allowed = {"name", "model", "preview_policy", "final_policy"}
        bad = set(changes) - allowed
        if bad:
            raise StudioError(f"Boards have no field(s) {', '.join(sorted(bad))}.")
        board = self.get(board_id)
        with self._lock, self.db.conn:
            self.db["boards"].update(board_id, dict(changes, updated_at=utc_now()))
            # Renders made under the old setting no longer count: a new model invalidates every render,
            # a new preview / final policy that stage's renders (so a resumed batch redoes them).
            changed = False
            if "model" in changes and changes["model"] != board.model:
                self.db.execute("UPDATE shots SET preview_id = NULL, final_id = NULL WHERE board_id = ?", [board_id])
                changed = True
            for stage, reset in _RESET_STAGE.items():
                key = f"{stage}_policy"
                if key in changes and changes[key] != getattr(board, key):
                    self.db.execute(reset, [board_id])
                    changed = True
            if changed:  # what every shot renders changed: renders queued before no longer fit
                self.db.execute("UPDATE shots SET revision = revision + 1 WHERE board_id = ?", [board_id])
        if changed:
            self._cancel_jobs([s.id for s in board.shots], f"Board '{board.name}' changed while this render waited.")
        return self.get(board_id)

    def delete(self, board_id: str) -> None:
        with self._lock:
            shots = [r[0] for r in self.db.execute("SELECT id FROM shots WHERE board_id = ?", [board_id]).fetchall()]
        self._cancel_jobs(shots, "Its board was deleted while this render waited.")
        with self._lock, self.db.conn:
            self.db.execute("DELETE FROM shots WHERE board_id = ?", [board_id])
            self.db.execute("DELETE FROM batches WHERE board_id = ?", [board_id])
            self.db.execute("DELETE FROM boards WHERE id = ?", [board_id])

    def purge(self, older_than: str) -> int:
        """Delete boards (with their shots and batches) last changed before ``older_than`` (ISO time), except
        those with a batch running. Their renders are History's: its own purge removes them. Returns the count."""
        with self._lock:
            ids = [r[0] for r in self.db.execute(
                "SELECT id FROM boards WHERE updated_at < ? AND id NOT IN "
                "(SELECT board_id FROM batches WHERE status = 'running')", [older_than]).fetchall()]
        for board_id in ids:
            self.delete(board_id)
        return len(ids)

    def input_files(self) -> set[str]:
        """Every image and video a shot points at (the Space janitor keeps those inputs)."""
        with self._lock:
            rows = self.db.execute("SELECT image, video FROM shots").fetchall()
        return {path for row in rows for path in row if path}

    def _touch(self, board_id: str) -> None:
        self.db["boards"].update(board_id, {"updated_at": utc_now()})

    # ---- shots -------------------------------------------------------------------
    def add_shot(self, board_id: str, prompt: str, *, mode: str = "t2v", negative_prompt: str = "",
                 seed: int | None = None, image: str | None = None, video: str | None = None,
                 frames: int | None = None, position: int | None = None, approved: bool = False,
                 continues: bool = False, loras=()) -> Shot:
        mode = self.rules.mode(mode)
        seed = self.rules.new_seed() if seed is None else int(seed)
        row = {"id": None, "board_id": board_id, "position": position, "mode": mode, "prompt": prompt,
               "negative_prompt": negative_prompt or "", "seed": seed, "image": image, "video": video,
               "frames": frames, "approved": int(bool(approved)), "preview_id": None, "final_id": None,
               "updated_at": utc_now(), "continues": int(bool(continues)), "loras": json.dumps(self.rules.loras(loras))}
        row["id"] = insert_with_fresh_id(lambda sid: self._insert_shot(row, sid, position))
        return _shot(row)

    def _insert_shot(self, row: dict, shot_id: str, position: int | None) -> None:
        """One transaction, a fixed number of statements whatever the board's size: the board must exist, the
        shot goes at ``position`` (clamped; None: the end) and the shots from there move down one."""
        board_id = row["board_id"]
        with self._lock, self.db.conn:
            known, end = self.db.execute("SELECT (SELECT count(*) FROM boards WHERE id = ?), "
                                         "(SELECT count(*) FROM shots WHERE board_id = ?)",
                                         [board_id, board_id]).fetchone()
            if not known:
                raise StudioError(f"No board with id {board_id}.")
            row.update(id=shot_id, position=end if position is None else max(0, min(int(position), end)))
            self.db.execute("UPDATE shots SET position = position + 1 WHERE board_id = ? AND position >= ?",
                            [board_id, row["position"]])
            self.db["shots"].insert(row)
            self._touch(board_id)

    def get_shot(self, shot_id: str) -> Shot:
        with self._lock:
            rows = list(self.db["shots"].rows_where("id = ?", [shot_id]))
        if not rows:
            raise StudioError(f"No shot with id {shot_id}.")
        return _shot(rows[0])

    def update_shot(self, shot_id: str, **changes) -> Shot:
        shot = self.get_shot(shot_id)
        bad = set(changes) - set(RENDER_FIELDS) - {"approved"}
        if bad:
            raise StudioError(f"Shots have no editable field(s) {', '.join(sorted(bad))}.")
        if "mode" in changes:
            changes["mode"] = self.rules.mode(changes["mode"])
        if "loras" in changes:
            changes["loras"] = self.rules.loras(changes["loras"])
        updates = dict(changes)
        if "loras" in updates:
            updates["loras"] = json.dumps(updates["loras"])
        for flag in ("approved", "continues"):
            if flag in updates:
                updates[flag] = int(bool(updates[flag]))
        edited = any(k in RENDER_FIELDS and changes[k] != getattr(shot, k) for k in changes)
        if edited:
            updates.update(preview_id=None, final_id=None)  # old renders no longer match
            updates.setdefault("approved", 0)  # nor does the approval, unless given with the edit
        updates["updated_at"] = utc_now()
        with self._lock, self.db.conn:
            self.db["shots"].update(shot_id, updates)
            if edited:
                self.db.execute("UPDATE shots SET revision = revision + 1 WHERE id = ?", [shot_id])
            self._touch(shot.board_id)
        if edited:
            self._cancel_jobs([shot_id], f"Shot {shot.position + 1} was edited while this render waited.")
        return self.get_shot(shot_id)

    def approve(self, shot_id: str, approved: bool = True) -> Shot:
        return self.update_shot(shot_id, approved=approved)

    def reroll(self, shot_id: str) -> Shot:
        """A new random seed (clears the shot's renders and approval)."""
        return self.update_shot(shot_id, seed=self.rules.new_seed())

    def duplicate_shot(self, shot_id: str) -> Shot:
        s = self.get_shot(shot_id)
        return self.add_shot(s.board_id, s.prompt, mode=s.mode, negative_prompt=s.negative_prompt, seed=s.seed,
                             image=s.image, video=s.video, frames=s.frames, position=s.position + 1,
                             continues=s.continues, loras=s.loras)

    def move_shot(self, shot_id: str, position: int) -> Board:
        shot = self.get_shot(shot_id)
        board = self.get(shot.board_id)
        order = [s.id for s in board.shots if s.id != shot_id]
        order.insert(max(0, min(int(position), len(order))), shot_id)
        with self._lock, self.db.conn:
            for i, sid in enumerate(order):
                self.db["shots"].update(sid, {"position": i})
            self._touch(board.id)
        return self.get(board.id)

    def delete_shot(self, shot_id: str) -> Board:
        shot = self.get_shot(shot_id)
        self._cancel_jobs([shot_id], f"Shot {shot.position + 1} was deleted while this render waited.")
        with self._lock, self.db.conn:
            self.db.execute("DELETE FROM shots WHERE id = ?", [shot_id])
            self.db.execute("UPDATE shots SET position = position - 1 WHERE board_id = ? AND position > ?",
                            [shot.board_id, shot.position])
            self._touch(shot.board_id)
        return self.get(shot.board_id)

    def set_render(self, shot_id: str, stage: str, record_id: str) -> None:
        if stage not in STAGES:
            raise ValueError(stage)
        with self._lock, self.db.conn:
            changed = self.db.execute(_SET_RENDER[stage], [record_id, utc_now(), shot_id]).rowcount
        if not changed:
            raise StudioError(f"No shot with id {shot_id}.")

    def place_render(self, shot_id: str, stage: str, record_id: str, revision: int) -> str | None:
        """Put a render on the shot if the shot is still at ``revision`` (one statement: an edit in between wins);
        None when placed, else why not."""
        if stage not in STAGES:
            raise ValueError(stage)
        with self._lock, self.db.conn:
            placed = self.db.execute(_SET_RENDER[stage] + " AND revision = ?",
                                     [record_id, utc_now(), shot_id, int(revision)]).rowcount
            row = None if placed else self.db.execute("SELECT position FROM shots WHERE id = ?", [shot_id]).fetchone()
        if placed:
            return None
        if row is None:
            return "its shot was deleted while it waited or ran"
        return f"shot {row[0] + 1} was edited while this render waited or ran"

    # ---- batches -------------------------------------------------------------------
    def start_batch(self, board_id: str, stage: str) -> str:
        bid = new_id()
        with self._lock, self.db.conn:
            self.db["batches"].insert({"id": bid, "board_id": board_id, "stage": stage, "status": "running",
                                       "created_at": utc_now(), "finished_at": None, "claimed_by": liveness.identity()})
        return bid

    def finish_batch(self, batch_id: str, status: str) -> None:
        with self._lock, self.db.conn:
            self.db["batches"].update(batch_id, {"status": status, "finished_at": utc_now()})

    def batches(self, board_id: str | None = None, status: str | None = None) -> list[dict]:
        where, args = [], []
        if board_id:
            where.append("board_id = ?")
            args.append(board_id)
        if status:
            where.append("status = ?")
            args.append(status)
        with self._lock:
            return list(self.db["batches"].rows_where(" AND ".join(where) or None, args or None,
                                                      order_by="created_at"))
