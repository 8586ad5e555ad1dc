"""What the UI may hand to the browser: only files inside the studio's own folders.

A path read from the database (a History row, a board file) is data, not a promise: anyone who
can write the SQLite file or a board could point ``video_path`` at ``/etc/passwd`` or at the
history database itself. Gradio copies any file an output returns from the working directory or
the temp directory into its cache and serves it, so every path the UI gives a ``gr.Video``,
``gr.Image`` or gallery goes through ``servable`` first.

    roots = guard.roots(studio)
    path = guard.servable(row["video_path"], roots)   # a resolved Path, or None
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..engine import confine
from ..app.desktop import PLACEMENT_NAME
from ..app.ownership import ANNOUNCEMENT_NAME, LOCK_NAME

# What the UI says where a database path was refused.
NOT_SERVED = ("⚠ This render's file is not shown: its recorded path is outside the studio's renders folder "
              "(the history entry may have been edited or moved).")
MAX_UPLOAD_MB = 200  # default upload limit (app.py --max-upload-mb)


def roots(studio) -> list[Path]:
    """Folders whose files the UI may show: renders, the UI's own placeholders, the bundled examples."""
    return confine.show_roots(studio.settings)


def input_roots(studio) -> list[Path]:
    """Folders an input (first frame, clip) recorded in History may be re-used from: the renders and
    examples above plus Gradio's upload folder (where the browser's uploads land)."""
    return confine.input_roots(studio.settings)


def blocked(studio) -> list[str]:
    """Files under the data folder that must never be served, whatever else is allowed (launch's blocked_paths)."""
    history = Path(studio.settings.history_path).resolve()
    names = [history, Path(f"{history}-wal"), Path(f"{history}-shm"), Path(f"{history}-journal"),
             Path(studio.settings.user_models_file).resolve(), Path(studio.settings.user_policies_file).resolve()]
    data = Path(studio.settings.data_dir).resolve()  # the owner's files: studio.json holds the owner-API token
    names += [data / n for n in (ANNOUNCEMENT_NAME, LOCK_NAME, "licences.json", PLACEMENT_NAME)]
    return [str(p) for p in names]


def servable(path, allowed: Iterable[Path]) -> Path | None:
    """``path`` resolved (symlinks and ``..`` followed) if it is an existing regular file inside one of
    ``allowed`` and not a dotfile; else None. Never raises (``confine.inside``)."""
    return confine.inside(path, allowed)


def within(path, folder: Path) -> bool:
    """True if ``path`` (resolved) lies inside ``folder``: used before deleting a file a row names."""
    return servable(path, [folder]) is not None
