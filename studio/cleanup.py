"""House-keeping: partial files left by a crash, and (Space mode) renders past their time to live."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .history import HistoryStore


def remove_partial_files(root: Path) -> int:
    """Delete ``.NAME.part.EXT`` files (writes interrupted by a crash). Returns how many."""
    count = 0
    if root.is_dir():
        for path in root.rglob(".*.part.*"):
            if path.is_file():
                path.unlink()
                count += 1
    return count


def purge_expired(history: HistoryStore, ttl_hours: float, boards=None) -> int:
    """Delete renders created more than ``ttl_hours`` ago, and (given the app's ``BoardStore``) boards not changed
    for that long. Returns how many renders and boards went."""
    cutoff = (datetime.now(timezone.utc) - timedelta(hours=ttl_hours)).isoformat(timespec="milliseconds")
    return history.purge(cutoff) + (boards.purge(cutoff) if boards is not None else 0)


class Janitor:
    """A daemon thread that purges expired renders every ``interval`` seconds until stopped."""

    def __init__(self, history: HistoryStore, ttl_hours: float, interval: float = 600.0, boards=None):
        self.history, self.ttl_hours, self.interval, self.boards = history, ttl_hours, interval, boards
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="janitor", daemon=True)

    def start(self) -> "Janitor":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            purge_expired(self.history, self.ttl_hours, self.boards)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
