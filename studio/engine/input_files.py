"""Input files named by a path (``--image``, ``--video``, a board's shots): regular files under a size limit, read
with a bound.

    size = check(path, "--image", limit_mb)     # MediaError for a device (/dev/zero), a FIFO, a folder, too big
    data = read(path, "--image", limit_mb)      # the bytes, never more than the limit even if the file grows

A path is looked at with ``stat`` before it is opened (opening a FIFO waits for a writer), then opened without
blocking and checked again on the open file (the path may have been swapped meanwhile). Standard library only:
the CLI sends files to a running studio without importing torch.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import MediaError

DEFAULT_LIMIT_MB = 200.0  # the studio's default --max-upload-mb
_CHUNK = 1 << 20


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


UPLOAD_LIMIT = "its --max-upload-mb"


def _checked(path: Path, what: str, st: os.stat_result, limit_mb: float, limit_is: str = UPLOAD_LIMIT) -> int:
    what = f"{what}: " if what.startswith("--") or " " in what else ""  # a flag or a description; a field names itself
    if not stat.S_ISREG(st.st_mode):
        raise MediaError(f"{what}{path} is {_kind(st.st_mode)}, not a regular file: give an image or video file.")
    if st.st_size > limit_mb * 2**20:
        raise MediaError(f"{what}{path} is {st.st_size / 2**20:,.0f} MB; the studio takes files up to "
                         f"{limit_mb:g} MB ({limit_is}).")
    return st.st_size


def check(path: str | Path, what: str = "The file", limit_mb: float = DEFAULT_LIMIT_MB,
          limit_is: str = UPLOAD_LIMIT) -> int:
    """The file's size; MediaError when it is missing, not a regular file, or over ``limit_mb``."""
    path = Path(path).expanduser()
    try:
        st = path.stat()
    except OSError as exc:
        raise MediaError(f"{what} not found: {path}" + ("" if isinstance(exc, FileNotFoundError) else
                                                         f" ({exc.strerror or exc})")) from None
    return _checked(path, what, st, limit_mb, limit_is)


def read(path: str | Path, what: str = "The file", limit_mb: float = DEFAULT_LIMIT_MB,
         limit_is: str = UPLOAD_LIMIT) -> bytes:
    """The bytes of a regular file of at most ``limit_mb`` (see ``check``), read in chunks up to the limit."""
    path = Path(path).expanduser()
    check(path, what, limit_mb, limit_is)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise MediaError(f"{what}: cannot read {path}: {exc.strerror or exc}.") from None
    with os.fdopen(fd, "rb") as f:
        _checked(path, what, os.fstat(f.fileno()), limit_mb, limit_is)  # the path may have been swapped since the check
        bound = int(limit_mb * 2**20)
        parts, total = [], 0
        while chunk := f.read(min(_CHUNK, bound + 1 - total)):
            parts.append(chunk)
            total += len(chunk)
            if total > bound:
                raise MediaError(f"{what}: {path} grew past {limit_mb:g} MB while it was read ({limit_is}).")
    return b"".join(parts)
