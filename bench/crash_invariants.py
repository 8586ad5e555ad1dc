"""The invariants bench/crash.py checks after each trial (and tests/test_crash_harness.py after its short run).

    violations = check(data_dir, cancelled={job ids the user cancelled}, stars={history ids starred})

Each violation is one line saying what broke. Read-only: plain sqlite3 on the folder's ``history.db`` (no studio
running), no torch.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

FINISHED = ("done", "failed", "cancelled")


def check(data_dir: str | Path, cancelled: set[str] = frozenset(), stars: set[str] = frozenset()) -> list[str]:
    """Every violation found in the data folder, one line each (empty: all invariants hold)."""
    path = Path(data_dir) / "history.db"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        out = [f"integrity_check: {r[0]}" for r in db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        jobs = [dict(r) for r in db.execute("SELECT * FROM jobs")]
        renders = [dict(r) for r in db.execute("SELECT * FROM renders")]
        out += _jobs_end_once(jobs, cancelled)
        out += _one_row_per_budget(jobs, renders)
        out += _files_and_stars(renders, stars)
        out += _shots(db, renders)
        out += _extensions(jobs, renders)
    finally:
        db.close()
    return out


def _jobs_end_once(jobs: list[dict], cancelled: set[str]) -> list[str]:
    out = []
    for job in jobs:
        jid, state = job["id"], job["state"]
        if state not in FINISHED:
            out.append(f"job {jid}: still {state}")
        elif not job["finished_at"]:
            out.append(f"job {jid}: {state} with no finished_at")
        elif state == "failed" and not job["error"]:
            out.append(f"job {jid}: failed with no message")
        elif state == "cancelled" and jid not in cancelled:
            out.append(f"job {jid}: cancelled, but no user cancelled it ({job['error']})")
    return out


def _one_row_per_budget(jobs: list[dict], renders: list[dict]) -> list[str]:
    out, seen = [], {}
    ids = {job["id"] for job in jobs}
    for row in renders:
        if row["plan_id"] in ids:
            seen.setdefault((row["plan_id"], row["budget_index"]), []).append(row)
    for (jid, budget), rows in sorted(seen.items()):
        if len(rows) > 1:
            out.append(f"job {jid} budget {budget}: {len(rows)} history rows ({', '.join(r['status'] for r in rows)})")
    for job in jobs:
        plan = json.loads(job["plan"]) if job["plan"] else {}
        if job["state"] == "done":
            for budget in range(len(plan.get("budgets") or ())):
                rows = seen.get((job["id"], budget), [])
                if not any(r["status"] == "ok" for r in rows):
                    out.append(f"job {job['id']} done, but budget {budget} has no ok row")
    for row in renders:
        if row["status"] == "running":
            out.append(f"render {row['id']}: still running")
    return out


def _files_and_stars(renders: list[dict], stars: set[str]) -> list[str]:
    out = []
    by_id = {row["id"]: row for row in renders}
    for row in renders:
        if row["status"] == "ok" and not (row["video_path"] and Path(row["video_path"]).is_file()):
            out.append(f"render {row['id']}: ok, but its file is gone ({row['video_path']})")
    for rid in sorted(stars):
        row = by_id.get(rid)
        if row is None:
            out.append(f"starred render {rid}: its row is gone")
        elif not row["accepted"]:
            out.append(f"starred render {rid}: lost its star")
        elif row["status"] != "ok" or not (row["video_path"] and Path(row["video_path"]).is_file()):
            out.append(f"starred render {rid}: {row['status']}, its file is gone")
    return out


def _shots(db, renders: list[dict]) -> list[str]:
    """Each shot holds, at each stage, a render of what the shot says now (prompt, seed; a ``revision`` once
    shots carry one), with its file; and no shot was rendered twice at a stage by separate jobs."""
    out = []
    by_id = {row["id"]: row for row in renders}
    columns = {r[1] for r in db.execute("PRAGMA table_info(shots)")}
    for shot in (dict(r) for r in db.execute("SELECT * FROM shots")):
        for stage in ("preview", "final"):
            rid = shot.get(f"{stage}_id")
            if not rid:
                continue
            row = by_id.get(rid)
            if row is None or row["status"] != "ok":
                out.append(f"shot {shot['id']} {stage}: holds {rid}, which is {row['status'] if row else 'gone'}")
                continue
            request = json.loads(row["request"] or "{}")
            if request.get("prompt") != shot["prompt"] or (shot.get("seed") is not None and
                                                           request.get("seed") != shot["seed"]):
                out.append(f"shot {shot['id']} {stage}: holds a render of another revision ({request.get('prompt')!r})")
            if "revision" in columns and request.get("revision") not in (None, shot["revision"]):
                out.append(f"shot {shot['id']} {stage}: holds revision {request.get('revision')}, "
                           f"the shot is at {shot['revision']}")
    return out + _shots_rendered_twice(db)


def _shots_rendered_twice(db) -> list[str]:
    col = _job_column(db)
    counts = db.execute(
        f"SELECT json_extract({col}, '$.board.shot'), json_extract({col}, '$.board.stage'), count(*) FROM jobs "
        f"WHERE json_extract({col}, '$.board.shot') IS NOT NULL AND state = 'done' GROUP BY 1, 2").fetchall()
    return [f"shot {shot} {stage}: rendered by {n} jobs" for shot, stage, n in counts if n > 1]


def _job_column(db) -> str:
    """The jobs table's column holding the whole job: ``job`` (typed jobs), ``request`` before them."""
    return "job" if "job" in {r[1] for r in db.execute("PRAGMA table_info(jobs)")} else "request"


def _source_video(spec: dict, by_id: dict) -> str | None:
    """The file an extension continued: the copy its job owns (typed jobs), else its source row's video."""
    for ref in (spec.get("source"), spec.get("origin"), spec.get("id")):
        if isinstance(ref, str) and ref in by_id:
            return by_id[ref]["video_path"]
        if isinstance(ref, str) and Path(ref).is_file():
            return ref
    return None


def _extensions(jobs: list[dict], renders: list[dict]) -> list[str]:
    """A joined extension starts with its source's frames (the first frame of both clips agree)."""
    out = []
    by_id = {row["id"]: row for row in renders}
    for job in jobs:
        spec = json.loads(job.get("job") or job.get("request") or "{}").get("extend") if job["state"] == "done" \
            else None
        if not isinstance(spec, dict):
            continue
        source = _source_video(spec, by_id)  # the job's own copy of the frames it continues, or the original's file
        for rid in json.loads(job["result_ids"] or "[]"):
            row = by_id.get(rid)
            if source is None or row is None:
                out.append(f"extension job {job['id']}: its source or its result is gone")
            elif not _starts_with(row["video_path"], source):
                out.append(f"extension {rid}: does not start with its source {source}'s frames")
    return out


def _starts_with(joined: str | None, source: str | None) -> bool:
    try:
        from studio.engine import media

        a, _ = media.read_video(joined)
        b, _ = media.read_video(source)
    except Exception:  # unreadable: not a joined clip of that source
        return False
    n = len(b)
    return len(a) >= n and float(abs(a[:n].astype(int) - b.astype(int)).mean()) < 8.0
