"""`python -m studio queue add | list | cancel | run`: the persistent render queue from the command line.

    queue add [render flags]   a render job into the queue; prints its id. A studio that owns the data folder
                               takes it (owner API: it checks it and its dispatcher runs it); else it waits in the
                               folder's database for `queue run` (or the next studio to start)
    queue list [--json]        each job's id, state, position (1 = next to run; 0 running or finished): no torch;
      [--offset N --limit M]   a page of them (200 by default); says how many it left out and how to see them
    queue cancel ID            a waiting job at once; a running one within a step (wherever it runs); sent to the
                               owning studio when one runs
    queue run [--farm ray ...] every queued job in this process (one per farm worker at once with --farm ray), then
                               exit 0, or 2 with a summary of the failed ones; refused while a studio owns the
                               folder (its dispatcher runs the queue)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EXIT_USER_ERROR, FolderOwned, StudioError

LIST_LIMIT = 200


def add_parser(sub, common, render_flags) -> None:
    q = sub.add_parser("queue", help="the render queue: add, list, cancel, run")
    qsub = q.add_subparsers(dest="queue_command", required=True)
    add = qsub.add_parser("add", help="add a render job (every `render` flag); prints its id")
    common(add)
    render_flags(add)
    ls = qsub.add_parser("list", help="the jobs: id, state, position")
    common(ls)
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--limit", type=_count, default=LIST_LIMIT, help=f"print at most this many (default {LIST_LIMIT})")
    ls.add_argument("--offset", type=_count, default=0, help="skip this many first (the next page)")
    cancel = qsub.add_parser("cancel", help="cancel a job by id")
    common(cancel)
    cancel.add_argument("id")
    run_ = qsub.add_parser("run", help="run every queued job here, then exit")
    common(run_)
    run_.add_argument("--quiet", action="store_true")


def run(args, open_studio) -> int:
    commands = {"add": _add, "list": _list, "cancel": _cancel, "run": _run}
    return commands[args.queue_command](args, open_studio)


def _store(args):
    """(history, queue store) on the folder's database alone: no models, no torch."""
    from ..config import Settings
    from ..store.history import HistoryStore
    from ..store.queue import QueueStore

    history = HistoryStore(Settings.from_env(data_dir=args.data_dir).history_path)
    return history, QueueStore(history)


def _data_dir(args) -> Path:
    from ..config import Settings

    return Settings.from_env(data_dir=args.data_dir).data_dir


def _add(args, _open) -> int:
    from ..app import owner_client
    from .render_jobs import attach_inputs, render_job

    if args.extend:
        raise StudioError("--extend is not queued yet: run `python -m studio render --extend ...`")
    job = render_job(args)
    owner = owner_client.find_studio(_data_dir(args))
    if owner is not None:
        for event in owner_client.send(owner, "queue-add", attach_inputs(job, owner_client.upload_limit_mb(owner))):
            if event.get("type") == "error":
                raise StudioError(event["message"])
            print(event["id"])
        return 0
    job["request"] = {k: (str(Path(v).resolve()) if k in ("image", "video") and v else v)
                      for k, v in job["request"].items()}
    from ..jobs.following import render_job
    from ..store.queue import QueueStore
    from ..app.services import Studio

    # checked as `render` checks it (model, sizes, files), its seed pinned for a re-run; the folder is not claimed
    studio = Studio.open(data_dir=args.data_dir, default_model=None, models_file=args.models_file)
    try:
        typed = render_job(job)
        req, plan, _ = typed.plan(studio)
        typed.pin_seed(req.seed)  # a re-run renders the seed it was queued with
        print(QueueStore(studio.history).add(typed.to_json(), source="cli", kind=typed.name,
                                             plan={"kind": plan.kind, "budgets": list(plan.budgets)}))
    finally:
        studio.close()
    return 0


def _list(args, _open) -> int:
    history, store = _store(args)
    try:
        jobs = store.list(limit=args.limit, offset=args.offset)
        total = sum(store.count().values())
    finally:
        history.close()
    if args.json:
        keys = ("id", "state", "position", "source", "attempts", "worker", "progress", "error", "result_ids",
                "created_at")
        print(json.dumps([{k: j[k] for k in keys} | {"prompt": (j["job"].get("request") or {}).get("prompt")}
                          for j in jobs], indent=2, ensure_ascii=False))
        return 0
    if not jobs:
        print("the queue is empty", file=sys.stderr)
    for j in jobs:
        req = j["job"].get("request") or {}
        where = f"#{j['position']}" if j["position"] else "  "
        print(f"{j['id']}  {j['state']:<9} {where:>4} {j['source']:<10} {req.get('steps') or '-':>3} steps  "
              f"{str(req.get('prompt'))[:60]!r}" + (f"  error: {j['error']}" if j.get("error") else ""))
    if total > len(jobs):
        print(_page_note(total, args.offset, len(jobs), args.limit), file=sys.stderr)
    return 0


def _page_note(total: int, offset: int, shown: int, limit: int) -> str:
    """What `queue list` left out, and the flags that show it."""
    first, last = (offset + 1, offset + shown) if shown else (0, 0)
    note = f"{total - shown} of {total} jobs not printed (shown: {first}-{last})."
    if offset + shown < total:
        note += f" Next page: --offset {offset + shown} --limit {limit}."
    return note


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _cancel(args, _open) -> int:
    """A running studio that owns the folder cancels the job itself; with none, the flag goes into the database."""
    from ..app import owner_client

    owner = owner_client.find_studio(_data_dir(args))
    if owner is not None:
        for event in owner_client.send(owner, "queue-cancel", {"id": args.id}):
            if event.get("type") == "error":
                raise StudioError(event["message"])
            print(f"{args.id}: {event['outcome']}")
        return 0
    history, store = _store(args)
    try:
        outcome = store.cancel(args.id)
    finally:
        history.close()
    print(f"{args.id}: {outcome}")
    return 0


def _run(args, open_studio) -> int:
    from ..app import owner_client
    from ..jobs.dispatcher import Dispatcher

    owner = owner_client.find_studio(_data_dir(args))
    if owner is not None:
        raise FolderOwned(f"the studio at {owner.url} (pid {owner.pid}) owns {_data_dir(args)} and runs its queue "
                          "itself; `queue add` sends jobs to it, `queue list` shows how they stand")
    studio = open_studio(args)  # with --farm ray: jobs run on the Ray workers, one per worker at once
    try:
        if not studio.owns_data_folder:
            raise FolderOwned(f"another command owns {_data_dir(args)}; its queue runs there (or after it ends)")
        finished = Dispatcher(studio).run_pending()
    finally:
        studio.close()
    failed = [j for j in finished if j["state"] != "done"]
    for j in finished:
        print(f"{j['id']}  {j['state']}" + (f"  {j['error']}" if j.get("error") else ""))
    if not finished:
        print("no queued jobs", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} of {len(finished)} job(s) did not finish: "
              + "; ".join(f"{j['id']} {j['state']}: {j['error']}" for j in failed), file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
