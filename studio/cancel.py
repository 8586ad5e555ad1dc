"""Cancellation that also reaches GPU work running in another process.

The UI, the CLI and storyboard batches hand the engine a ``threading.Event``. The GPU work of a render may run in
this process (the render thread) or in a worker forked for the call (ZeroGPU on a Space), where a
``threading.Event`` set in the parent is never seen. A ``CancelToken`` wraps the caller's event and pickles to a
flag file: in this process ``is_set()`` reads the event; in a worker it reads the file, which ``crossing()``
keeps in step with the event while the worker runs.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FLAG_DIR = Path(tempfile.gettempdir()) / "anyflow-studio-cancel"
_POLL_S = 0.02


class CancelToken:
    def __init__(self, event: threading.Event | None = None):
        self._event = event if event is not None else threading.Event()
        self.path = FLAG_DIR / f"{os.getpid()}-{secrets.token_hex(8)}"

    def is_set(self) -> bool:
        if self._event is not None:
            return self._event.is_set()
        return self.path.exists()  # unpickled in a worker process: the flag file is the signal

    def set(self) -> None:
        """In the studio process: set the event (``crossing`` mirrors it to a worker). In a worker: the flag."""
        if self._event is not None:
            self._event.set()
        else:
            self._touch()

    def _touch(self) -> None:
        FLAG_DIR.mkdir(parents=True, exist_ok=True)
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
            while not done.is_set():
                if self._event is not None and self._event.wait(_POLL_S):
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
