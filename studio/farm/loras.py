"""LoRA files travel with a farm job: no worker opens a path of the studio's machine (no shared file system).

Studio side, ``Packer.pack(adapters)`` turns each ``lora.Adapter`` (a studio path) into a ``Parcel``: the file's
name, the sha256 of its bytes, its strength and a Ray object ref to the bytes, put once per file version
((path, mtime); the last ``KEEP`` versions are kept, so a storyboard's renders share one copy). Worker side,
``unpack(parcels)`` writes each file once into a worker-local cache folder named by content hash (in the
temporary folder) and gives back Adapters on those local paths, as ``lora.applied`` wants them.

Ray is imported only by the functions that need it; the local path never gets here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadLora
from ..engine.lora import Adapter

KEEP = 8  # file versions whose bytes the studio keeps in Ray's object store


@dataclass(frozen=True)
class Parcel:
    """One LoRA file of one job, as it crosses to a worker: no path, only its name, content and strength."""

    filename: str
    digest: str  # sha256 of the bytes
    data: object  # a Ray object ref to the bytes
    strength: float


class Packer:
    """The studio's side: Adapters -> Parcels, each file version read and put into Ray once."""

    def __init__(self, keep: int = KEEP):
        self.keep = keep
        self._put: OrderedDict[tuple[str, float], tuple[str, object]] = OrderedDict()
        self._lock = threading.Lock()

    def pack(self, adapters) -> tuple[Parcel, ...]:
        return tuple(self._parcel(a) for a in adapters)

    def _parcel(self, adapter: Adapter) -> Parcel:
        key = (adapter.path, adapter.mtime)
        with self._lock:
            if key not in self._put:
                self._put[key] = _put(Path(adapter.path).read_bytes())
                while len(self._put) > self.keep:
                    self._put.popitem(last=False)
            self._put.move_to_end(key)
            digest, ref = self._put[key]
        return Parcel(Path(adapter.path).name, digest, ref, adapter.strength)


def _put(data: bytes) -> tuple[str, object]:
    import ray

    return hashlib.sha256(data).hexdigest(), ray.put(data)


def cache_dir() -> Path:
    """The worker's own folder for LoRA files, on its own machine."""
    return Path(tempfile.gettempdir()) / "anyflow-studio-loras"


def unpack(parcels, folder: Path | None = None) -> tuple[Adapter, ...]:
    """The worker's side: each parcel as a local file (written once per content), as Adapters."""
    folder = folder or cache_dir()
    out = []
    for parcel in parcels:
        path = folder / parcel.digest / parcel.filename
        if not path.is_file():
            _write(path, parcel)
        out.append(Adapter(str(path), path.stat().st_mtime, parcel.strength))
    return tuple(out)


def _write(path: Path, parcel: Parcel) -> None:
    """Fetch the bytes, check them against the digest, and write them atomically (two workers may race)."""
    import ray

    data = ray.get(parcel.data)
    if hashlib.sha256(data).hexdigest() != parcel.digest:
        raise BadLora(f"LoRA {parcel.filename} arrived damaged on the worker (its sha256 differs). Try again.")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    part.write_bytes(data)
    os.replace(part, path)
