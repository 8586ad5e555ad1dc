"""Cancellation that also reaches GPU work running in another process.

The UI, the CLI and storyboard batches hand the engine a ``threading.Event``. The GPU work of a render may run in
this process (the render thread) or in a worker forked for the call (ZeroGPU on a Space), where a
``threading.Event`` set in the parent is never seen. A ``CancelToken`` wraps the caller's event and pickles to a
flag file: in this process ``is_set()`` reads the event; in a worker it reads the file, which ``crossing()``
keeps in step with the event while the worker runs. The flags live in a folder of this user's that nobody else
can reach: a folder someone else made there is not trusted (its flags are ignored, none are written).
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_POLL_S = 0.02


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None  # Windows: the temp folder is the user's own


def default_flag_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"anyflow-studio-cancel-{_uid() if _uid() is not None else 'user'}"


FLAG_DIR = default_flag_dir()


def _private(folder: Path) -> bool:
    """True if ``folder`` is a real folder (no link) of this user's that no one else can reach; a folder of
    this user's open to others is closed first."""
    try:
        st = folder.lstat()
        if not stat.S_ISDIR(st.st_mode) or (_uid() is not None and st.st_uid != _uid()):
            return False
        if st.st_mode & 0o077:
            folder.chmod(0o700)
    except OSError:
        return False
    return True


class CancelToken:
    def __init__(self, event: threading.Event | None = None):
        self._event = event if event is not None else threading.Event()
        self.path = FLAG_DIR / f"{os.getpid()}-{secrets.token_hex(8)}"

    @property
    def event(self) -> threading.Event | None:
        """The studio process's event, to wait on (None in a worker process, where the flag file is the signal)."""
        return self._event

    def is_set(self) -> bool:
        if self._event is not None:
            return self._event.is_set()
        # unpickled in a worker process: the flag file is the signal, in a folder only this user can write
        return _private(self.path.parent) and self.path.exists()

    def set(self) -> None:
        """In the studio process: set the event (``crossing`` mirrors it to a worker). In a worker: the flag."""
        if self._event is not None:
            self._event.set()
        else:
            self._touch()

    def _touch(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            return
        if _private(self.path.parent):  # never write into a folder someone else owns
            self.path.touch()

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self._event, self.path = None, state["path"]

    @contextmanager
    def crossing(self) -> Iterator["CancelToken"]:
        """While the block runs GPU work in another process: mirror the event into the flag file within
        ``_POLL_S``; remove the file afterwards."""
        done = threading.Event()

        def mirror() -> None:
            if self._event is None:  # a worker's token: nothing to mirror (the loop would spin)
                return
            while not done.is_set():
                if self._event.wait(_POLL_S):
                    self._touch()
                    return

        watcher = threading.Thread(target=mirror, name="cancel-mirror", daemon=True)
        watcher.start()
        try:
            yield self
        finally:
            done.set()
            watcher.join()
            self.path.unlink(missing_ok=True)
