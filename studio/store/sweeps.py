"""SweepStore: sweeps and the renders they ask for, in the studio database (tables ``sweeps``, ``sweep_items``).

A sweep is a record: its spec (prompts, budgets, seeds, models, mode) and a status. Each render it asks for
(prompt x seed x model x budget) is an item: the queued job that renders it (``job_id``, set by sweep_jobs.py),
the history row it became (``render_id``), the metrics measured from its frames (JSON), the small copy of its
frames that convergence and the grid use (``signature``, an .npz file), and the blind review's verdict
(``review``: 1 accepted, 0 rejected, NULL not yet). ``review_rank`` is the random order the Review view shows
the clips in, drawn once when the sweep is made. Shares ``history.db``'s connection and lock (like boards).
"""

from __future__ import annotations

import json
import random
import secrets

from ..errors import StudioError
from .history import HistoryStore, new_id, utc_now

SWEEP_STATES = ("running", "done", "incomplete", "cancelled")


class UnknownSweep(StudioError):
    """No such sweep."""


def _decode_item(row: dict) -> dict:
    row = dict(row)
    for key in ("metrics", "timings"):
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                row[key] = None
    return row


class SweepStore:
    def __init__(self, history: HistoryStore):
        self.history = history
        self.db = history.db
        self._lock = history.lock

    # ---- writing ------------------------------------------------------------------------
    def create(self, spec: dict, *, source: str = "cli", session: str | None = None) -> str:
        """A new sweep and its items (prompt-major, then seed, model, budget); its id."""
        sid = "sw-" + new_id()
        items = []
        for p, _ in enumerate(spec["prompts"]):
            for k, seed in enumerate(spec["seeds"]):
                for model in spec["models"]:
                    for steps in spec["budgets"]:
                        items.append({"prompt_index": p, "seed_index": k, "seed": seed, "model": model,
                                      "steps": steps})
        ranks = list(range(len(items)))
        random.SystemRandom().shuffle(ranks)
        # item ids are random: one that counted up would tell a blind reviewer the budget (position order)
        rows = [dict(item, id=f"{sid}-{secrets.token_hex(5)}", sweep_id=sid, position=n, review_rank=ranks[n])
                for n, item in enumerate(items)]
        with self._lock, self.db.conn:
            self.db["sweeps"].insert({"id": sid, "name": spec.get("name") or sid, "status": "running",
                                      "spec": json.dumps(spec, ensure_ascii=False), "source": source,
                                      "session": session, "created_at": utc_now()})
            self.db["sweep_items"].insert_all(rows)
        return sid

    def _update_item(self, item_id: str, values: dict) -> None:
        with self._lock, self.db.conn:
            self.db["sweep_items"].update(item_id, values)

    def set_job(self, item_id: str, job_id: str) -> None:
        self._update_item(item_id, {"job_id": job_id})

    def set_result(self, item_id: str, render_id: str, metrics: dict, signature: str | None) -> None:
        self._update_item(item_id, {"render_id": render_id, "metrics": json.dumps(metrics), "signature": signature})

    def set_review(self, item_id: str, accepted: bool | None) -> None:
        self._update_item(item_id, {"review": None if accepted is None else int(bool(accepted)),
                                    "reviewed_at": None if accepted is None else utc_now()})

    def set_blind(self, item_id: str, path: str) -> None:
        self._update_item(item_id, {"blind": path})

    def set_status(self, sid: str, status: str) -> None:
        if status not in SWEEP_STATES:
            raise ValueError(f"unknown sweep status {status}")
        finished = None if status == "running" else utc_now()
        with self._lock, self.db.conn:
            self.db["sweeps"].update(sid, {"status": status, "finished_at": finished})

    # ---- reading ------------------------------------------------------------------------
    def get(self, sid: str) -> dict:
        """The sweep record with its spec decoded; UnknownSweep for an id that is not one."""
        with self._lock:
            rows = list(self.db["sweeps"].rows_where("id = ?", [str(sid)]))
        if not rows:
            raise UnknownSweep(f"no sweep {str(sid)[:80]!r}; see `python -m studio sweep list`")
        row = dict(rows[0])
        row["spec"] = json.loads(row["spec"])
        return row

    def list(self, limit: int = 50) -> list[dict]:
        with self._lock:
            rows = self.db.execute(
                "SELECT s.id, s.name, s.status, s.created_at, s.finished_at, count(i.id), count(i.render_id), "
                "count(i.review) FROM sweeps s LEFT JOIN sweep_items i ON i.sweep_id = s.id GROUP BY s.id "
                "ORDER BY s.created_at DESC, s.rowid DESC LIMIT ?", [int(limit)]).fetchall()
        keys = ("id", "name", "status", "created_at", "finished_at", "items", "rendered", "reviewed")
        return [dict(zip(keys, r)) for r in rows]

    def items(self, sid: str) -> list[dict]:
        """Every item of a sweep in position order, with its render's status, timings, seconds and files and its
        job's state (None where there is none, or the job was pruned)."""
        with self._lock:
            cursor = self.db.execute(
                "SELECT i.*, r.status AS render_status, r.timings AS timings, r.total_seconds AS seconds, "
                "r.video_path AS video_path, r.thumb_path AS thumb_path, j.state AS job_state "
                "FROM sweep_items i LEFT JOIN renders r ON r.id = i.render_id "
                "LEFT JOIN jobs j ON j.id = i.job_id WHERE i.sweep_id = ? ORDER BY i.position", [str(sid)])
            names = [d[0] for d in cursor.description]
            return [_decode_item(dict(zip(names, row))) for row in cursor.fetchall()]

    def item(self, item_id: str) -> dict | None:
        with self._lock:
            rows = list(self.db["sweep_items"].rows_where("id = ?", [str(item_id)]))
        return _decode_item(rows[0]) if rows else None

    def item_of_job(self, job_id: str) -> dict | None:
        with self._lock:
            rows = list(self.db["sweep_items"].rows_where("job_id = ?", [str(job_id)], limit=1))
        return _decode_item(rows[0]) if rows else None

    def unmeasured(self, sid: str) -> list[tuple[str, str]]:
        """(item id, render id) of items whose job finished a render that was never measured (the studio died
        between the render's row and its metrics): their metrics are measured again from the file."""
        with self._lock:
            return [tuple(r) for r in self.db.execute(
                "SELECT i.id, r.id FROM sweep_items i JOIN renders r ON r.plan_id = i.job_id AND r.status = 'ok' "
                "WHERE i.sweep_id = ? AND i.render_id IS NULL", [str(sid)]).fetchall()]
