"""One process owns a data folder: the one holding ``<data dir>/studio.lock``.

    lock = FolderLock(data_dir)
    if lock.acquire():            # non-blocking; False when another process holds it
        ...                       # this process owns the folder: it alone recovers after a crash
        lock.announce(url)        # tell others where it answers (once it knows)
        lock.release()
    else:
        print(describe(read_announcement(data_dir)))

The lock is an ``flock`` on the file (``msvcrt.locking`` on Windows): the system drops it when the holder exits,
even on SIGKILL, so a crashed owner never blocks the next one. The lock file itself is never deleted (a process
waiting on the old inode would hold a lock nobody else sees). Next to it, ``studio.json`` announces the owner (pid,
host, url, started_at; kind: "studio" for the web app, "cli" for a command-line render; token: the secret the
studio's API asks for, so the file is readable by its user only); it is only a hint: an announcement whose lock is
free is stale.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..store import disk

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCK_NAME = "studio.lock"
ANNOUNCEMENT_NAME = "studio.json"


@dataclass(frozen=True)
class Announcement:
    pid: int
    host: str
    url: str | None
    started_at: str
    kind: str = "studio"  # studio: serves an API at url once announced | cli: a command-line render, no API
    token: str | None = None  # what the studio's API asks for in the X-Studio-Token header

    def describe(self) -> str:
        where = f" at {self.url}" if self.url else ""
        return f"pid {self.pid} on {self.host}{where}, since {self.started_at}"


def _try_lock(fd: int, shared: bool = False) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
    try:  # Windows: an exclusive lock on the first byte (there is no shared mode)
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class FolderLock:
    """The data folder's ownership, held by this process between ``acquire`` and ``release``."""

    def __init__(self, data_dir: str | Path, kind: str = "studio"):
        self.data_dir = Path(data_dir)
        self.kind = kind
        self.path = self.data_dir / LOCK_NAME
        self.announcement_path = self.data_dir / ANNOUNCEMENT_NAME
        self._fd: int | None = None
        self._started_at = ""

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, url: str | None = None) -> bool:
        """Take the lock if it is free (never waits) and announce this process. True if this process owns it."""
        if self._fd is not None:
            return True
        disk.make_folder(self.data_dir)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            return False
        self._fd = fd
        self._started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.announce(url)
        return True

    def announce(self, url: str | None, token: str | None = None) -> None:
        """(Re)write the announcement, e.g. once the server knows its address and API token. Only the owner writes
        it, readable by its user only (the token lets a process drive the studio)."""
        if self._fd is None:
            raise RuntimeError("only the process holding the data folder's lock announces itself")
        note = Announcement(os.getpid(), socket.gethostname(), url, self._started_at, self.kind, token)
        tmp = self.announcement_path.with_name(f".{ANNOUNCEMENT_NAME}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(asdict(note)))
        os.replace(tmp, self.announcement_path)  # readers see the old file or the new one, never half of one

    def release(self) -> None:
        if self._fd is None:
            return
        self.announcement_path.unlink(missing_ok=True)  # before unlocking: a new owner writes its own after
        _unlock(self._fd)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_announcement(data_dir: str | Path) -> Announcement | None:
    """What the owner wrote, if anything readable (it may be stale: see ``current_owner``)."""
    try:
        data = json.loads((Path(data_dir) / ANNOUNCEMENT_NAME).read_text(encoding="utf-8"))
        return Announcement(int(data["pid"]), str(data["host"]), data.get("url"), str(data["started_at"]),
                            str(data.get("kind", "studio")), data.get("token"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_owned(data_dir: str | Path) -> bool:
    """True if some process holds the lock. Probes with a shared lock, released at once (on Windows, which has no
    shared mode, an exclusive one): an owner starting in that instant could find it busy."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY if fcntl is not None else os.O_RDWR)
    except (FileNotFoundError, NotADirectoryError):  # no folder, or --data-dir names a file: nobody owns it
        return False
    try:
        if _try_lock(fd, shared=True):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)


def current_owner(data_dir: str | Path) -> Announcement | None:
    """The live owner's announcement; None when no process holds the lock (a left-over announcement is stale)."""
    return read_announcement(data_dir) if is_owned(data_dir) else None
