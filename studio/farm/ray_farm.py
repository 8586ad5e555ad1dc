"""The render farm: a plan's GPU work on Ray actors, one worker per GPU (or ``--workers N`` per GPU-less node).

The studio process stays the only writer of the database and the data folder: ``RayFarm.run(work)`` is the
engine's executor (``RenderEngine.executor``), called instead of ``denoise.run`` in this process. A worker
(``FarmWorker``) has its own ModelManager (same cache and memory rules), lends the job's model by id, runs
``denoise.run`` and streams its events back (Progress, Preview, Chunk, Frames with numpy frames, Stopped); the
engine writes files and rows as today. The job travels whole (request, I2V/V2V context frames, and the bytes of
its LoRA files: farm_loras.py), so no shared file system is assumed.

- Routing: an idle worker that already has the model loaded, else the least recently used idle worker.
- Cancel: the studio's CancelToken is watched here and crosses as ``worker.cancel(job_id)`` (a threaded actor),
  which sets the event the worker's denoise loop checks every step.
- Faults: a worker that dies mid-render (``RayActorError``) costs that attempt only: the budgets not yet
  finished run again on another worker (or the same one once Ray restarts it: ``max_restarts=-1``), up to
  ``retries`` times, then a Stopped names what happened. Budgets already finished are not rerun, so no row repeats.
  Each attempt has its own id (``JOB-N``), and nothing is sent to a dead attempt, so no cancel of a dead attempt
  reaches the next one; a worker that says "cancelled" when the studio asked no cancel is a fault too. Only the
  studio's cancel (a user's, or the studio stopping) ends a render cancelled.
- One render per worker: an attempt the studio abandons (its consumer went away) is cancelled, and the worker
  takes its next job only once that attempt's stream has ended; the actor itself renders one job at a time.
- Memory: each worker checks that a render fits its own device and budget before it starts (the studio's engine
  skips its own check on a farm: its device is not where the render runs).
- Nodes: every dispatch looks at ``ray.nodes()`` (at most every ``SYNC_S`` seconds) and starts workers on new ones.

Ray is imported only here, and only when a farm starts: the local path never imports it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Iterator

from ..engine import denoise
from . import loras as farm_loras
from ..models import memory
from ..config import Settings
from ..errors import StudioError
from ..engine.events import Status

log = logging.getLogger(__name__)
SYNC_S = 2.0  # how often a dispatch looks for nodes added to the cluster
RETRIES = 2  # runs of a job after its worker died, before it fails
NO_WORKER_S = 120.0  # a job waiting for a worker fails after the cluster has had none for this long
_CANCEL_POLL_S = 0.05
REVIVE_S = 120.0  # a lost worker is waited for this long before the farm routes to it again regardless
_REVIVE_POLL_S = 0.5
RECONNECT_S = 10.0  # a lost Ray is started again (the farm's own) or looked for again (a cluster's) this often
_STREAM_POLL_S = 0.5  # the longest a farm thread waits inside one Ray call on a stream (see RayGate)
_GET_S = 30.0  # the longest it waits for an event already announced by its stream
_GATE_DRAIN_S = 45.0  # a restart waits this long for the threads inside Ray calls, then tries again later


class RayRestarting(Exception):
    """A Ray call refused: the farm is restarting (or re-joining) its Ray, or the call belongs to a Ray that was
    lost and replaced since. For the farm it is the same as that Ray lost."""


class RayGate:
    """Every Ray call of the farm's threads goes through ``call(generation)``, so a restart of the farm's Ray
    (``ray.shutdown()``, then ``ray.init()``) runs only while no thread is inside a call on the old one: Ray ends
    the whole process when a thread touches a core worker that was shut down. Calls inside are bounded (polls of
    _STREAM_POLL_S, gets of _GET_S), so a restart waits at most about that long. A thread of an earlier
    generation (begun on a Ray since lost) is refused for good: its actors went with that Ray."""

    def __init__(self):
        self._cond = threading.Condition()
        self._inside = 0
        self._closed = False
        self.generation = 0

    @contextmanager
    def call(self, generation: int | None = None):
        with self._cond:
            if self._closed or generation not in (None, self.generation):
                raise RayRestarting()
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                self._cond.notify_all()

    def close(self, timeout: float) -> bool:
        """Refuse new calls, end the generation (calls of the threads begun on it stay refused), and wait for the
        calls inside to end: True once none is inside."""
        with self._cond:
            self._closed = True
            self.generation += 1
            return self._cond.wait_for(lambda: self._inside == 0, timeout)

    def open(self) -> None:
        with self._cond:
            self._closed = False


class FarmError(StudioError):
    """The farm cannot start: bad flags, no Ray, or an unreachable cluster."""


def check_options(farm: str, workers: int | None, address: str | None) -> None:
    """Refuse bad farm flags before anything starts."""
    if farm not in ("local", "ray"):
        raise FarmError(f"Unknown farm '{farm}'. Use --farm local (the default) or --farm ray.")
    if farm == "local" and (workers is not None or address):
        raise FarmError("--workers and --ray-address need --farm ray.")
    if workers is not None and workers < 1:
        raise FarmError("--workers must be 1 or more (workers per GPU-less node; a GPU node gets one per GPU).")


# ---- the worker (a Ray actor) ---------------------------------------------------------------
class FarmWorker:
    """One worker: its own ModelManager; renders one job at a time (the farm routes), cancel on the side."""

    def __init__(self, settings: Settings, threads: int):
        import torch

        from ..models.manager import ModelManager

        torch.set_num_threads(max(1, threads))
        worker_settings = replace(settings, device="cpu" if settings.device == "cpu" else "auto", farm="local")
        self.models = ModelManager(worker_settings)  # loads nothing until a job needs it
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._gpu = threading.Lock()  # one render at a time on this worker's device, whatever the farm sends
        self.label = _worker_label()

    def info(self) -> dict:
        return {"label": self.label, "pid": os.getpid(), "loaded": sorted(self.models.loaded_state())}

    def cancel(self, job_id: str) -> None:
        self._event(job_id).set()

    def _event(self, job_id: str) -> threading.Event:
        with self._lock:
            return self._cancels.setdefault(job_id, threading.Event())

    def render(self, job_id: str, work: "denoise.DenoiseJob", loras: tuple = ()):
        """A streaming method: the events of ``denoise.run`` for this attempt (``job_id``: one per attempt), on
        this worker's own model, once the memory check of this worker's device passed. ``loras``: the job's LoRA
        files as ``farm_loras.Parcel`` (their bytes), written into this worker's own cache."""
        with self._gpu:
            yield from self._render(job_id, work, loras)

    def _render(self, job_id: str, work: "denoise.DenoiseJob", loras: tuple):
        from ..engine.cancel import CancelToken

        work.cancel = CancelToken(self._event(job_id))
        model_id = work.model.model_id
        try:
            memory.check_render_fits(self.models, work.spec, work.request)  # this worker's device, not the studio's
            work.loras = farm_loras.unpack(loras)
            started = time.perf_counter()
            loading = not self.models.is_loaded(model_id)
            if loading:
                yield Status(f"Loading model {model_id} on {self.label}...")
            with self.models.lend(model_id) as entry:
                load_s = time.perf_counter() - started if loading else 0.0
                work.model = denoise.ModelRef(entry)
                for event in denoise.run(work):
                    if isinstance(event, denoise.Frames):
                        event.timings.update(worker=self.label, **({"load": load_s} if event.budget_index == 0 else {}))
                    yield event
        except StudioError as exc:  # weights missing on this node, not enough memory here, ...
            yield denoise.Stopped(0, "failed", f"{exc} (on {self.label})")
        finally:
            with self._lock:
                self._cancels.pop(job_id, None)


def _worker_label() -> str:
    """The worker's node and GPU, as the history row records it."""
    import ray

    ctx = ray.get_runtime_context()
    gpus = ray.get_gpu_ids()
    where = f"gpu {','.join(str(g) for g in gpus)}" if gpus else f"cpu pid {os.getpid()}"
    return f"{socket.gethostname()}/{ctx.get_node_id()[:8]} {where}"


# ---- the studio side ---------------------------------------------------------------------------
@dataclass
class _Worker:
    actor: object
    node_id: str
    busy: bool = False  # rendering, or finishing an abandoned attempt: the farm routes nothing to it
    last_used: float = 0.0
    models: set = field(default_factory=set)  # models it has loaded (as far as the farm routed them)
    label: str = ""
    generation: int = 0  # the farm's Ray it lives on (RayGate.generation): calls on an older one are refused


class RayFarm:
    """The ``ray`` executor. ``start()`` joins or starts Ray and its workers; ``run(work)`` yields a job's events."""

    def __init__(self, settings: Settings, address: str | None = None, workers: int | None = None,
                 threads: int = 1, retries: int = RETRIES):
        check_options("ray", workers, address)
        self.settings, self.address, self.cpu_workers = settings, address, workers
        self.threads, self.retries = threads, retries
        self._workers: list[_Worker] = []
        self._free = threading.Condition()
        self._owns_ray = False
        self._synced = 0.0
        self._actor_class = None
        self._packer = farm_loras.Packer()
        self._outage = threading.Lock()  # one look at (or restart of) a lost Ray at a time
        self._down_since: float | None = None  # when the farm's Ray was found lost (None: it is up)
        self._looked = self._tried = 0.0
        self.epoch = 0  # +1 each time a lost Ray is back: an attempt begun before it ran on the old one
        self._gate = RayGate()  # every Ray call after start(); a restart shuts the old Ray down only when it is empty

    # ---- start, nodes, stop ------------------------------------------------------------------
    def start(self) -> "RayFarm":
        ray = _import_ray()
        if not ray.is_initialized():
            self._init(ray)
        self._actor_class = ray.remote(FarmWorker)
        self._sync_workers(force=True)
        if not self._workers:
            self.close()
            raise FarmError("The Ray cluster has no GPU, and no --workers N was given: on a CPU-only machine or "
                            "cluster, say how many workers each node runs, e.g. --farm ray --workers 2.")
        return self

    def _init(self, ray) -> None:
        if self.address and self.address != "auto":
            _check_reachable(self.address)
        try:
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                import torch

                gpus = torch.cuda.device_count()
                cpus = max(os.cpu_count() or 1, self.cpu_workers or 0)
                # "local": a Ray of its own, never the latest cluster another process started on this machine
                ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False,
                         log_to_driver=False, object_store_memory=100 * 1024**2)
        except Exception as exc:  # noqa: BLE001 - Ray raises bare Exception too ("node timed out during startup")
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise FarmError(f"Could not reach {where}: {exc}. Start one with `ray start --head`, or check "
                            "--ray-address (HOST:PORT of the head node, or auto).") from None
        self._owns_ray = True

    def _sync_workers(self, force: bool = False) -> None:
        """Start workers on nodes that have none yet (new nodes included); forget those on nodes that left."""
        import ray

        if not force and time.monotonic() - self._synced < SYNC_S:
            return
        self._synced = time.monotonic()
        try:
            with self._gate.call():
                self._sync_nodes(ray)
        except RayRestarting:
            pass  # the farm's Ray is being restarted: it starts its workers itself

    def _sync_nodes(self, ray) -> None:
        nodes = {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}
        with self._free:
            gone = [w for w in self._workers if w.node_id not in nodes]
            self._workers = [w for w in self._workers if w.node_id in nodes]
            for w in gone:  # pinned to a node that left: Ray would keep trying to restart it
                _kill(ray, w.actor)
            for node_id, node in nodes.items():
                have = sum(w.node_id == node_id for w in self._workers)
                for _ in range(have, self._wanted(node)):
                    self._workers.append(_Worker(self._spawn(node_id, node), node_id,
                                                 generation=self._gate.generation))
            self._free.notify_all()

    def _wanted(self, node: dict) -> int:
        gpus = int(node.get("Resources", {}).get("GPU", 0))
        return gpus if gpus else (self.cpu_workers or 0)

    def _spawn(self, node_id: str, node: dict):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        gpu = bool(node.get("Resources", {}).get("GPU", 0))
        return self._actor_class.options(
            num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1, max_restarts=-1, max_task_retries=0,
            max_concurrency=4,  # render + cancel + info at once; the actor renders one job at a time (its lock)
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(self.settings, self.threads)

    @property
    def size(self) -> int:
        with self._free:
            return len(self._workers)

    def slots(self) -> int:
        """Renders the farm can run at once now: its workers, after a look for nodes that joined or left (at most
        every SYNC_S). The dispatcher asks before it claims jobs, so a new node gets work without a restart; 0
        while the farm's Ray is lost, so queued jobs stay queued."""
        if not self.up():
            return 0
        self._sync_workers()
        return self.size

    # ---- a lost Ray --------------------------------------------------------------------------
    @property
    def own_ray(self) -> bool:
        return not self.address  # no --ray-address: the farm started a local Ray of its own

    def outage(self) -> str:
        """What a job waiting for a lost Ray is told."""
        if self.own_ray:
            return "The farm's own Ray was lost; the studio starts it again, and jobs wait until it is back."
        return f"The Ray cluster at {self.address} is gone; jobs wait until it is back (looked for every {RECONNECT_S:g} s)."

    def waiting_note(self) -> str | None:
        """What the jobs waiting in the queue are told while the farm's Ray is lost (None while it is up)."""
        return f"{self.outage()} This render waits in the queue." if self._down_since is not None else None

    def up(self) -> bool:
        """Whether the farm's Ray is up (looked at every SYNC_S). A lost one is started again (a Ray of its own)
        or joined again (a cluster's), every RECONNECT_S until it is back; each step is said in the log."""
        with self._outage:
            now = time.monotonic()
            if self._down_since is None:
                if now - self._looked < SYNC_S:
                    return True
                self._looked = now
                if not self._lost():
                    return True
                self._down_since, self._tried = now, 0.0
                log.warning("farm: %s", self.outage())
            if now - self._tried < RECONNECT_S:
                return False
            self._tried = now
            if not self._reconnect():
                self._tried = time.monotonic()
                return False
            log.warning("farm: Ray is back after %.0f s (%s); %d workers", time.monotonic() - self._down_since,
                        "started again" if self.own_ray else f"the cluster at {self.address}", self.size)
            self._down_since, self.epoch, self._looked = None, self.epoch + 1, time.monotonic()
            return True

    def _lost(self) -> bool:
        """True when no node of the farm's Ray is alive, its GCS does not answer, or (a Ray of its own) the raylet
        it started has died (seen at once; the GCS takes some seconds to call the node dead)."""
        import ray

        try:
            with self._gate.call():
                if self.own_ray and _own_raylet_died(ray):
                    return True
                return not any(n.get("Alive") for n in ray.nodes())
        except Exception:  # noqa: BLE001 - not connected, the GCS is gone, or a restart under way
            return True

    def _reconnect(self) -> bool:
        """Start the farm's own Ray again, or join the cluster again, with new workers; False if not (yet)."""
        import ray

        with self._free:
            self._workers = []  # their actors went with the Ray that was lost
            self._free.notify_all()
        if not self._gate.close(_GATE_DRAIN_S):  # never shut a core worker down under a thread still using it
            log.warning("farm: a farm thread is still inside a Ray call; trying again in %g s", RECONNECT_S)
            return False
        back = False
        try:
            ray.shutdown()
            self._init(ray)
            self._actor_class = ray.remote(FarmWorker)
            self._synced = time.monotonic()
            self._sync_nodes(ray)
            back = bool(self._workers)
        except Exception as exc:  # noqa: BLE001 - FarmError (unreachable), or Ray's own errors while it starts
            log.warning("farm: Ray is not back yet (%s); trying again in %g s", exc, RECONNECT_S)
            return False
        finally:
            self._gate.open()  # the workers started here are of the new generation; those of the lost Ray are not
        if self.own_ray:
            log.warning("farm: started the farm's own Ray again")
        return back

    def close(self) -> None:
        import ray

        with self._free:
            workers, self._workers = self._workers, []
        for w in workers:
            _kill(ray, w.actor)
        if self._owns_ray and self._gate.close(_GATE_DRAIN_S):  # as a restart: never under a thread's Ray call
            ray.shutdown()

    # ---- routing -------------------------------------------------------------------------------
    def _acquire(self, model_id: str, avoid: "_Worker | None" = None, cancel=None) -> "_Worker | None":
        """An idle worker with the model loaded, else the least recently used idle one; waits for one, looking at
        the cluster's nodes again as it waits (a node that joins meanwhile brings a worker). None when ``cancel``
        is set meanwhile, or when the cluster has had no worker at all for NO_WORKER_S."""
        alone_since = None
        while True:
            if not self.up():
                return None  # the Ray was lost: ``run`` waits for it to be back
            self._sync_workers()
            if cancel is not None and cancel.is_set():
                return None
            with self._free:
                if self._workers:
                    alone_since = None
                elif (alone_since := alone_since or time.monotonic()) < time.monotonic() - NO_WORKER_S:
                    return None
                idle = [w for w in self._workers if not w.busy]
                others = [w for w in idle if w is not avoid] or idle
                if others:
                    warm = [w for w in others if model_id in w.models]
                    chosen = min(warm or others, key=lambda w: w.last_used)
                    chosen.busy = True
                    return chosen
                self._free.wait(_CANCEL_POLL_S if cancel is not None else SYNC_S)

    def _release(self, worker: _Worker) -> None:
        with self._free:
            worker.busy, worker.last_used = False, time.monotonic()
            self._free.notify_all()

    # ---- the executor -------------------------------------------------------------------------
    def run(self, work: "denoise.DenoiseJob") -> Iterator:
        """The job's events, as ``denoise.run`` yields them; a worker that dies costs only its unfinished budgets."""
        import ray

        job_id, done, attempt, worker = secrets.token_hex(8), 0, 0, None
        loras, work = self._packer.pack(work.loras), replace(work, loras=())  # files travel, never their paths
        while True:
            yield from self._wait_up(work.cancel)
            epoch = self.epoch
            worker = self._acquire(work.model.model_id, avoid=worker, cancel=work.cancel)
            if worker is None and not work.cancel.is_set() and not self.up():
                continue  # the Ray was lost while it waited: wait for it to be back, not NO_WORKER_S
            if worker is None:  # cancelled while it waited, or no worker is left in the cluster
                yield (denoise.Stopped(done, "cancelled", "Cancelled by the user.") if work.cancel.is_set() else
                       denoise.Stopped(done, "failed", f"No farm worker is left: every node left the cluster "
                                                        f"for {NO_WORKER_S:g} s. Start one (`ray start`) and queue "
                                                        "the render again."))
                return
            handed = [False]  # True: the attempt, abandoned, releases its worker itself once its stream ends
            events = self._attempt(work, f"{job_id}-{attempt}", done, worker, loras, handed)
            try:
                for event in events:
                    done += isinstance(event, denoise.Frames)
                    yield event
                return
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a lost Ray raises what it likes (SystemExit too)
                self._looked = 0.0  # look at the Ray now: a worker lost, or all of it? (waits for a restart)
                if self.up() and self.epoch == epoch and not isinstance(exc, RayRestarting):
                    if not isinstance(exc, (*_lost_errors(ray), _FalseCancel)):
                        raise
                else:  # the whole Ray was lost, not a worker: no retry is spent, the unfinished budgets wait
                    handed[0] = True  # its actor went with that Ray
                    yield Status(f"{self.outage()} This render runs again then (its finished budgets are kept).")
                    continue
                handed[0] = True  # busy until it answers again (Ray restarts it): no retry lands on it meanwhile
                threading.Thread(target=self._revive, args=(worker,), name="farm-revive", daemon=True).start()
                worker.models.clear()
                self._synced = 0.0  # a worker lost may be a node lost: the next dispatch looks at the nodes
                attempt += 1
                verb = "stopped" if isinstance(exc, _FalseCancel) else "died"
                what = f"the worker {worker.label or '(starting)'} {verb} mid-render ({_why(exc)})"
                if attempt > self.retries:
                    yield denoise.Stopped(done, "failed", f"Render failed: {what}, and {self.retries} retries "
                                          "after it died too.")
                    return
                yield Status(f"{what[0].upper()}{what[1:]}; running it again on another worker "
                             f"(retry {attempt} of {self.retries}).")
            finally:
                events.close()  # an abandoned attempt is cancelled (and hands its worker over) before we look
                if not handed[0]:
                    self._release(worker)

    def _wait_up(self, cancel) -> Iterator:
        """While the farm's Ray is lost: one Status saying so, then wait (a cancel ends the wait)."""
        told = False
        while not cancel.is_set() and not self.up():
            if not told:
                told = True
                yield Status(self.outage())
            cancel.wait(SYNC_S)

    def _attempt(self, work, attempt_id: str, done: int, worker: _Worker, loras: tuple, handed: list) -> Iterator:
        """One run of the budgets from ``done`` on one worker, indices as the whole plan numbers them. Abandoned
        by its consumer, the attempt is cancelled on the worker, which stays busy until its stream has ended
        (``handed[0]``: released by that drain, not by ``run``). A worker that died is sent nothing."""
        import ray

        rest = replace(work, budgets=work.budgets[done:])
        with self._gate.call(worker.generation):
            stream = worker.actor.render.remote(attempt_id, rest, loras)
        watching = threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(work.cancel, worker, attempt_id, watching),
                                   name="farm-cancel", daemon=True)
        watcher.start()
        finished, lost = False, False
        try:
            for event in self._events(stream, worker.generation):
                if _unasked_cancel(event, work.cancel):
                    raise _FalseCancel(worker.label)
                if hasattr(event, "budget_index"):
                    event.budget_index += done
                if isinstance(event, denoise.Frames):
                    worker.models.add(work.model.model_id)
                    worker.label = event.timings.get("worker", worker.label)
                yield event
            finished = True
        except (*_lost_errors(ray), _FalseCancel, RayRestarting):
            lost = True
            raise
        finally:
            watching.set()  # the watcher ends at its next wake-up; not joined, so a render pays no poll period
            if not finished and not lost:  # the consumer went away: stop the attempt, free the worker after it
                self._cancel_attempt(worker, attempt_id)
                handed[0] = True
                threading.Thread(target=self._drain, args=(stream, worker), name="farm-drain", daemon=True).start()

    def _events(self, stream, generation: int) -> Iterator:
        """A worker's stream of events, each wait and get inside the gate and bounded, so a restart of the farm's
        Ray never waits long for this thread (and never shuts Ray down under it)."""
        import ray

        while True:
            with self._gate.call(generation):
                try:
                    ref = stream._next_sync(timeout_s=_STREAM_POLL_S)  # Ray's own __next__, with a timeout
                except StopIteration:
                    return
                event = None if ref.is_nil() else ray.get(ref, timeout=_GET_S)
            if event is not None:
                yield event

    def _cancel_attempt(self, worker: _Worker, attempt_id: str) -> None:
        try:
            with self._gate.call(worker.generation):
                worker.actor.cancel.remote(attempt_id)
        except RayRestarting:
            pass  # its Ray was lost: so was the attempt

    def _revive(self, worker: _Worker) -> None:
        """A worker whose attempt was lost is routed nothing until its actor answers again (Ray restarts a dead
        one; while it does, calls fail at once with ActorUnavailableError), for at most REVIVE_S; a worker whose
        node left the cluster (``_sync_workers`` forgets it) is not waited for."""
        import ray

        deadline = time.monotonic() + REVIVE_S
        try:
            while time.monotonic() < deadline and any(w is worker for w in self._workers):
                try:
                    with self._gate.call(worker.generation):
                        worker.label = ray.get(worker.actor.info.remote(), timeout=_REVIVE_POLL_S * 10)["label"]
                    return
                except RayRestarting:
                    return  # its Ray was lost: the worker went with it
                except Exception:  # still restarting, or gone for good: look again shortly
                    time.sleep(_REVIVE_POLL_S)
        finally:
            self._release(worker)

    def _drain(self, stream, worker: _Worker) -> None:
        """An abandoned attempt's remaining events, until its stream ends (within a step of its cancel): only
        then may the worker take another job."""
        try:
            for _ in self._events(stream, worker.generation):
                pass
        except Exception:  # died meanwhile, an event lost, or its Ray lost: the attempt has ended either way
            pass
        finally:
            self._release(worker)

    def _watch_cancel(self, token, worker: _Worker, job_id: str, finished: threading.Event) -> None:
        """While an attempt runs: the studio's cancel (or a consumer gone) becomes ``worker.cancel(job_id)`` at
        once (it waits on the studio's event itself, so the cancel costs one actor call, not a poll period)."""
        event = getattr(token, "event", None)
        while not finished.is_set():
            hit = event.wait(_CANCEL_POLL_S) if event is not None else token.is_set() or finished.wait(_CANCEL_POLL_S)
            if hit and not finished.is_set():
                self._cancel_attempt(worker, job_id)
                return


class _FalseCancel(Exception):
    """A worker stopped an attempt as "cancelled" when the studio asked no cancel: a fault, run again."""


def _unasked_cancel(event, cancel) -> bool:
    return isinstance(event, denoise.Stopped) and event.reason == "cancelled" and not cancel.is_set()


def _lost_errors(ray) -> tuple:
    """What the stream of a worker raises when the worker is gone: its process died (RayActorError), its node
    left the cluster (the actor, pinned to that node, cannot be restarted: ActorUnschedulableError; NodeDiedError),
    or an event it had sent lived in that node's object store (ObjectLostError)."""
    e = ray.exceptions
    return (e.RayActorError, e.ActorUnschedulableError, e.NodeDiedError, e.ObjectLostError, e.WorkerCrashedError,
            e.GetTimeoutError)  # an event its stream announced that does not come within _GET_S: lost with it


def _why(exc: Exception) -> str:
    if isinstance(exc, _FalseCancel):
        return "a cancel no one asked for"
    gone = ("ActorUnschedulableError", "NodeDiedError", "ObjectLostError")
    return f"{type(exc).__name__}: its node left the cluster" if type(exc).__name__ in gone else type(exc).__name__


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A clear message, quickly, for a HOST:PORT nothing listens on (Ray itself retries for a long time)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise FarmError(f"--ray-address must be HOST:PORT (the head node's GCS port, usually 6379) or auto, not "
                        f"'{address}'.")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            speaks = _speaks_grpc(conn, timeout)
    except OSError as exc:
        raise FarmError(f"Could not reach the Ray cluster at {address}: {exc.strerror or exc}. Start it with "
                        "`ray start --head` on that machine, or check --ray-address.") from None
    if not speaks:  # Ray would retry for half a minute, with a screen of warnings
        raise FarmError(f"{address} answers, but not as a Ray cluster's head (its GCS port speaks gRPC): check "
                        "--ray-address (HOST:PORT that `ray start --head` printed, usually port 6379).")


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


def _speaks_grpc(conn: socket.socket, timeout: float) -> bool:
    """True if the server answers an HTTP/2 client preface with a SETTINGS frame, as a gRPC server (Ray's GCS)
    does; False for one that says nothing within ``timeout`` or answers in another protocol."""
    conn.settimeout(min(timeout, 3.0))
    try:
        conn.sendall(_H2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = conn.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except OSError:  # timed out, or reset
        return False
    return header[3] == 0x04  # frame type SETTINGS


def _kill(ray, actor) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # noqa: BLE001 - its Ray is gone already (a lost raylet): so is the actor
        pass


def _own_raylet_died(ray) -> bool:
    """True if the raylet this process started (a local Ray of its own) has exited. Ray's Node object is not
    public API: where it is not as expected, False (the GCS says the node is dead a few seconds later anyway)."""
    try:
        node = ray._private.worker._global_node
        return node is not None and any(kind == "raylet" for kind, _ in node.dead_processes())
    except Exception:  # noqa: BLE001 - another Ray version's internals
        return False


def _import_ray():
    # a call on an actor of a Ray that was lost must fail, not start a Ray of its own behind the farm's back
    # (Ray's auto-connect), which would make the farm's own restart (ray.init) fail: read when ray is imported
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        import ray
    except ImportError:
        raise FarmError("--farm ray needs Ray: bash scripts/setup.sh --farm (installs requirements-farm.txt).") from None
    return ray


def attach(studio) -> "RayFarm | None":
    """Start the farm the studio's settings ask for and make it the engine's executor (None for local)."""
    s = studio.settings
    check_options(s.farm, s.workers, s.ray_address)
    if s.farm != "ray":
        return None
    farm = RayFarm(s, address=s.ray_address, workers=s.workers).start()
    studio.engine.executor = farm
    return farm
