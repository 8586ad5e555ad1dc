"""HistoryStore: every render, one row, in SQLite (the only module that touches SQLite).

Schema moves forward by numbered migrations gated on ``PRAGMA user_version``.
One connection shared across threads behind a lock (WAL, busy timeout), so
Gradio worker threads and the CLI can use the same file at once. User text only
reaches SQL as parameters; full-text search builds a quoted query from words (``fts_query``).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import sqlite_utils

STATUSES = ("running", "ok", "failed", "cancelled", "interrupted")
_JSON_FIELDS = ("request", "timings")


def fts_query(text: str) -> str:
    """User text -> a safe FTS5 query: each word quoted, as a prefix, all words required.

    Quoting tokens ourselves means no user text is ever parsed as FTS syntax
    (sqlite-utils' quote=True still fails on input like '""').
    """
    words = re.findall(r"\w+", text or "")
    return " ".join('"' + w.replace('"', "") + '"*' for w in words[:32])


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


# ---- migrations ------------------------------------------------------------------
def _m1_initial(db: sqlite_utils.Database) -> None:
    db["renders"].create(
        {
            "id": str,
            "created_at": str,
            "status": str,
            "mode": str,
            "model": str,
            "prompt": str,
            "negative_prompt": str,
            "seed": int,
            "steps": int,
            "height": int,
            "width": int,
            "frames": int,
            "fps": int,
            "request": str,  # JSON of the whole RenderRequest
            "timings": str,  # JSON: load, encode, denoise, decode, write, total (seconds)
            "video_path": str,
            "thumb_path": str,
            "error": str,
            "accepted": int,
        },
        pk="id",
        defaults={"accepted": 0},
        not_null={"id", "created_at", "status"},
    )
    db["renders"].enable_fts(["prompt"], create_triggers=True)


def _m2_plans(db: sqlite_utils.Database) -> None:
    """Group the budgets of one plan; search negative prompts too; index what the gallery filters on."""
    table = db["renders"]
    table.add_column("plan_id", str)
    table.add_column("plan_kind", str)
    table.add_column("budget_index", int)
    table.add_column("finished_at", str)
    table.add_column("total_seconds", float)
    table.create_index(["created_at"], if_not_exists=True)
    table.create_index(["status"], if_not_exists=True)
    table.create_index(["model", "mode", "steps"], if_not_exists=True)
    table.enable_fts(["prompt", "negative_prompt"], create_triggers=True, replace=True)


def _m3_policies(db: sqlite_utils.Database) -> None:
    """Record which budget policy a render used, the budget asked for, and whether a queue cap lowered it."""
    table = db["renders"]
    table.add_column("policy", str)
    table.add_column("requested_steps", int)
    table.add_column("capped", int, not_null_default=0)


def _m4_boards(db: sqlite_utils.Database) -> None:
    """Storyboards: ordered shots, and batches of renders that survive a restart."""
    db["boards"].create(
        {"id": str, "name": str, "model": str, "preview_policy": str, "final_policy": str, "session": str,
         "created_at": str, "updated_at": str},
        pk="id", not_null={"id", "name"},
    )
    db["shots"].create(
        {"id": str, "board_id": str, "position": int, "mode": str, "prompt": str, "negative_prompt": str,
         "seed": int, "image": str, "video": str, "frames": int, "approved": int, "preview_id": str,
         "final_id": str, "updated_at": str},
        pk="id", foreign_keys=[("board_id", "boards", "id")], defaults={"approved": 0},
    )
    db["shots"].create_index(["board_id", "position"])
    db["batches"].create(
        {"id": str, "board_id": str, "stage": str, "status": str, "created_at": str, "finished_at": str},
        pk="id", foreign_keys=[("board_id", "boards", "id")],
    )
    db["renders"].add_column("session", str)


def _m5_continuity(db: sqlite_utils.Database) -> None:
    """Extensions and continuing shots: a render's parent (the clip it continues); a shot that continues the one
    before it."""
    db["renders"].add_column("parent_id", str)
    db["renders"].create_index(["parent_id"], if_not_exists=True)
    db["shots"].add_column("continues", int, not_null_default=0)


def _m6_shot_loras(db: sqlite_utils.Database) -> None:
    """Storyboard shots carry LoRAs: JSON text, [[file, strength], ...]."""
    db["shots"].add_column("loras", str, not_null_default="[]")


def _m7_jobs(db: sqlite_utils.Database) -> None:
    """The render queue (queue_store.py): every render job, waiting or done, survives a restart."""
    db["jobs"].create(
        {"id": str, "kind": str, "request": str, "plan": str, "policy": str, "position": int, "session": str,
         "source": str, "state": str, "attempts": int, "worker": str, "error": str, "result_ids": str,
         "cancel_requested": int, "seq": int, "created_at": str, "started_at": str, "finished_at": str},
        pk="id", not_null={"id", "kind", "state"},
        defaults={"attempts": 0, "cancel_requested": 0, "seq": 0, "result_ids": "[]"},
    )
    db["jobs"].create_index(["state", "position"])


def _m8_job_order(db: sqlite_utils.Database) -> None:
    """Jobs that wait for another (a continuing storyboard shot waits for the shot it continues), and the progress
    of a running job, readable from another process (`queue list`)."""
    db["jobs"].add_column("after", str)
    db["jobs"].add_column("progress", float)
    db["jobs"].add_column("claimed_by", str)  # the dispatcher (process) that claimed it; ``worker`` may be a node
    db["renders"].create_index(["plan_id", "budget_index"], if_not_exists=True)  # a job's rows (HistoryStore.start)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1_initial, _m2_plans, _m3_policies, _m4_boards,
                                                             _m5_continuity, _m6_shot_loras, _m7_jobs,
                                                             _m8_job_order]
SCHEMA_VERSION = len(MIGRATIONS)


def _user_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database, upto: int = SCHEMA_VERSION) -> int:
    """Apply the migrations after the file's user_version. Returns the version reached.

    Each migration and its version bump are one explicit transaction on the raw connection: a migration that fails
    (or a process killed halfway) leaves the file at the previous version, as it was. Python's sqlite3 opens no
    transaction for DDL by itself, so without the BEGIN every CREATE / ALTER would commit on its own. The
    sqlite-utils calls the migrations use (create, add_column, create_index, enable_fts) join an open transaction
    instead of committing (sqlite-utils >= 4: savepoints, and statement by statement for scripts).
    BEGIN IMMEDIATE takes the write lock first and the version is read again under it, so two processes starting
    at once apply each migration once.
    """
    for number in range(_user_version(db) + 1, upto + 1):
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            if _user_version(db) < number:  # another process may have applied it meanwhile
                MIGRATIONS[number - 1](db)
                db.conn.execute(f"PRAGMA user_version = {int(number)}")
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
    return _user_version(db)


# Renders made in the same millisecond tie on created_at; the row order (insertion) breaks the tie, newest first,
# so that pages never overlap or skip.
NEWEST_FIRST = "created_at desc, rowid desc"


@dataclass
class Query:
    text: str = ""
    mode: str | None = None
    model: str | None = None
    steps: int | None = None
    status: str | None = None
    accepted: bool | None = None
    session: str | None = None  # Space mode: only this visitor's renders
    limit: int = 50
    offset: int = 0


class HistoryStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        with self._lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA busy_timeout=30000")
            self.db.execute("PRAGMA synchronous=NORMAL")
            migrate(self.db)

    @property
    def lock(self) -> threading.RLock:
        """The lock around the one shared connection: the board and queue stores on this database take it too."""
        return self._lock

    @property
    def table(self) -> sqlite_utils.db.Table:
        return self.db["renders"]

    def schema_version(self) -> int:
        with self._lock:
            return self.db.execute("PRAGMA user_version").fetchone()[0]

    # ---- writing -------------------------------------------------------------------
    def mark_interrupted(self) -> int:
        """Crash recovery (only the process owning the data folder, at start-up, before it renders): a row still
        "running" belongs to a process that died mid-render. Returns how many rows were marked."""
        with self._lock, self.db.conn:
            return self.db.execute(
                "UPDATE renders SET status = 'interrupted', error = 'The studio stopped during this render.' "
                "WHERE status = 'running'"
            ).rowcount

    def start(self, request: dict, steps: int, plan_id: str, plan_kind: str, budget_index: int, *,
              policy: str | None = None, requested_steps: int | None = None, capped: bool = False,
              session: str | None = None, take_back: bool = False) -> str:
        """Record a render that is about to run; returns its id. ``take_back``: the plan may have run before (a
        queued job after a crash or a stop: its plan id is the job's); its earlier row for this budget is taken
        back instead of adding one, and that row's old files go: one row per job and budget, however often it
        ran."""
        again = self._row_of(plan_id, budget_index) if take_back else None
        rid = again["id"] if again else new_id()
        row = {
            "id": rid,
            "created_at": utc_now(),
            "status": "running",
            "mode": request.get("mode"),
            "model": request.get("model"),
            "prompt": request.get("prompt"),
            "negative_prompt": request.get("negative_prompt") or "",
            "seed": request.get("seed"),
            "steps": steps,
            "height": request.get("height"),
            "width": request.get("width"),
            "frames": request.get("frames"),
            "fps": request.get("fps"),
            "request": json.dumps(request, ensure_ascii=False),
            "timings": "{}",
            "plan_id": plan_id,
            "plan_kind": plan_kind,
            "budget_index": budget_index,
            "accepted": 0,
            "policy": policy,
            "requested_steps": requested_steps if requested_steps is not None else steps,
            "capped": int(bool(capped)),
            "session": session,
            "parent_id": request.get("extends"),
        }
        if again:  # a fresh run of that budget; what the user said of it (accepted) stays
            row.update(error=None, finished_at=None, video_path=None, thumb_path=None, total_seconds=None)
            row.pop("accepted")
        with self._lock, self.db.conn:
            self.table.update(rid, row) if again else self.table.insert(row)
        if again:
            self._remove_files(again)
        return rid

    def _row_of(self, plan_id: str, budget_index: int) -> dict | None:
        with self._lock:
            rows = list(self.table.rows_where("plan_id = ? AND budget_index = ?", [plan_id, budget_index], limit=1))
        return rows[0] if rows else None

    def finish(self, rid: str, status: str, *, timings: dict | None = None, video_path: str | None = None,
               thumb_path: str | None = None, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status}")
        updates = {"status": status, "finished_at": utc_now(), "error": error}
        if timings is not None:
            updates["timings"] = json.dumps(timings)
            updates["total_seconds"] = timings.get("total")
        if video_path is not None:
            updates["video_path"] = video_path
        if thumb_path is not None:
            updates["thumb_path"] = thumb_path
        with self._lock, self.db.conn:
            self.table.update(rid, updates)

    def set_frames(self, rid: str, frames: int) -> None:
        """The frame count of a row's file when it differs from the render's own (an extension's joined clip)."""
        with self._lock, self.db.conn:
            self.table.update(rid, {"frames": int(frames)})

    def set_accepted(self, rid: str, accepted: bool = True) -> None:
        with self._lock, self.db.conn:
            self.table.update(rid, {"accepted": int(bool(accepted))})

    def delete(self, rid: str, remove_files: bool = True) -> bool:
        """Delete a row and (by default) its files. Only files inside the data folder (the database's) are removed."""
        row = self.get(rid)
        if row is None:
            return False
        with self._lock, self.db.conn:
            self.table.delete(rid)
        if remove_files:
            self._remove_files(row)
        return True

    def _remove_files(self, row: dict) -> None:
        """A row's video and thumbnail, if they lie inside the data folder (a row naming any other file is left)."""
        root = self.path.parent.resolve()
        for key in ("video_path", "thumb_path"):
            p = row.get(key)
            try:
                real = Path(p).resolve(strict=True) if p else None
            except (OSError, RuntimeError):
                real = None
            if real is not None and real.is_file() and real.is_relative_to(root) and real != self.path.resolve():
                real.unlink(missing_ok=True)  # the janitor or another tab may have just deleted it

    # ---- reading -------------------------------------------------------------------
    @staticmethod
    def _decode(row: dict) -> dict:
        row = dict(row)
        for key in _JSON_FIELDS:
            if isinstance(row.get(key), str):
                try:
                    row[key] = json.loads(row[key])
                except json.JSONDecodeError:
                    pass
        row.pop("rank", None)
        return row

    def get(self, rid: str) -> dict | None:
        with self._lock:
            rows = list(self.table.rows_where("id = ?", [rid]))
        return self._decode(rows[0]) if rows else None

    def count(self) -> int:
        with self._lock:
            return self.table.count

    @staticmethod
    def _where(q: Query) -> tuple[str | None, dict]:
        where, args = [], {}
        for column in ("mode", "model", "steps", "status", "session"):
            value = getattr(q, column)
            if value not in (None, ""):
                where.append(f"[{column}] = :{column}")
                args[column] = value
        if q.accepted is not None:
            where.append("accepted = :accepted")
            args["accepted"] = int(q.accepted)
        return " AND ".join(where) or None, args

    def search(self, query: Query | None = None, **kwargs) -> list[dict]:
        """Newest first; ``text`` is full-text over prompts (quoted: any user text is safe)."""
        q = query or Query(**kwargs)
        clause, args = self._where(q)
        limit, offset = max(1, min(int(q.limit), 1000)), max(0, int(q.offset))
        with self._lock:
            if q.text and q.text.strip():
                match = fts_query(q.text)
                if not match:  # only punctuation or symbols: nothing can match
                    return []
                rows = self.table.search(
                    match, where=clause, where_args=args or None,
                    order_by=NEWEST_FIRST, limit=limit, offset=offset,
                )
            else:
                rows = self.table.rows_where(clause, args or None, order_by=NEWEST_FIRST, limit=limit, offset=offset)
            return [self._decode(r) for r in rows]

    def count_matching(self, query: Query | None = None, **kwargs) -> int:
        """How many renders ``search`` would page through (its filters and text; limit and offset ignored)."""
        q = query or Query(**kwargs)
        clause, args = self._where(q)
        with self._lock:
            if q.text and q.text.strip():
                match = fts_query(q.text)
                if not match:
                    return 0
                # sqlite-utils' own search SQL: the text and the filter values travel as named parameters
                sql = self.table.search_sql(columns=["rowid"], where=clause)
                return int(self.db.execute(f"SELECT count(*) FROM ({sql})", {"query": match, **args}).fetchone()[0])
            return int(self.table.count_where(clause or "1", args or None))

    def stats(self, session: str | None = None) -> list[dict]:
        """What each budget bought: per model and step budget, renders, accepted rate, median seconds.
        With ``session``, only that (Space) session's renders."""
        import statistics

        sql = "SELECT model, steps, accepted, total_seconds FROM renders WHERE status = 'ok'"
        args: list = []
        if session is not None:
            sql += " AND session = ?"
            args.append(session)
        with self._lock:
            rows = self.db.execute(sql, args).fetchall()
        groups: dict[tuple, list] = {}
        for model, steps, accepted, seconds in rows:
            groups.setdefault((model, steps), []).append((accepted or 0, seconds))
        out = []
        for (model, steps), items in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] or 0)):
            secs = [s for _, s in items if s is not None]
            out.append({
                "model": model, "steps": steps, "renders": len(items),
                "accepted_rate": round(sum(a for a, _ in items) / len(items), 3),
                "median_seconds": round(statistics.median(secs), 3) if secs else None,
            })
        return out

    def purge(self, older_than: str, remove_files: bool = True) -> int:
        """Delete finished renders created before ``older_than`` (ISO time), with their files. Returns the count."""
        with self._lock:
            ids = [r[0] for r in self.db.execute(
                "SELECT id FROM renders WHERE created_at < ? AND status != 'running'", [older_than]).fetchall()]
        for rid in ids:
            self.delete(rid, remove_files=remove_files)
        return len(ids)

    def children(self, rid: str) -> list[dict]:
        """The renders that continue ``rid`` (its extensions), oldest first."""
        with self._lock:
            return [self._decode(r) for r in self.table.rows_where("parent_id = ?", [rid], order_by="rowid")]

    def plan(self, plan_id: str) -> list[dict]:
        with self._lock:
            rows = self.table.rows_where("plan_id = ?", [plan_id], order_by="budget_index")
            return [self._decode(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()
