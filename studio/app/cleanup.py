"""House-keeping: partial files left by a crash, and (Space mode) renders and files past their time to live."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..store import liveness
from ..store.history import HistoryStore

log = logging.getLogger(__name__)

# Folders under ``renders/<session>/`` (or ``renders/``) whose files no database row owns.
LOOSE_FOLDERS = ("inputs", "exports")  # board inputs copied from uploads; board exports


def _row_of_partial(path: Path) -> str | None:
    """The render row a partial file belongs to (``.ROWID.part.mp4``, ``.ROWID.part.png``: media.py names the
    files of a render after its row), or None for other partial files (a GIF, an export)."""
    name = path.name
    return name[1:name.index(".part.")] if name.startswith(".") and ".part." in name else None


def remove_partial_files(root: Path, keep=lambda path: False) -> int:
    """Delete ``.NAME.part.EXT`` files (writes interrupted by a crash), except those ``keep(path)`` spares (a
    live process is writing them). Returns how many."""
    count = 0
    if root.is_dir():
        for path in root.rglob(".*.part.*"):
            if path.is_file() and not keep(path):
                path.unlink(missing_ok=True)
                count += 1
    return count


@dataclass(frozen=True)
class Recovery:
    """What crash recovery found: renders and board batches left "running", partial files removed."""

    renders: int = 0
    batches: int = 0
    partial_files: int = 0
    jobs: int = 0  # queued jobs that were running: they run again

    def __bool__(self) -> bool:
        return bool(self.renders or self.batches or self.partial_files or self.jobs)

    def describe(self) -> str:
        return (f"{self.renders} render(s) and {self.batches} board batch(es) marked interrupted, "
                f"{self.partial_files} partial file(s) removed"
                + (f", {self.jobs} queued job(s) that were running will run again" if self.jobs else ""))


def recover_after_crash(history: HistoryStore, boards, renders_dir: Path, at_start: bool = True) -> Recovery:
    """Clean up after processes that died: only the data folder's owner calls this, at start-up before it renders
    (``at_start``), and now and then while it runs. What a live process runs (a command-line render beside the
    owner, identified by pid and start time: liveness.py) is left alone: its running rows and batches, and its
    partial files. At start-up a partial file named after no render (a GIF, an export) goes only when no other
    process renders; later only the files of the rows found dead go (the owner itself may be writing the rest).
    ``boards``: a ``BoardStore`` on the same database."""
    spared = liveness.alive_elsewhere if at_start else liveness.alive
    running = history.running_claims()
    renders, batches = history.mark_interrupted(spared), boards.mark_interrupted(spared)
    live = {rid for rid, by in running.items() if spared(by)}
    dead = set(running) - live
    others = bool(live) or any(spared(by) for by in boards.running_claims().values())

    def keep(path: Path) -> bool:
        rid = _row_of_partial(path)
        if not at_start:
            return rid not in dead
        row = history.get(rid) if rid else None  # looked up now: a live process may have started it meanwhile
        return others if row is None else row["status"] == "running" and spared(row.get("claimed_by"))

    walk = at_start or dead  # a sweep while the studio runs looks at the files only when a render died
    return Recovery(renders, batches, remove_partial_files(renders_dir, keep) if walk else 0)


def _loose(path: Path, renders_dir: Path) -> bool:
    """A file nothing else deletes: under ``[<session>/]inputs`` or ``exports``, or a GIF the CLI wrote."""
    parts = path.relative_to(renders_dir).parts[:-1]
    return path.suffix.lower() == ".gif" or any(p in LOOSE_FOLDERS for p in parts[:2])


def purge_expired_files(renders_dir: Path, ttl_hours: float, keep: set[str] = frozenset()) -> int:
    """Space mode: delete board inputs, exports and GIFs last written more than ``ttl_hours`` ago, except the
    paths in ``keep`` (inputs a board still uses). Renders' videos and thumbnails are History's. A file that
    disappears meanwhile (the UI deleted it) is skipped. Returns how many went."""
    cutoff = time.time() - ttl_hours * 3600
    keep = {str(Path(p).resolve()) for p in keep}
    count = 0
    for path in list(renders_dir.rglob("*")) if renders_dir.is_dir() else []:
        try:
            if not _loose(path, renders_dir) or str(path.resolve()) in keep or not path.is_file():
                continue
            if path.stat().st_mtime < cutoff:
                path.unlink()
                count += 1
        except FileNotFoundError:
            continue
    return count


def purge_expired(history: HistoryStore, ttl_hours: float, boards=None, renders_dir: Path | None = None) -> int:
    """Delete renders created more than ``ttl_hours`` ago, and (given the app's ``BoardStore``) boards not changed
    for that long, and (given the renders folder) the loose files of ``purge_expired_files``. Returns how many
    renders, boards and files went."""
    cutoff = (datetime.now(timezone.utc) - timedelta(hours=ttl_hours)).isoformat(timespec="milliseconds")
    count = history.purge(cutoff) + (boards.purge(cutoff) if boards is not None else 0)
    if renders_dir is not None:
        keep = boards.input_files() if boards is not None else set()
        count += purge_expired_files(Path(renders_dir), ttl_hours, keep)
    return count


class Janitor:
    """A daemon thread that purges expired renders (boards, files) every ``interval`` seconds until stopped.

    A pass that fails (a locked database, a file deleted at the same moment) is logged and counted in
    ``failures``; the next pass tries again."""

    def __init__(self, history: HistoryStore, ttl_hours: float, interval: float = 600.0, boards=None,
                 renders_dir: Path | None = None):
        self.history, self.ttl_hours, self.interval, self.boards = history, ttl_hours, interval, boards
        self.renders_dir = renders_dir
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="janitor", daemon=True)

    def start(self) -> "Janitor":
        self._thread.start()
        return self

    def run_once(self) -> int | None:
        """One pass: how many renders, boards and files went, or None if it failed (logged)."""
        try:
            return purge_expired(self.history, self.ttl_hours, self.boards, self.renders_dir)
        except Exception:
            self.failures += 1
            log.exception("Space clean-up pass failed; the next one (in %g s) tries again", self.interval)
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
