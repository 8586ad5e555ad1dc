"""File confinement: which files a value sent from outside (a browser, an API client, a database row) may name.

Every value that names a file is hostile until checked: a Gradio input, a History row's path, a queued job's
source. The studio reads and serves only regular files inside its own folders (after ``..`` and symlinks are
resolved): its renders, the UI's placeholders, the bundled examples, and, for inputs, Gradio's upload cache.
A refusal says the same thing whether or not the file exists, so it tells a caller nothing about the machine.

    confine.inside(path, confine.input_roots(settings))   # the resolved Path, or None (never raises)
    confine.confined(path, roots, what="Video")           # the resolved Path, or OutsideFolders (a StudioError)

Gradio-free (the engine and the UI both call it; ``studio.ui.guard`` wraps it for the UI).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from ..config import ASSETS_DIR, Settings
from ..errors import OutsideFolders


def upload_folder() -> Path:
    """Gradio's upload cache, where a browser's uploads land (as ``gradio.utils.get_upload_folder`` computes it)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or (Path(tempfile.gettempdir()) / "gradio")).expanduser()


def show_roots(settings: Settings) -> list[Path]:
    """Folders whose files the studio may show or serve: renders, the UI's placeholders, the bundled examples."""
    return [Path(settings.renders_dir), Path(settings.data_dir) / "ui", ASSETS_DIR / "examples"]


def input_roots(settings: Settings) -> list[Path]:
    """Folders an input (a first frame, a clip to continue or extend) may be read from: ``show_roots`` (renders
    include ``renders/inputs``, where files sent with a CLI job land) plus Gradio's upload cache."""
    return [*show_roots(settings), upload_folder()]


def inside(path, roots: Iterable[Path]) -> Path | None:
    """``path`` resolved (symlinks and ``..`` followed) if it is an existing regular file (not a FIFO, a device, a
    folder or a dotfile) inside one of ``roots``; else None. Never raises."""
    if not path or not isinstance(path, (str, Path)) or "\x00" in str(path):
        return None
    try:
        real = Path(path).expanduser().resolve(strict=True)
        if not real.is_file() or real.name.startswith("."):
            return None
        for root in roots:
            try:
                base = Path(root).expanduser().resolve()
            except (OSError, RuntimeError):
                continue
            if real.is_relative_to(base):
                return real
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a bad name
        return None
    return None


def refusal(what: str = "File") -> str:
    """The one message for a refused file (the same for a missing one: it reveals nothing about the machine)."""
    return (f"{what}: not a file this studio can use. Pick a render from History, or upload the file "
            f"(the studio reads only its own folders and uploads).")


def confined(path, roots: Iterable[Path], what: str = "File") -> Path:
    """``inside(path, roots)``, or OutsideFolders with ``refusal(what)``."""
    real = inside(path, roots)
    if real is None:
        raise OutsideFolders(refusal(what))
    return real
