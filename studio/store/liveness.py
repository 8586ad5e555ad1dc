"""Who claimed a job or a render row, and whether that process still lives.

A claimer is named ``local:HOST:PID:START``: START is the process's start time (``BOOT.TICKS``: the first 8
characters of the kernel's boot id and the start tick from ``/proc/PID/stat``), so a pid reused after a reboot or
by another program never passes for the process that died. Where there is no ``/proc`` (macOS, Windows) START is
empty and the pid alone decides, as names written before START existed (``local:HOST:PID``) do.
Standard library only: `queue list` and the recovery at start-up import no torch.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path

PROC = Path("/proc")


def _boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return ""


def start_time(pid: int) -> str:
    """``BOOT.TICKS`` of a live process; "" where /proc cannot tell (no /proc, the process is gone or a zombie)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": the comm may hold spaces and parens
    if len(fields) <= 19 or fields[0] in ("Z", "X"):  # a zombie has died: only its parent has not reaped it yet
        return ""
    return f"{_boot_id()}.{fields[19]}"


@lru_cache(maxsize=1)
def _own(pid: int) -> str:
    return f"local:{socket.gethostname()}:{pid}:{start_time(pid)}"


def identity() -> str:
    """This process as a claimer (a dispatcher's name in the queue, the owner of the render rows it starts)."""
    return _own(os.getpid())


def parse(claimer: str | None) -> tuple[str, int, str] | None:
    """(host, pid, start) of a ``local:`` claimer; None for anything else (a farm node, nothing, garbage)."""
    kind, _, rest = (claimer or "").partition(":")
    parts = rest.rsplit(":", 2)
    if kind != "local" or len(parts) < 2:
        return None
    host, pid, start = parts if len(parts) == 3 else (*parts, "")  # the old form: local:HOST:PID
    return (host, int(pid), start) if pid.isdigit() else None


def is_self(claimer: str | None) -> bool:
    return claimer == identity()


def alive(claimer: str | None) -> bool:
    """True if ``claimer`` names a process that still runs on this machine (this one included): the same pid
    with the same start time. A process of another user, another host, or a reused pid counts as gone."""
    found = parse(claimer)
    if found is None or found[0] != socket.gethostname():
        return False
    host, pid, start = found
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError, OverflowError):  # gone, or another user's (not ours, so ours is gone)
        return False
    now = start_time(pid)
    return now == start if start else (now != "" or not PROC.is_dir())


def alive_elsewhere(claimer: str | None) -> bool:
    """Alive and not this process: what a new owner must leave alone at start-up (it runs nothing yet, so
    anything claimed in its own name is a dead process's that had the same pid, e.g. pid 1 in a container)."""
    return not is_self(claimer) and alive(claimer)
