"""QueueStore: the render queue, one row per job in ``history.db`` (table ``jobs``, migration 6).

A job is a render job as studio/jobs.py builds it (``{"request", "preview", "compare", "policy", "gif"}``), with
where it came from (``source``: create, compare, storyboard, extend, cli), its Space ``session``, and its state:

    queued -> running -> done | failed | cancelled        (queued -> cancelled directly)
    running -> queued                                      (only crash recovery: ``requeue_running``)

Each change is one transaction on the history's connection (its lock, and BEGIN IMMEDIATE against other
processes), and bumps ``seq`` so a view can tell what changed. A finished job never changes again: every update
says which states it may come from in its WHERE clause. Jobs run lowest ``position`` first.
Standard library and sqlite only: ``queue list`` imports no torch.
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager

from .errors import StudioError
from .history import HistoryStore, new_id, utc_now

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
SOURCES = ("create", "compare", "storyboard", "extend", "cli")
KEEP_FINISHED = 500  # finished jobs kept for the record; older ones are pruned


def _alive_here(claimed_by: str | None) -> bool:
    """True if ``claimed_by`` ("local:HOST:PID", a dispatcher's name) is a live process on this machine."""
    kind, _, rest = (claimed_by or "").partition(":")
    host, _, pid = rest.rpartition(":")
    if kind != "local" or host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with that pid: not ours, so ours is gone
        return False
    return True


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

    @contextmanager
    def _write(self):
        """One write transaction: the thread lock, then SQLite's write lock taken first (BEGIN IMMEDIATE)."""
        with self._lock:
            self.db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db.conn
                self.db.conn.execute("COMMIT")
            except BaseException:
                self.db.conn.execute("ROLLBACK")
                raise

    # ---- adding and claiming ----------------------------------------------------------
    def add(self, job: dict, *, source: str = "cli", session: str | None = None, plan: dict | None = None,
            kind: str = "render", after: str | None = None) -> str:
        """A job at the end of the queue; its id. ``after``: a job it waits for (it runs once that one finished)."""
        if source not in SOURCES:
            raise StudioError(f"unknown job source {source!r} (one of {', '.join(SOURCES)})")
        jid = new_id()
        with self._write() as conn:
            (last,) = conn.execute("SELECT coalesce(max(position), 0) FROM jobs").fetchone()
            conn.execute(
                "INSERT INTO jobs (id, kind, request, plan, policy, position, session, source, state, attempts, "
                "result_ids, cancel_requested, seq, created_at, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, "
                "'[]', 0, 1, ?, ?)",
                [jid, kind, json.dumps(job, ensure_ascii=False), json.dumps(plan) if plan else None,
                 job.get("policy"), last + 1, session, source, utc_now(), after])
        return jid

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
                "UPDATE jobs SET state = ?, error = ?, result_ids = ?, finished_at = ?, seq = seq + 1 "
                "WHERE id = ? AND state = 'running'", [state, error, json.dumps(list(result_ids)), utc_now(), jid])
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

    def requeue_running(self) -> int:
        """Crash recovery (the folder's owner, at start-up): jobs a dead process left running wait again. A job
        that a live process on this machine runs (a command-line render beside the owner) is left to it."""
        with self._write() as conn:
            rows = conn.execute("SELECT id, claimed_by FROM jobs WHERE state = 'running'").fetchall()
            dead = [jid for jid, by in rows if not _alive_here(by)]
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
            (text,) = conn.execute("SELECT request FROM jobs WHERE id = ?", [jid]).fetchone()
            job = json.loads(text)
            if job.get("compare"):
                raise StudioError(f"job {jid} compares the budgets {job['compare']}; it has no one step budget to "
                                  "change (cancel it and queue the comparison you want)")
            job["request"] = dict(job.get("request") or {}, steps=steps)
            job["policy"] = None  # the user's budget now, not the policy's
            conn.execute("UPDATE jobs SET request = ?, policy = NULL, seq = seq + 1 WHERE id = ?",
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
        for key in ("request", "plan", "result_ids"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        return row

    def get(self, jid: str) -> dict | None:
        with self._lock:
            rows = list(self.db["jobs"].rows_where("id = ?", [jid]))
        return self._decode(rows[0]) if rows else None

    def list(self, session: str | None = None, states: tuple[str, ...] = STATES, limit: int = 200) -> list[dict]:
        """Jobs in run order (running, then waiting by position, then the newest finished), each with its
        ``position``: 1 for the next to run, 0 for running and finished ones."""
        marks = ", ".join("?" for _ in states)
        where, args = f"state IN ({marks})", list(states)
        if session is not None:
            where, args = where + " AND session = ?", args + [session]
        order = ("CASE state WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, "
                 "CASE WHEN state = 'queued' THEN position END, finished_at DESC, rowid")
        with self._lock:
            rows = [self._decode(r) for r in self.db["jobs"].rows_where(where, args, order_by=order, limit=limit)]
        waiting = 0
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

    def waiting(self, except_batch: str | None = None) -> int:
        """How many jobs wait to run (the number the queue caps look at); ``except_batch``: leave out a storyboard
        batch's own shots (a board of 12 shots is one user's batch, not a crowd to cap for)."""
        with self._lock:
            return self.db.execute(
                "SELECT count(*) FROM jobs WHERE state = 'queued' AND "
                "coalesce(json_extract(request, '$.board.batch'), '') != coalesce(?, '-')", [except_batch]).fetchone()[0]

    def prune(self, keep: int = KEEP_FINISHED) -> int:
        """Delete the finished jobs older than the newest ``keep``."""
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND id NOT IN (SELECT id FROM jobs "
                "WHERE state IN ('done', 'failed', 'cancelled') ORDER BY finished_at DESC LIMIT ?)", [keep]).rowcount
