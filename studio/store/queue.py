"""QueueStore: the render queue, one row per job in ``history.db`` (table ``jobs``, migration 6).

A job is a typed job (job_kinds.py): its ``kind`` in a column and the job itself as versioned JSON in ``job``, with
where it came from (``source``: create, compare, storyboard, extend, cli), its Space ``session``, and its state:

    queued -> running -> done | failed | cancelled        (queued -> cancelled directly)
    running -> queued                                      (only crash recovery: ``requeue_running``)

``claimed_by`` names the process that runs a job (liveness.py: pid and start time), so recovery requeues only the
jobs of a process that died, at the owner's start-up and while it runs (``requeue_running(at_start=False)``).

Each change is one transaction on the history's connection (its lock, and BEGIN IMMEDIATE against other
processes), and bumps ``seq`` so a view can tell what changed. A finished job never changes again: every update
says which states it may come from in its WHERE clause. Jobs run lowest ``position`` first.
Standard library and sqlite only: ``queue list`` imports no torch.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

from . import disk
from ..errors import StudioError
from . import liveness
from .history import HistoryStore, insert_with_fresh_id, utc_now

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
SOURCES = ("create", "compare", "storyboard", "extend", "cli", "api", "sweep")  # api: ui/public_api.py
KEEP_FINISHED = 500  # finished jobs kept for the record; older ones are pruned


class UnknownJob(StudioError):
    """No such job (or not this session's)."""


class JobFinished(StudioError):
    """The job already finished: it cannot be cancelled, moved or changed."""


_NEIGHBOUR = {  # the waiting job just before / after a position (of the same session when one is given)
    "up": "SELECT id, position FROM jobs WHERE state = 'queued' AND position < ? AND (? IS NULL OR session = ?) "
          "ORDER BY position DESC LIMIT 1",
    "down": "SELECT id, position FROM jobs WHERE state = 'queued' AND position > ? AND (? IS NULL OR session = ?) "
            "ORDER BY position ASC LIMIT 1",
}


class QueueStore:
    def __init__(self, history: HistoryStore):
        self.db = history.db
        self._lock = history.lock
        self._folder = history.path.parent  # the data folder: named when its disk is full

    @contextmanager
    def _write(self):
        """One write transaction: the thread lock, then SQLite's write lock taken first (BEGIN IMMEDIATE)."""
        with self._lock:
            try:
                self.db.conn.execute("BEGIN IMMEDIATE")
                yield self.db.conn
                self.db.conn.execute("COMMIT")
            except BaseException as exc:
                if self.db.conn.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                    self.db.conn.execute("ROLLBACK")
                if disk.is_full(exc, self._folder):
                    raise disk.full(self._folder) from None
                raise

    # ---- adding and claiming ----------------------------------------------------------
    def add(self, job: dict, *, source: str = "cli", session: str | None = None, plan: dict | None = None,
            kind: str = "render", after: str | None = None, key: str | None = None) -> str:
        """A job at the end of the queue; its id. ``after``: a job it waits for (it runs once that one finished).
        ``key``: while a job with that key is queued or running (and not being cancelled), it is that job's id, and
        nothing is added (the look and the insert share one transaction: two adds at once queue it once)."""
        return self.add_once(job, source=source, session=session, plan=plan, kind=kind, after=after, key=key)[0]

    def add_once(self, job: dict, *, source: str = "cli", session: str | None = None, plan: dict | None = None,
                 kind: str = "render", after: str | None = None, key: str | None = None) -> tuple[str, bool]:
        """``add``, and whether it added the job (False: a job with that key was queued or running)."""
        if source not in SOURCES:
            raise StudioError(f"unknown job source {source!r} (one of {', '.join(SOURCES)})")
        busy: list[str] = []

        def insert(jid: str) -> None:
            with self._write() as conn:
                if key is not None and (found := conn.execute(
                        "SELECT id FROM jobs WHERE key = ? AND state IN ('queued', 'running') AND cancel_requested = 0 "
                        "LIMIT 1", [key]).fetchone()):
                    busy.append(found[0])
                    return
                (last,) = conn.execute("SELECT coalesce(max(position), 0) FROM jobs").fetchone()
                conn.execute(
                    "INSERT INTO jobs (id, kind, job, plan, policy, position, session, source, state, attempts, "
                    "result_ids, cancel_requested, seq, created_at, after, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                    "'queued', 0, '[]', 0, 1, ?, ?, ?)",
                    [jid, kind, json.dumps(job, ensure_ascii=False), json.dumps(plan) if plan else None,
                     job.get("policy"), last + 1, session, source, utc_now(), after, key])
        jid = insert_with_fresh_id(insert)
        return (busy[0], False) if busy else (jid, True)

    def claim(self, worker: str, among: "set[str] | None" = None) -> dict | None:
        """The first queued job that may run (the job it waits for, if any, has finished), now running
        (attempts + 1) for ``worker``; None when none may. ``among``: only these jobs. One statement: two claimers
        never get the same job."""
        only = f" AND id IN ({', '.join('?' for _ in among)})" if among is not None else ""
        with self._write() as conn:
            row = conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = ?, claimed_by = ?, "
                "started_at = ?, progress = 0, seq = seq + 1 WHERE id = (SELECT id FROM jobs AS j WHERE state = 'queued'" + only +
                " AND (after IS NULL OR NOT EXISTS (SELECT 1 FROM jobs AS a WHERE a.id = j.after AND a.state IN "
                "('queued', 'running'))) ORDER BY position, rowid LIMIT 1) AND state = 'queued' RETURNING id",
                [worker, worker, utc_now(), *(among or ())]).fetchone()
        return self.get(row[0]) if row else None

    def set_progress(self, jid: str, fraction: float) -> None:
        """How far a running job is (0..1), for `queue list` in another process."""
        with self._write() as conn:
            conn.execute("UPDATE jobs SET progress = ? WHERE id = ? AND state = 'running'", [float(fraction), jid])

    def set_worker(self, jid: str, worker: str) -> None:
        """The worker (node and GPU) that renders a running job, once it says so."""
        with self._write() as conn:
            conn.execute("UPDATE jobs SET worker = ?, seq = seq + 1 WHERE id = ? AND state = 'running'",
                         [worker, jid])

    def finish(self, jid: str, state: str, *, error: str | None = None, result_ids: list[str] = ()) -> bool:
        """A running job done, failed or cancelled. False (and nothing changes) if it was not running."""
        if state not in FINISHED:
            raise ValueError(f"not a finished state: {state}")
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE jobs SET state = ?, error = ?, result_ids = ?, finished_at = ?, seq = seq + 1, "
                "progress = CASE WHEN ? = 'done' THEN 1.0 ELSE progress END "  # done is all of it, not the last write
                "WHERE id = ? AND state = 'running'", [state, error, json.dumps(list(result_ids)), utc_now(), state, jid])
        self.prune()
        return changed.rowcount == 1

    def set_plan(self, jid: str, plan: dict) -> None:
        """The plan a job runs (kind, budgets as asked; a cap shows on its history rows), recorded when it starts."""
        with self._write() as conn:
            conn.execute("UPDATE jobs SET plan = ?, seq = seq + 1 WHERE id = ?", [json.dumps(plan), jid])

    def requeue(self, jid: str) -> bool:
        """A running job back in the queue (its studio stopped it on the way out)."""
        with self._write() as conn:
            return conn.execute("UPDATE jobs SET state = 'queued', worker = NULL, seq = seq + 1 "
                                "WHERE id = ? AND state = 'running'", [jid]).rowcount == 1

    def requeue_running(self, at_start: bool = True) -> int:
        """Crash recovery (the folder's owner): jobs a dead process left running wait again. A job that a live
        process on this machine runs (a command-line render beside the owner) is left to it. ``at_start``: the
        owner runs nothing yet, so a job claimed in its own name is a dead namesake's; later (a sweep while the
        studio runs) its own jobs are its dispatcher's."""
        spared = liveness.alive_elsewhere if at_start else liveness.alive
        with self._write() as conn:
            rows = conn.execute("SELECT id, claimed_by FROM jobs WHERE state = 'running'").fetchall()
            dead = [jid for jid, by in rows if not spared(by)]
            for jid in dead:
                conn.execute("UPDATE jobs SET state = 'queued', worker = NULL, seq = seq + 1 WHERE id = ? AND "
                             "state = 'running'", [jid])
        return len(dead)

    # ---- what the user does to a waiting job ------------------------------------------------
    def cancel(self, jid: str, session: str | None = None) -> str:
        """Cancel a job: a queued one at once ("cancelled"); a running one is asked to stop ("cancelling": its
        dispatcher sees the request within a step). JobFinished for one that already finished."""
        with self._write() as conn:
            state = self._state(conn, jid, session)
            if state == "queued":
                conn.execute("UPDATE jobs SET state = 'cancelled', error = 'Cancelled before it ran.', "
                             "finished_at = ?, seq = seq + 1 WHERE id = ? AND state = 'queued'", [utc_now(), jid])
                return "cancelled"
            conn.execute("UPDATE jobs SET cancel_requested = 1, seq = seq + 1 WHERE id = ? AND state = 'running'",
                         [jid])
            return "cancelling"

    def cancel_keyed(self, prefix: str, why: str) -> list[str]:
        """Cancel the waiting jobs whose key starts with ``prefix`` (a shot's, when it is edited or deleted), saying
        ``why``; their ids."""
        with self._write() as conn:
            rows = conn.execute("SELECT id FROM jobs WHERE state = 'queued' AND substr(key, 1, ?) = ?",
                                [len(prefix), prefix]).fetchall()
            for (jid,) in rows:
                conn.execute("UPDATE jobs SET state = 'cancelled', error = ?, finished_at = ?, seq = seq + 1 "
                             "WHERE id = ? AND state = 'queued'", [why, utc_now(), jid])
        return [jid for (jid,) in rows]

    def cancel_requested(self, jid: str) -> bool:
        with self._lock:
            row = self.db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", [jid]).fetchone()
        return bool(row and row[0])

    def move(self, jid: str, where: str, session: str | None = None) -> None:
        """Move a waiting job "up", "down" (past its neighbour among the waiting jobs) or to the "top". With a
        ``session`` (Space mode) only among that session's jobs: a visitor never jumps others' jobs."""
        if where not in ("up", "down", "top"):
            raise StudioError(f"move a job up, down or top, not {where!r}")
        with self._write() as conn:
            self._waiting(conn, jid, session)
            (pos,) = conn.execute("SELECT position FROM jobs WHERE id = ?", [jid]).fetchone()
            if where == "top":
                self._to_top(conn, jid, pos, session)
                return
            other = conn.execute(_NEIGHBOUR[where], [pos, session, session]).fetchone()
            if other:  # swap places (within the session: other sessions' jobs keep theirs)
                conn.execute("UPDATE jobs SET position = ?, seq = seq + 1 WHERE id = ?", [other[1], jid])
                conn.execute("UPDATE jobs SET position = ?, seq = seq + 1 WHERE id = ?", [pos, other[0]])

    @staticmethod
    def _to_top(conn, jid: str, pos: int, session: str | None) -> None:
        """Before every waiting job; with a session, before that session's own (each of them moves one place down
        among its own places, so other sessions' jobs keep theirs)."""
        if session is None:
            (first,) = conn.execute("SELECT min(position) FROM jobs WHERE state = 'queued'").fetchone()
            if first < pos:
                conn.execute("UPDATE jobs SET position = ?, seq = seq + 1 WHERE id = ?", [first - 1, jid])
            return
        ahead = conn.execute("SELECT id, position FROM jobs WHERE state = 'queued' AND session = ? AND position <= ? "
                             "ORDER BY position", [session, pos]).fetchall()
        places = [p for _, p in ahead]
        for (other, _), place in zip([(jid, pos)] + [r for r in ahead if r[0] != jid], places):
            conn.execute("UPDATE jobs SET position = ?, seq = seq + 1 WHERE id = ?", [place, other])

    def set_steps(self, jid: str, steps: int, session: str | None = None) -> None:
        """Change the step budget of a waiting job (checked again, with the rest of the request, when it runs)."""
        if not isinstance(steps, int) or not 1 <= steps <= 128:
            raise StudioError(f"a step budget is 1-128, not {steps!r}")
        with self._write() as conn:
            self._waiting(conn, jid, session)
            (text,) = conn.execute("SELECT job FROM jobs WHERE id = ?", [jid]).fetchone()
            job = json.loads(text)
            if job.get("compare"):
                raise StudioError(f"job {jid} compares the budgets {job['compare']}; it has no one step budget to "
                                  "change (cancel it and queue the comparison you want)")
            job["request"] = dict(job.get("request") or {}, steps=steps)
            job["policy"] = None  # the user's budget now, not the policy's
            conn.execute("UPDATE jobs SET job = ?, policy = NULL, seq = seq + 1 WHERE id = ?",
                         [json.dumps(job, ensure_ascii=False), jid])

    def _state(self, conn, jid: str, session: str | None) -> str:
        row = conn.execute("SELECT state, session FROM jobs WHERE id = ?", [jid]).fetchone()
        if row is None or (session is not None and row[1] != session):
            raise UnknownJob(f"no queued job {jid!r}; see `python -m studio queue list`")
        if row[0] in FINISHED:
            raise JobFinished(f"job {jid} already finished ({row[0]}); there is nothing to change")
        return row[0]

    def _waiting(self, conn, jid: str, session: str | None) -> None:
        if self._state(conn, jid, session) != "queued":
            raise JobFinished(f"job {jid} is already running; only a waiting job can be moved or changed")

    # ---- reading --------------------------------------------------------------------------
    @staticmethod
    def _decode(row: dict) -> dict:
        row = dict(row)
        for key in ("job", "plan", "result_ids"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        return row

    def get(self, jid: str) -> dict | None:
        with self._lock:
            rows = list(self.db["jobs"].rows_where("id = ?", [jid]))
        return self._decode(rows[0]) if rows else None

    @staticmethod
    def _where(session: str | None, states: tuple[str, ...]) -> tuple[str, list]:
        where, args = f"state IN ({', '.join('?' for _ in states)})", list(states)
        if session is not None:
            where, args = where + " AND session = ?", args + [session]
        return where, args

    def count(self, session: str | None = None, states: tuple[str, ...] = STATES) -> dict[str, int]:
        """How many jobs ``list`` would page through, by state."""
        where, args = self._where(session, states)
        with self._lock:
            rows = self.db.execute(f"SELECT state, count(*) FROM jobs WHERE {where} GROUP BY state", args).fetchall()
        return dict(rows)

    def list(self, session: str | None = None, states: tuple[str, ...] = STATES, limit: int = 200,
             offset: int = 0) -> list[dict]:
        """Jobs in run order (running, then waiting by position, then the newest finished), each with its
        ``position``: 1 for the next to run, 0 for running and finished ones. ``offset``: skip that many first
        (a later page: positions still count from the head of the queue)."""
        where, args = self._where(session, states)
        order = ("CASE state WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, "
                 "CASE WHEN state = 'queued' THEN position END, finished_at DESC, rowid")
        offset = max(0, int(offset))
        with self._lock:
            rows = [self._decode(r) for r in self.db["jobs"].rows_where(where, args, order_by=order,
                                                                        limit=max(0, int(limit)), offset=offset)]
        waiting = 0
        if offset:  # the queued rows on the pages before this one
            counts = self.count(session, states)
            waiting = max(0, min(offset - counts.get("running", 0), counts.get("queued", 0)))
        for row in rows:
            row["order"], row["position"] = row["position"], 0
            if row["state"] == "queued":
                waiting += 1
                row["position"] = waiting
        return rows

    def place(self, jid: str) -> tuple[int, int] | None:
        """(position among the waiting jobs, 1 = next; how many wait) for a queued job; None once it runs."""
        with self._lock:
            row = self.db.execute(
                "SELECT (SELECT count(*) FROM jobs AS o WHERE o.state = 'queued' AND (o.position < j.position OR "
                "(o.position = j.position AND o.rowid <= j.rowid))), (SELECT count(*) FROM jobs WHERE state = "
                "'queued') FROM jobs AS j WHERE j.id = ? AND j.state = 'queued'", [jid]).fetchone()
        return (row[0], row[1]) if row else None

    def places(self, jids) -> dict[str, dict]:
        """For each of ``jids`` still in the table: its ``state``, ``error`` and ``place`` ((position among the
        waiting jobs, 1 = next; how many wait) while queued, else None). Two queries however many are asked: the
        waiting jobs in order once (the (state, position) index), and the asked jobs by id; O(waiting + asked)."""
        with self._lock:
            waiting = self.db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY position, rowid").fetchall()
            rows = self.db.execute("SELECT id, state, error FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
                                   [json.dumps(list(jids))]).fetchall()
        place = {jid: i for i, (jid,) in enumerate(waiting, 1)}
        return {jid: {"state": state, "error": error,
                      "place": (place[jid], len(waiting)) if state == "queued" and jid in place else None}
                for jid, state, error in rows}

    def waiting(self, except_batch: str | None = None) -> int:
        """How many jobs wait to run (the number the queue caps look at); ``except_batch``: leave out a storyboard
        batch's own shots (a board of 12 shots is one user's batch, not a crowd to cap for), or a sweep's own
        renders (its id)."""
        with self._lock:
            return self.db.execute(
                "SELECT count(*) FROM jobs WHERE state = 'queued' AND "
                "coalesce(json_extract(job, '$.board.batch'), json_extract(job, '$.sweep.id'), '') != "
                "coalesce(?, '-')", [except_batch]).fetchone()[0]

    def prune(self, keep: int = KEEP_FINISHED) -> int:
        """Delete the finished jobs older than the newest ``keep``."""
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND id NOT IN (SELECT id FROM jobs "
                "WHERE state IN ('done', 'failed', 'cancelled') ORDER BY finished_at DESC LIMIT ?)", [keep]).rowcount
