"""Dispatcher: the threads in the studio process that run the queue's jobs, as many at once as it has slots.

    dispatcher = Dispatcher(studio)          # nothing runs yet
    dispatcher.start()                       # the thread: claim jobs while a slot is free, each on its own thread
    stream = JobStream(dispatcher, cancel)   # follow jobs from their first event:
    jid = stream.submit(job, source="create")
    for jid, event in stream:                # the engine events of every job in the stream, as they happen
        ...
    dispatcher.run_pending()                 # or, with no thread (`queue run`): every queued job, then return

Slots: ``slots`` if given (the app's --concurrency), else one per farm worker (``engine.executor.slots()``,
which grows when a node joins), else 1. Every render the studio runs is a job: Create and Compare (ui/session.py), a
storyboard's shots (board_runner.py), the CLI (jobs.py). A job runs through ``engine.render`` with ``waiting=`` the
number of jobs still queued, so the queue-aware caps count the real queue, and with ``plan_id=`` its own id, so a
job run again after a crash or a stop takes its history rows back instead of adding new ones.
Cancel: a queued job is cancelled in the store at once; a running one through its own cancel event, set here
(``cancel``, which a follower's Cancel calls, or ``stop``) or, from another process, through the store's
``cancel_requested`` flag, which a watcher reads every CANCEL_CHECK_S while the job runs.
A job runs in a copy of its submitter's context variables (in the app: Gradio's request), so on a ZeroGPU Space
``spaces.GPU`` charges the visitor who pressed Render, as if the render ran in their event handler.
``own_only``: a dispatcher that claims only the jobs submitted to it (a script or a standalone CLI run owns the
folder but does not run the jobs other commands queued there: `queue run` or the next studio does).
Jobs are typed (job_kind.py): the dispatcher knows only that interface and a registry of kinds (``kinds``, default
job_kinds.KINDS). A job run again keeps the budgets an earlier run finished (``on_kept``) and renders the others.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from . import kind as job_kind
from ..store import liveness
from ..errors import DiskFull, StudioError, internal_error
from ..engine.events import Cancelled, Failed, Progress, Requeued, Result, Status, Waiting
from .kinds import KINDS
from ..store.queue import FINISHED, QueueStore

log = logging.getLogger(__name__)
finished_log = logging.getLogger("studio.renders")  # one line per finished render; app.py prints it on the console
POLL_S = 1.0  # the thread looks at the queue at least this often (jobs added by another process)
CANCEL_CHECK_S = 0.5  # a running job reads the store's cancel flag (and writes its progress) at most this often
SWEEP_S = 30.0  # the owner's dispatcher looks for work of dead processes (jobs, rows) this often
FOLLOW_POLL_S = 0.05  # a follower's Cancel reaches its jobs within this
FULL_RETRY_S = 2.0  # on a full disk, a job's end is written again this often until it fits
PLACE_S = 1.0  # a follower looks up the place of its waiting jobs at most this often (Waiting events)
_END = object()


class Dispatcher:
    def __init__(self, studio, store: QueueStore | None = None, *, slots: int | None = None,
                 own_only: bool = False, sweep=None, kinds: dict | None = None):
        self.studio = studio
        self.store = store or QueueStore(studio.history)
        self.kinds = KINDS if kinds is None else kinds
        self.worker = liveness.identity()  # what claims its jobs: pid and start time, so recovery knows it lives
        self.slots, self.own_only = slots, own_only
        self.sweep, self._swept = sweep, time.monotonic()  # the owner's: requeue what dead processes left running
        self._lock = threading.Lock()
        self._own: set[str] = set()  # jobs submitted here (own_only claims only these)
        self._listeners: dict[str, list] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._contexts: dict[str, contextvars.Context] = {}  # the submitter's context vars (Gradio's request)
        self._running: dict[str, threading.Thread] = {}
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def paused(self) -> str | None:
        """Why queued jobs are not claimed now (a farm whose Ray is lost says so), else None."""
        engine = getattr(self.studio, "engine", None)  # None: a dispatcher of the queue alone (benches, tools)
        note = getattr(getattr(engine, "executor", None), "waiting_note", None)
        return note() if note is not None else None

    @property
    def capacity(self) -> int:
        """Jobs run at once: the slots given, else one per farm worker (0 while the farm's Ray is lost: queued
        jobs stay queued, never failed for an outage), else 1."""
        executor = self.studio.engine.executor
        if hasattr(executor, "slots"):
            free = executor.slots()  # the farm looks at its Ray (and starts a lost one of its own again)
            return 0 if free == 0 else self.slots or free
        return self.slots or 1

    # ---- the thread -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; jobs running now stop at their next step and wait in the queue for the next start."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            for cancel in self._cancels.values():
                cancel.set()
            running = list(self._running.values())
        deadline = time.monotonic() + timeout
        for thread in ([self._thread] if self._thread else []) + running:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._release_followers()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _release_followers(self) -> None:
        """The studio stops: whoever follows a job is told it waits for the next start, and stops following."""
        with self._lock:
            followed = list(self._listeners)
        for jid in followed:
            self._emit(jid, Requeued(job_id=jid))
            self._done(jid)

    def _loop(self) -> None:
        """Claim and start jobs until stopped. Any error is logged with its traceback and the loop goes on; only
        a closed database (the studio closed it without stopping the queue first) ends it."""
        while not self._stop.is_set():
            try:
                self._sweep()
                self._fill()
            except sqlite3.ProgrammingError as exc:
                if _closed(exc):
                    log.info("the history database was closed: the dispatcher stops")
                    return
                log.exception("dispatcher: a database error; the queue goes on")
            except Exception:  # a bug: keep the queue alive, say what happened
                log.exception("dispatcher failed to start a job; the queue goes on")
            self._wake.wait(POLL_S)
            self._wake.clear()

    def _sweep(self) -> None:
        """Every SWEEP_S: the owner's recovery of what processes that died meanwhile left running."""
        if self.sweep is not None and time.monotonic() - self._swept >= SWEEP_S:
            self._swept = time.monotonic()
            self.sweep()

    def _fill(self) -> list[str]:
        """Claim jobs while a slot is free, each on its own thread; the ids started."""
        started = []
        while not self._stop.is_set():
            capacity = self.capacity  # a farm may look at its cluster's nodes: not under the lock
            with self._lock:
                if len(self._running) >= capacity:
                    break
                among = set(self._own) if self.own_only else None
            row = self.store.claim(self.worker, among) if among is None or among else None
            if row is None:
                break
            thread = threading.Thread(target=self._run_claimed, args=(row,), name=f"job-{row['id'][:8]}",
                                      daemon=True)
            with self._lock:
                self._running[row["id"]] = thread
            thread.start()
            started.append(row["id"])
        return started

    def run_pending(self) -> list[dict]:
        """Run every job that may run here, ``capacity`` at once, until none waits; the finished jobs in the
        order they started."""
        order: list[str] = []
        while True:
            order += self._fill()
            with self._lock:
                running = bool(self._running)
            if not running:
                return [self.store.get(jid) for jid in order]
            self._wake.wait(POLL_S)
            self._wake.clear()

    # ---- jobs ---------------------------------------------------------------------------------
    def submit(self, job, *, source: str, session: str | None = None, plan: dict | None = None,
               after: str | None = None, listener=None) -> str:
        """Queue a job (a JobKind, or an untyped dict whose keys say its kind) after pinning what it owns; its id.
        A job with a ``key`` already queued or running is not queued again: its id is that job's, followed from
        now on. ``listener``: called with each of the job's events from the first (registered before it can
        start). A follower's Cancel reaches the job through ``cancel`` (JobStream does that)."""
        typed = job_kind.typed(job, self.kinds)
        typed.pin(self.studio, session)
        with self._lock:
            jid, added = self.store.add_once(typed.to_json(), source=source, session=session, plan=plan,
                                             after=after, kind=typed.name, key=typed.key)
            if added:
                self._contexts[jid] = contextvars.copy_context()
            self._own.add(jid)
            if listener is not None:
                self._listeners.setdefault(jid, []).append(listener)
        self._wake.set()
        return jid

    def cancel(self, jid: str, session: str | None = None) -> str:
        """"cancelled" (it was waiting) or "cancelling" (it stops within a step); StudioError if it cannot be."""
        outcome = self.store.cancel(jid, session)
        with self._lock:
            event = self._cancels.get(jid)
        if outcome == "cancelling" and event is not None:
            event.set()
        if outcome == "cancelled":
            self._emit(jid, Cancelled(0, None))
            self._done(jid)
        return outcome

    def _run_claimed(self, row: dict) -> None:

        jid = row["id"]
        try:
            with self._lock:
                cancel = self._cancels.setdefault(jid, threading.Event())
                context = self._contexts.pop(jid, None) or contextvars.copy_context()
            ended = threading.Event()
            threading.Thread(target=self._watch_flag, args=(jid, cancel, ended), daemon=True,
                             name=f"flag-{jid[:8]}").start()
            try:
                state, error, ids = context.run(self._run, row, cancel)
            finally:
                ended.set()
            if state == "cancelled" and self._stop.is_set() and not self.store.cancel_requested(jid):
                self._record(jid, lambda: self.store.requeue(jid))  # stopped with the studio: it runs after a restart
                self._emit(jid, Requeued(job_id=jid))  # followers hear that, not "cancelled"
            else:
                if state == "cancelled" and self._stop.is_set():
                    self._emit(jid, Cancelled(0, None))  # held back by _run while the studio stops
                self._record(jid, lambda: self.store.finish(jid, state, error=error, result_ids=ids))
        except Exception:
            log.exception("job %s: the dispatcher failed", jid)
            self._record(jid, lambda: self.store.finish(jid, "failed", error="The dispatcher failed on this job; see the "
                                                                         "studio's log."))
        finally:
            self._done(jid)
            with self._lock:
                self._running.pop(jid, None)
            self._wake.set()

    def _record(self, jid: str, write) -> None:
        """Write a job's end to the queue. On a full disk its followers are let go (they have heard how it ended)
        and the write is tried again every FULL_RETRY_S until space is freed (the job stays "running" meanwhile,
        never marked done or failed by mistake) or the studio stops (recovered at the next start)."""
        told = False
        while True:
            try:
                write()
                return
            except DiskFull as exc:
                if not told:
                    log.warning("%s (the queue waits to record how job %s ended)", exc, jid)
                    self._done(jid)
                    told = True
                if self._stop.wait(FULL_RETRY_S):
                    return

    def _watch_flag(self, jid: str, cancel: threading.Event, ended: threading.Event) -> None:
        """While a job runs: a cancel asked for in the store (`queue cancel` in another process) sets its event,
        within CANCEL_CHECK_S, even while its model loads or it waits for a farm worker."""
        while not ended.wait(CANCEL_CHECK_S):
            try:
                if self.store.cancel_requested(jid):
                    cancel.set()
                    return
            except sqlite3.ProgrammingError:  # the database closed under a job the studio is abandoning
                return

    def _kept(self, job, row: dict) -> list[str]:
        """The budgets an earlier run of this job finished (a re-run keeps them): the kind sees each; their ids."""
        kept = self.studio.history.finished_budgets(row["id"])
        for budget_row in kept.values():
            job.on_kept(self.studio, row, budget_row)
        return [r["id"] for r in kept.values()]

    def _run(self, row: dict, cancel: threading.Event) -> tuple[str, str | None, list[str]]:
        """Render the job; (state, error, history ids of its results). Followers see a Failed event when it
        cannot start (bad or vanished input)."""
        jid, ids, checked = row["id"], [], None
        try:
            job = job_kind.load(row, self.kinds)
            req, plan, _ = job.plan(self.studio, row, self.store)
            asked = (row.get("plan") or {}).get("budgets")  # as planned when queued
            if asked and list(asked) != list(plan.budgets):  # the Queue tab changed its steps: tell the follower
                self._emit(jid, Status(f"This job's steps were changed in the queue while it waited: "
                                       f"{' then '.join(map(str, asked))} -> {' then '.join(map(str, plan.budgets))}."))
            self.store.set_plan(jid, {"kind": plan.kind, "budgets": list(plan.budgets)})
            ids += self._kept(job, row)
            events = self.studio.engine.render(req, plan, cancel, policy=job.policy,
                                               waiting=self.store.waiting(except_batch=job.batch),
                                               session=row.get("session"), previews=job.previews, plan_id=jid)
            for event in events:
                if isinstance(event, Cancelled) and self._stop.is_set():  # the studio stops: _run_claimed says
                    return "cancelled", event.message, ids                # whether the job waits or was cancelled
                if isinstance(event, Result):
                    event = job.on_result(self.studio, row, event)
                    ids.append(event.record_id)
                    finished_log.info(finished_line(event, row.get("source")))
                    if worker := event.timings.get("worker"):
                        self.store.set_worker(jid, worker)
                self._emit(jid, event)
                if isinstance(event, Progress):
                    if checked is None or time.monotonic() - checked >= CANCEL_CHECK_S:
                        checked = time.monotonic()
                        self.store.set_progress(jid, event.fraction)  # for `queue list` in another process
                elif isinstance(event, Failed):
                    return "failed", event.message, ids
                elif isinstance(event, Cancelled):
                    return "cancelled", event.message, ids
        except StudioError as exc:  # refused before it ran: bad or vanished input
            self._emit(jid, Failed(str(exc), 0, None))
            return "failed", str(exc), ids
        except Exception as exc:  # a bug or a broken executor: the job must not stay "running"
            log.exception("job %s failed: internal error", jid)
            message = internal_error(exc)
            self._emit(jid, Failed(message, 0, None))
            return "failed", message, ids
        return "done", None, ids

    # ---- followers ------------------------------------------------------------------------------
    def follow(self, jid: str) -> Iterator:
        """The job's engine events from this call until it finishes (nothing if it already has). Listening starts
        here, not at the first ``next``: no event in between is missed."""
        stream = JobStream(self)
        stream.add(jid)
        return (event for _, event in stream)

    def _handles(self, jid: str) -> bool:
        """True while this dispatcher runs the job (its followers hear its end from it)."""
        with self._lock:
            return jid in self._running

    def _listen(self, jid: str, listener) -> bool:
        """Add a listener to a job; False (nothing added) when the job already finished."""
        with self._lock:
            job = self.store.get(jid)
            if job is None or job["state"] in FINISHED:
                return False
            self._listeners.setdefault(jid, []).append(listener)
            return True

    def _unlisten(self, jid: str, listener) -> None:
        with self._lock:
            listeners = self._listeners.get(jid, [])
            if listener in listeners:
                listeners.remove(listener)

    def _emit(self, jid: str, event) -> None:
        with self._lock:
            listeners = list(self._listeners.get(jid, ()))
        for listener in listeners:
            listener(jid, event)

    def _done(self, jid: str) -> None:
        """The job finished (or went back to the queue with the studio): its followers stop following it."""
        with self._lock:
            listeners = self._listeners.pop(jid, [])
            self._cancels.pop(jid, None)
            self._contexts.pop(jid, None)
            self._own.discard(jid)
        for listener in listeners:
            listener(jid, _END)


def finished_line(result, source: str | None = None) -> str:
    """The console's line for a finished render: its history id, steps and seconds (and who asked)."""
    seconds = (result.timings or {}).get("total")
    took = f"{seconds:.2f} s" if isinstance(seconds, (int, float)) else "? s"
    role = f" ({result.role})" if result.role in ("preview", "final") else ""
    steps = f"{result.steps} step{'' if result.steps == 1 else 's'}"
    return f"render {result.record_id}: {steps}{role}, {took}" + (f", from {source}" if source else "")


def _closed(exc: sqlite3.ProgrammingError) -> bool:
    """A ProgrammingError that says the database was closed (not a binding error or another bug)."""
    return "closed database" in str(exc)


@dataclass
class _Gone:
    """A followed job another process finished; ``event``: what to tell the follower (None when it is done)."""

    event: object


class JobStream:
    """The events of some jobs, as (job id, event) pairs in the order they happen, until every job finished.

    ``cancel``: a follower's event (a Cancel button): within FOLLOW_POLL_S of it being set, the jobs it follows
    are cancelled through the dispatcher (a waiting one leaves the queue; a running one stops at its next step).
    The follower's event is never the job's own: a studio that stops sets its jobs' events, and those jobs wait
    for the next start instead of being cancelled. ``cancel_on_close``: a consumer that stops iterating (a closed
    browser tab, a CLI that went away), or ``abandon``, cancels the jobs it still follows. A job finished by
    another process (`queue cancel`) ends here within PLACE_S."""

    def __init__(self, dispatcher: Dispatcher, cancel: threading.Event | None = None, cancel_on_close: bool = False):
        self.dispatcher, self.cancel, self.cancel_on_close = dispatcher, cancel, cancel_on_close
        self._events: queue.Queue = queue.Queue()
        self._open: set[str] = set()
        self._looked = -PLACE_S
        self._told_pause: str | None = None  # the executor's outage, as last told to the waiting jobs

    def _put(self, jid: str, event) -> None:
        self._events.put((jid, event))

    def submit(self, job: dict, **how) -> str:
        """Queue a job (Dispatcher.submit's arguments) and follow it from its first event."""
        jid = self.dispatcher.submit(job, listener=self._put, **how)
        self._open.add(jid)
        return jid

    def add(self, jid: str) -> None:
        """Follow a job already queued (from now on)."""
        if self.dispatcher._listen(jid, self._put):
            self._open.add(jid)

    @property
    def jobs(self) -> set[str]:
        """The jobs still followed."""
        return set(self._open)

    def events(self) -> Iterator:
        """The events alone, without their job ids."""
        return (event for _, event in self)

    def abandon(self) -> None:
        """The consumer is gone before (or instead of) iterating: cancel what is still followed (not when the
        studio is stopping: its jobs wait for the next start)."""
        if self.cancel_on_close and not self.dispatcher.stopping:
            self._cancel(set(self._open))

    def __iter__(self) -> Iterator[tuple[str, object]]:

        finished, asked, told = False, False, set()  # told: jobs whose end (Cancelled, Failed) was yielded
        try:
            while self._open:
                if not asked and self.cancel is not None and self.cancel.is_set():
                    asked = True
                    self._cancel(set(self._open))
                try:
                    jid, event = self._events.get(timeout=FOLLOW_POLL_S)
                except queue.Empty:
                    yield from self._look()
                    continue
                if event is _END:
                    self._open.discard(jid)
                elif isinstance(event, _Gone):  # finished by another process: after any event it had queued here
                    if jid in self._open:
                        self._open.discard(jid)
                        self.dispatcher._unlisten(jid, self._put)
                        if event.event is not None and jid not in told:
                            yield jid, event.event
                elif jid in self._open and jid not in told:  # one end per job, whoever tells it first
                    if isinstance(event, (Cancelled, Failed)):
                        told.add(jid)
                    yield jid, event
            finished = True
        finally:
            for jid in list(self._open):
                self.dispatcher._unlisten(jid, self._put)
            if not finished:
                self.abandon()

    def _look(self) -> Iterator[tuple[str, object]]:
        """At most every PLACE_S, with no event pending: a Waiting event for each followed job still in the queue
        (its place), and the end of each that another process finished (cancelled with `queue cancel`)."""
        if time.monotonic() - self._looked < PLACE_S or self.dispatcher.stopping:
            return
        self._looked = time.monotonic()
        rows = self.dispatcher.store.places(self._open)  # one query for every followed job
        pause = self.dispatcher.paused()
        tell, self._told_pause = pause is not None and pause != self._told_pause, pause
        for jid in sorted(self._open):
            row = rows.get(jid)
            if row is None or (row["state"] in FINISHED and not self.dispatcher._handles(jid)):
                state = row["state"] if row else "cancelled"
                end = None if state == "done" else Cancelled(0, None) if state == "cancelled" else \
                    Failed(row["error"] or state, 0, None)
                self._events.put((jid, _Gone(end)))  # queued behind what the job sent here, if anything
            elif row["place"] is not None:  # told again each time (a progress bar may miss the first telling)
                if tell:  # once per outage: why it waits (a farm's lost Ray), not only where
                    yield jid, Status(pause)
                yield jid, Waiting(*row["place"])

    def _cancel(self, jids: set[str]) -> None:
        for jid in jids:
            try:
                self.dispatcher.cancel(jid)
            except StudioError:  # it finished meanwhile
                pass
