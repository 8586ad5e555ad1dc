"""What the disk under the data folder says, as one message a user can act on.

    folder = make_folder(path)              # the data folder, made if missing; DataFolderUnusable if it cannot be
    if is_full(exc): raise full(data_dir)   # ENOSPC, or SQLite's "database or disk is full"

Standard library only (the store and the engine use it; a light CLI command too).
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from ..errors import DataFolderUnusable, DiskFull

_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
LOW_MB = 50  # an SQLite "disk I/O error" with less than this free is taken for a full disk


def make_folder(path: str | Path) -> Path:
    """``path`` as a folder that exists (made with its parents if missing); DataFolderUnusable, naming the path and
    what is wrong, when it is a file, under a file, or cannot be made (no permission, /proc, a full disk)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataFolderUnusable(f"The data folder {path} is a file, not a folder: give --data-dir (or "
                                 "STUDIO_DATA_DIR) a folder.") from None
    except OSError as exc:
        if is_full(exc):  # ENOSPC itself: /proc and the like report 0 MB free too, so no guess from free space
            raise full(path, "free space and try again") from None
        raise DataFolderUnusable(f"Cannot use {path} as the data folder: {exc.strerror or exc}. Give --data-dir "
                                 "(or STUDIO_DATA_DIR) a folder you can write to.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataFolderUnusable(f"Cannot write to the data folder {path}: give --data-dir (or STUDIO_DATA_DIR) a "
                                 "folder you can write to.")
    return path


def free_mb(path: str | Path) -> int | None:
    """Free space on the file system holding ``path`` (its nearest existing parent), in MB; None if unknown."""
    path = Path(path)
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free // 2**20
        except OSError:
            continue
    return None


def is_full(exc: BaseException, where: str | Path | None = None) -> bool:
    """True for a write refused because the disk (or the user's quota) is full: ENOSPC/EDQUOT, or SQLite's
    "database or disk is full". SQLite reports some writes on a full disk (its WAL growing) as "disk I/O error":
    that counts when ``where`` is given and its file system has less than LOW_MB free."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    text = str(exc).lower()
    if isinstance(exc, sqlite3.DatabaseError) and ("database or disk is full" in text or
                                                   getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL):
        return True
    if where is not None and (isinstance(exc, OSError) or "disk i/o error" in text or "no space" in text):
        free = free_mb(where)  # an encoder's broken pipe, SQLite's I/O error: on a disk that has no room left
        return free is not None and free < LOW_MB
    return False


def full(data_dir: str | Path, then: str = "free space and press Render again") -> DiskFull:
    """The one message for a full disk; ``then``: what to do (a render: free space and press Render again)."""
    free = free_mb(data_dir)
    space = f" ({free} MB free)" if free is not None else ""
    return DiskFull(f"The disk holding {data_dir} is full{space}: {then}.")


def corrupt_database(path: str | Path, exc: BaseException) -> DataFolderUnusable:
    return DataFolderUnusable(f"{path} is not a studio database ({exc}): it is damaged or another program's file. "
                              "Move it away (the studio starts a new, empty history) or restore it from a backup.")
