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


def purge_expired(history: HistoryStore, ttl_hours: float) -> int:
    cutoff = (datetime.now(timezone.utc) - timedelta(hours=ttl_hours)).isoformat(timespec="milliseconds")
    return history.purge(cutoff)


class Janitor:
    """A daemon thread that purges expired renders every ``interval`` seconds until stopped."""

    def __init__(self, history: HistoryStore, ttl_hours: float, interval: float = 600.0):
        self.history, self.ttl_hours, self.interval = history, ttl_hours, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="janitor", daemon=True)

    def start(self) -> "Janitor":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            purge_expired(self.history, self.ttl_hours)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
