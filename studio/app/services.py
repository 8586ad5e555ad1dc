"""Wiring: the one place where settings, registry, model manager, history and engine meet."""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass, replace

from ..store import disk
from ..config import Settings
from ..jobs.shot_rules import board_store
from .cleanup import Recovery, recover_after_crash
from ..models.downloads import DownloadManager
from ..errors import StudioError
from ..store.history import HistoryStore, check_sqlite
from ..models.refs import open_registry
from ..models.manager import ModelManager
from .ownership import Announcement, FolderLock, read_announcement
from ..engine.policy import Policies
from ..models.registry import Registry
from ..engine.render import RenderEngine


log = logging.getLogger(__name__)
_DISPATCHER_LOCK = threading.Lock()


def quiet_libraries() -> None:
    """Keep diffusers/transformers chatter (per-call warnings, progress bars) off the user's console."""
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    dlogging.set_verbosity_error()
    tlogging.set_verbosity_error()
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)  # "frame size differs": we scale on purpose
    # The FAR transformer runs flex_attention uncompiled on CPU; torch warns once per process.
    warnings.filterwarnings("ignore", message=".*flex_attention.*")


@dataclass
class Studio:
    settings: Settings
    registry: Registry
    models: ModelManager
    history: HistoryStore
    engine: RenderEngine
    policies: Policies
    lock: FolderLock | None = None  # held while this process owns the data folder (claim_data_folder)
    downloads: DownloadManager | None = None  # model downloads from the hub (set by open)
    _dispatcher: object | None = None  # the render queue's runner (dispatcher.py): ``dispatcher()`` starts one

    @classmethod
    def open(cls, settings: Settings | None = None, **overrides) -> "Studio":
        check_sqlite()  # before anything touches the folder: the queue needs UPDATE ... RETURNING
        settings = settings or Settings.from_env(**overrides)
        disk.make_folder(settings.data_dir)  # one clear message for a file, /proc/x, no permission
        quiet_libraries()
        registry = open_registry(settings)
        try:  # --model / STUDIO_MODEL may name a folder or a hub repo: the studio goes on with the entry's id
            settings = replace(settings, default_model=registry.get(settings.default_model).id)
        except StudioError:
            pass  # told where the default is used (a render, the app's start); history and stats work without
        if settings.space:
            registry.resolver = None  # a public Space: visitors pick from the catalogue, never a server path or repo
        models = ModelManager(settings, registry)
        history = HistoryStore(settings.history_path)
        policies = Policies.load(settings.user_policies_file)
        engine = RenderEngine(models, history, settings, policies)
        return cls(settings, registry, models, history, engine, policies, downloads=DownloadManager(settings, registry))

    # ---- owning the data folder (see ownership.py) ------------------------------------
    @property
    def owns_data_folder(self) -> bool:
        return self.lock is not None and self.lock.held

    def claim_data_folder(self, url: str | None = None, kind: str = "studio") -> bool:
        """Own the data folder if no other process does (never waits). The owner then runs ``recover_after_crash``
        before it renders, and keeps the folder until ``close``. False: another process owns it. ``kind`` is
        announced: "studio" (the web app, which announces its API) or "cli" (a command-line render)."""
        lock = self.lock or FolderLock(self.settings.data_dir, kind)
        if not lock.acquire(url):
            return False
        self.lock = lock
        return True

    def folder_owner(self) -> Announcement | None:
        """What the owning process announced (pid, host, url), if it wrote anything readable."""
        return read_announcement(self.settings.data_dir)

    def recover_after_crash(self, at_start: bool = True) -> Recovery:
        """Mark the renders and board batches a dead process left "running" as interrupted, remove its partial
        files and queue its running jobs again (cleanup.py). Only the owner may: it tells a live process's work
        (a command-line render beside it) from a dead one's by pid and start time. ``at_start``: before it
        renders; later (``sweep_dead``) its own work is left alone too."""
        if not self.owns_data_folder:
            raise RuntimeError("only the process that owns the data folder recovers after a crash")
        from ..store.queue import QueueStore

        jobs = QueueStore(self.history).requeue_running(at_start)  # a dead process's running jobs wait again
        return replace(recover_after_crash(self.history, board_store(self.history), self.settings.renders_dir,
                                           at_start), jobs=jobs)

    def sweep_dead(self) -> Recovery:
        """While the studio runs (its dispatcher, every SWEEP_S): the work of a process that died since, e.g. a
        command-line render killed beside the studio, recovered as at start-up; nothing if this process does
        not own the folder."""
        if not self.owns_data_folder:
            return Recovery()
        report = self.recover_after_crash(at_start=False)
        if report:
            log.warning("recovered after a process died: %s", report.describe())
        return report

    @property
    def running_dispatcher(self):
        """The dispatcher running this studio's queue, or None when none has started (nothing is started here)."""
        return self._dispatcher

    def dispatcher(self):
        """The dispatcher that runs this studio's renders (every render is a queued job): the one the app started
        for the whole queue (``start_dispatcher``), else one started here on first use that runs only the jobs
        this process queues (a script, a standalone CLI run: `queue run` or the next studio runs the others)."""
        with _DISPATCHER_LOCK:
            if self._dispatcher is None:
                self.start_dispatcher(own_only=True)
            return self._dispatcher

    def start_dispatcher(self, *, own_only: bool = False, slots: int | None = None):
        """Start running the queue: ``slots`` jobs at once (default: one per farm worker, else 1). The folder's
        owner calls this after ``recover_after_crash``, so the jobs a crash left wait again first."""
        from ..jobs.dispatcher import Dispatcher

        self._dispatcher = Dispatcher(self, own_only=own_only, slots=slots,
                                      sweep=None if own_only else self.sweep_dead)
        self._dispatcher.start()
        return self._dispatcher

    def stop_dispatcher(self) -> None:
        """Stop running the queue: a job it runs stops within a step and waits for the next start."""
        if self._dispatcher is not None:
            self._dispatcher.stop()
            self._dispatcher = None

    def close(self) -> None:
        self.stop_dispatcher()
        if getattr(self.engine, "executor", None) is not None:  # a render farm (farm.py): its workers stop
            self.engine.executor.close()
            self.engine.executor = None
        self.history.close()
        if self.lock is not None:
            self.lock.release()
