"""Dispatcher: the thread in the owning studio process that runs the queue's jobs, one at a time, in order.

    dispatcher = Dispatcher(studio)          # nothing runs yet
    dispatcher.start()                       # the thread: claim, render, finish, until stop()
    jid = dispatcher.submit(job, source="create", session=None)
    for event in dispatcher.follow(jid):     # that job's engine events, as they happen
        ...
    dispatcher.run_pending()                 # or, with no thread (`queue run`): every queued job, then return

A job runs through ``engine.render`` with ``waiting=`` the number of jobs still queued, so the queue-aware caps
count the real queue. The executor (``engine.executor``: None = in this process) is the engine's business.
Cancel: a queued job is cancelled in the store at once; a running one through its cancel event, set here or, from
another process, through the store's ``cancel_requested`` flag (a SQLite query), read at the first progress event
and then at most every CANCEL_CHECK_S.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from typing import Callable, Iterator

from .errors import StudioError
from .queue_store import FINISHED, QueueStore

log = logging.getLogger(__name__)
POLL_S = 1.0  # the thread looks at the queue at least this often (jobs added by another process)
CANCEL_CHECK_S = 0.5  # a running job reads the store's cancel flag at most this often
_END = object()


class Dispatcher:
    def __init__(self, studio, store: QueueStore | None = None):
        self.studio = studio
        self.store = store or QueueStore(studio.history)
        self.worker = f"local:{socket.gethostname()}:{os.getpid()}"
        self.progress: dict[str, float] = {}  # running job -> fraction done
        self._lock = threading.Lock()
        self._listeners: dict[str, list[Callable]] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the thread -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            for cancel in self._cancels.values():
                cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_next()
            except Exception:  # a bug: keep the queue alive, say what happened
                log.exception("dispatcher failed on a job")
                ran = None
            if ran is None:
                self._wake.wait(POLL_S)
                self._wake.clear()

    def run_pending(self) -> list[dict]:
        """Run every queued job here, in order, until none waits; the finished jobs."""
        done = []
        while (job := self.run_next()) is not None:
            done.append(job)
        return done

    # ---- jobs ---------------------------------------------------------------------------------
    def submit(self, job: dict, *, source: str, session: str | None = None, plan: dict | None = None) -> str:
        jid = self.store.add(job, source=source, session=session, plan=plan)
        self._wake.set()
        return jid

    def cancel(self, jid: str, session: str | None = None) -> str:
        outcome = self.store.cancel(jid, session)
        with self._lock:
            if jid in self._cancels:
                self._cancels[jid].set()
        if outcome == "cancelled":
            self._close(jid)
        return outcome

    def run_next(self) -> dict | None:
        """Claim the next job and run it to the end; the finished job, None when none waited."""
        row = self.store.claim(self.worker)
        if row is None:
            return None
        cancel = threading.Event()
        with self._lock:
            self._cancels[row["id"]] = cancel
        try:
            state, error, ids = self._run(row, cancel)
            if state == "cancelled" and self._stop.is_set():
                self.store.requeue(row["id"])  # stopped with the studio, not by the user: it runs after a restart
            else:
                self.store.finish(row["id"], state, error=error, result_ids=ids)
        finally:
            with self._lock:
                self._cancels.pop(row["id"], None)
            self.progress.pop(row["id"], None)
            self._close(row["id"])
        return self.store.get(row["id"]) or dict(row, state=state, error=error, result_ids=ids)

    def _run(self, row: dict, cancel: threading.Event) -> tuple[str, str | None, list[str]]:
        """Render the job; (state, error, history ids of its results)."""
        from . import jobs
        from .events import Cancelled, Failed, Progress, Result

        job, ids, checked = row["request"], [], None
        try:
            req, plan, _ = jobs._plan(self.studio, job)
            self.store.set_plan(row["id"], {"kind": plan.kind, "budgets": list(plan.budgets)})
            events = self.studio.engine.render(req, plan, cancel, policy=job.get("policy"),
                                               waiting=self.store.waiting(), session=row.get("session"))
            for event in events:
                self._emit(row["id"], event)
                if isinstance(event, Progress):
                    self.progress[row["id"]] = event.fraction
                    now = time.monotonic()
                    if checked is None or now - checked >= CANCEL_CHECK_S:
                        checked = now
                        if self.store.cancel_requested(row["id"]):
                            cancel.set()
                elif isinstance(event, Result):
                    ids.append(event.record_id)
                elif isinstance(event, Failed):
                    return "failed", event.message, ids
                elif isinstance(event, Cancelled):
                    return "cancelled", event.message, ids
        except (StudioError, TypeError) as exc:  # refused before it ran: bad or vanished input
            return "failed", str(exc), ids
        except Exception as exc:  # a bug or a broken executor: the job must not stay "running"
            log.exception("job %s failed", row["id"])
            return "failed", f"Render failed: {type(exc).__name__}: {exc}", ids
        return "done", None, ids

    # ---- listeners ----------------------------------------------------------------------------
    def follow(self, jid: str) -> Iterator:
        """The job's engine events from this call until it finishes (nothing if it already has). Listening starts
        here, not at the first ``next``: no event in between is missed."""
        events: queue.Queue = queue.Queue()
        with self._lock:
            self._listeners.setdefault(jid, []).append(events.put)
        job = self.store.get(jid)
        if job is None or job["state"] in FINISHED:
            events.put(_END)
        return self._drain(jid, events)

    def _drain(self, jid: str, events: queue.Queue) -> Iterator:
        try:
            while (event := events.get()) is not _END:
                yield event
        finally:
            with self._lock:
                listeners = self._listeners.get(jid, [])
                if events.put in listeners:
                    listeners.remove(events.put)

    def _emit(self, jid: str, event) -> None:
        with self._lock:
            listeners = list(self._listeners.get(jid, ()))
        for put in listeners:
            put(event)

    def _close(self, jid: str) -> None:
        with self._lock:
            listeners = self._listeners.pop(jid, [])
        for put in listeners:
            put(_END)
