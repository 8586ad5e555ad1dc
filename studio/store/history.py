"""HistoryStore: every render, one row, in SQLite (the only module that touches SQLite).

Schema moves forward by numbered migrations gated on ``PRAGMA user_version``.
One connection shared across threads behind a lock (WAL, busy timeout), so
Gradio worker threads and the CLI can use the same file at once. User text only
reaches SQL as parameters; full-text search builds a quoted query from words (``fts_query``).
"""

from __future__ import annotations

import importlib
import json
import re
import secrets
import sqlite3
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable


def _import_sqlite_utils():
    """sqlite-utils without pandas and numpy: when they are installed it imports both (~0.4 s, most of a light
    command's run) only to learn their scalar types, which we never store. They are marked absent for the length
    of that one import (a None in ``sys.modules`` makes an import raise ImportError, which sqlite-utils expects);
    a process that imports them later gets them as usual. Where either is already imported, nothing changes."""
    absent = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in absent:
        sys.modules[name] = None
    try:
        return importlib.import_module("sqlite_utils")
    finally:
        for name in absent:
            if sys.modules.get(name) is None:
                del sys.modules[name]


sqlite_utils = _import_sqlite_utils()

from . import disk, liveness
from ..errors import StudioError

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
    """A row id: the UTC time to the millisecond, then 80 random bits, e.g. ``20261207-192749-123-9f2c...`` (40
    characters). Time-ordered as text, and collision-free in practice: two ids of the same millisecond differ
    unless 80 random bits repeat. Ids made before (``YYYYmmdd-HHMMSS-`` + 6 hex, local time) stay valid: ids are
    opaque strings; nothing parses them or orders rows by them (lists order by created_at, rowid)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}-" + secrets.token_hex(10)


def insert_with_fresh_id(insert: Callable[[str], None], first_id: str | None = None, tries: int = 5) -> str:
    """Run ``insert(id)`` with a new id, and with another if that id is taken (sqlite3.IntegrityError on the
    primary key): a collision, however rare, retries instead of failing a render. Returns the id inserted."""
    rid = first_id or new_id()
    for attempt in range(tries):
        try:
            insert(rid)
            return rid
        except sqlite3.IntegrityError as exc:
            if not str(exc).startswith("UNIQUE constraint failed") or not str(exc).endswith(".id") \
                    or attempt == tries - 1:
                raise
            rid = new_id()
    return rid


SQLITE_MIN = (3, 35, 0)  # UPDATE ... RETURNING (the queue's claim)


def check_sqlite() -> None:
    """Refuse, with one message, an SQLite library too old for the queue (``UPDATE ... RETURNING``)."""
    if sqlite3.sqlite_version_info < SQLITE_MIN:
        raise StudioError(f"This Python's SQLite is {sqlite3.sqlite_version}; the studio needs SQLite "
                          f"{'.'.join(map(str, SQLITE_MIN))} or newer (Python 3.11 from python.org or a current "
                          "distribution has it).")


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


def _m9_claimers(db: sqlite_utils.Database) -> None:
    """Which process started a render row or a board batch (liveness.py: pid and start time), so a new owner's
    recovery marks only a dead process's rows interrupted, never a live command-line render's beside it."""
    db["renders"].add_column("claimed_by", str)
    db["batches"].add_column("claimed_by", str)


def _m10_job_kinds(db: sqlite_utils.Database) -> None:
    """Typed jobs (job_kinds.py): the column that holds the whole job is ``job`` (it was ``request``, which is one
    of its keys), its kind is set from what an untyped job carried and its JSON says its version; ``key``: one
    queued or running job per key (a shot's stage at one revision). Shots carry a revision that every edit bumps;
    a render that did not land where its job meant it to says why in ``note``."""
    db.conn.execute("ALTER TABLE jobs RENAME COLUMN request TO job")
    db["jobs"].add_column("key", str)
    db["jobs"].create_index(["key", "state"], if_not_exists=True)
    db["shots"].add_column("revision", int, not_null_default=0)
    db["renders"].add_column("note", str)
    db.conn.execute(
        "UPDATE jobs SET kind = CASE WHEN json_extract(job, '$.board') IS NOT NULL THEN 'shot' "
        "WHEN json_extract(job, '$.extend') IS NOT NULL THEN 'extension' ELSE 'render' END, "
        "job = json_set(job, '$.v', 1)")
    db.conn.execute(  # shots start at revision 0: a shot job queued before this pins it
        "UPDATE jobs SET job = json_set(job, '$.board.revision', 0), key = 'shot:' || json_extract(job, "
        "'$.board.shot') || ':' || json_extract(job, '$.board.stage') || ':0' WHERE kind = 'shot'")


# ---- sweeps (issue 26; sweep_store.py). Kept apart so that migrations from parallel work renumber around it. ----
def _m11_sweeps(db: sqlite_utils.Database) -> None:
    """Sweeps: a record per sweep (its prompts, budgets, seeds, models as JSON ``spec``) and one row per render it
    asks for (prompt x seed x model x budget): the queued job that renders it, the history row it became, the
    metrics measured from its frames, and the blind review's verdict."""
    db["sweeps"].create(
        {"id": str, "name": str, "status": str, "spec": str, "source": str, "session": str, "created_at": str,
         "finished_at": str},
        pk="id", not_null={"id", "status", "spec"},
    )
    db["sweep_items"].create(
        {"id": str, "sweep_id": str, "position": int, "prompt_index": int, "seed_index": int, "seed": int,
         "model": str, "steps": int, "job_id": str, "render_id": str, "metrics": str, "signature": str,
         "review": int, "reviewed_at": str, "review_rank": int, "blind": str},
        pk="id", foreign_keys=[("sweep_id", "sweeps", "id")], not_null={"id", "sweep_id"},
    )
    db["sweep_items"].create_index(["sweep_id", "position"])
    db["sweep_items"].create_index(["job_id"])


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1_initial, _m2_plans, _m3_policies, _m4_boards,
                                                             _m5_continuity, _m6_shot_loras, _m7_jobs,
                                                             _m8_job_order, _m9_claimers, _m10_job_kinds,
                                                             _m11_sweeps]
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
        disk.make_folder(self.path.parent)
        self._lock = threading.RLock()
        try:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        except sqlite3.Error as exc:  # a folder named history.db, no permission
            raise disk.corrupt_database(self.path, exc) from None
        self.db = sqlite_utils.Database(conn)
        try:
            with self._lock:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA busy_timeout=30000")
                self.db.execute("PRAGMA synchronous=NORMAL")
                migrate(self.db)
        except sqlite3.DatabaseError as exc:  # not a database, damaged, or a full disk
            conn.close()
            if disk.is_full(exc, self.path.parent):
                raise disk.full(self.path.parent, "free space and try again") from None
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise disk.corrupt_database(self.path, exc) from None

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
    def mark_interrupted(self, spared: Callable[[str | None], bool] = lambda claimer: False) -> int:
        """Crash recovery (only the process owning the data folder): a row still "running" belongs to a process
        that died mid-render, unless ``spared(its claimed_by)`` says that process lives. Returns how many rows
        were marked."""
        return self.mark_table_interrupted("renders", {"status": "interrupted",
                                                       "error": "The studio stopped during this render."}, spared)

    def mark_table_interrupted(self, table: str, updates: dict, spared: Callable[[str | None], bool]) -> int:
        """The "running" rows of ``renders`` or ``batches`` whose claimer is not ``spared``, updated; how many."""
        assert table in ("renders", "batches")
        with self._lock, self.db.conn:
            rows = self.db.execute(f"SELECT id, claimed_by FROM {table} WHERE status = 'running'").fetchall()
            dead = [rid for rid, by in rows if not spared(by)]
            sets = ", ".join(f"{key} = ?" for key in updates)
            for rid in dead:
                self.db.execute(f"UPDATE {table} SET {sets} WHERE id = ? AND status = 'running'",
                                [*updates.values(), rid])
        return len(dead)

    def running_claims(self) -> dict[str, str | None]:
        """The rows still "running": id -> the process that started them (crash recovery: whose partial files)."""
        with self._lock:
            return dict(self.db.execute("SELECT id, claimed_by FROM renders WHERE status = 'running'").fetchall())

    def start(self, request: dict, steps: int, plan_id: str, plan_kind: str, budget_index: int, *,
              policy: str | None = None, requested_steps: int | None = None, capped: bool = False,
              session: str | None = None, take_back: bool = False) -> str:
        """Record a render that is about to run; returns its id. ``take_back``: the plan may have run before (a
        queued job after a crash or a stop: its plan id is the job's); its earlier row for this budget, left
        unfinished (running, interrupted, cancelled or failed), is taken back instead of adding one, and that row's
        old files go: one row per job and budget, however often it ran. A budget that finished ``ok`` is never
        taken back (StudioError: the caller renders only ``unfinished`` budgets)."""
        again = self._row_of(plan_id, budget_index) if take_back else None
        if again and again["status"] == "ok":
            raise StudioError(f"budget {budget_index} of {plan_id} already finished (render {again['id']}); "
                              "a re-run keeps it")
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
            "claimed_by": liveness.identity(),
        }
        if again:  # a fresh run of that budget; what the user said of it (accepted) stays
            row.update(error=None, finished_at=None, video_path=None, thumb_path=None, total_seconds=None)
            row.pop("accepted")
        if again:
            with self._lock, self.db.conn:
                self.table.update(rid, row)
        else:
            rid = insert_with_fresh_id(lambda fresh: self._insert_row({**row, "id": fresh}), rid)
        if again:
            self._remove_files(again)
        return rid

    def _insert_row(self, row: dict) -> None:
        with self._lock, self.db.conn:
            self.table.insert(row)

    def _row_of(self, plan_id: str, budget_index: int) -> dict | None:
        with self._lock:
            rows = list(self.table.rows_where("plan_id = ? AND budget_index = ?", [plan_id, budget_index], limit=1))
        return rows[0] if rows else None

    def finished_budgets(self, plan_id: str) -> dict[int, dict]:
        """The budgets of a plan (a queued job's id) that finished ``ok``: budget index -> row. A re-run keeps them."""
        with self._lock:
            rows = self.table.rows_where("plan_id = ? AND status = 'ok'", [plan_id], order_by="budget_index")
            return {r["budget_index"]: self._decode(r) for r in rows}

    def set_note(self, rid: str, note: str) -> None:
        """Say something about a finished row that is not an error (a shot render that was not placed, and why)."""
        with self._lock, self.db.conn:
            self.db.execute("UPDATE renders SET note = ? WHERE id = ?", [note, rid])

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

    def get_many(self, rids) -> dict[str, dict]:
        """The rows of ``rids`` (those that exist), by id: one query however many (a board's shots' renders)."""
        wanted = sorted({r for r in rids if r})
        if not wanted:
            return {}
        with self._lock:
            rows = list(self.db.query("SELECT * FROM renders WHERE id IN (SELECT value FROM json_each(?))",
                                      [json.dumps(wanted)]))
        return {r["id"]: self._decode(r) for r in rows}

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
