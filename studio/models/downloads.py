"""Model downloads from the hub: size and free disk checked up front, a background thread with progress, cancel,
and resume after a cancel, a broken connection or a restart.

huggingface_hub 2.4 writes each file to a process-unique temporary file and deletes it when a download stops, so
it resumes only inside one call (a dropped connection), never after a cancel or a restart. This module therefore
fetches each file itself into ``blobs/<id>.incomplete`` of the normal hub cache and continues it with a Range
request, moves it to ``blobs/<id>`` when complete (its checksum checked), and then lays out the snapshot as
huggingface_hub does (links, ``refs/main``) from the blobs already there: no byte twice, and the model manager's
offline-first resolve (``snapshot_download(local_files_only=True)``) finds the model afterwards.

The hub is not trusted (``HF_ENDPOINT`` can name any server): every name, id and size in its listing is checked
before anything is written (``check_listing``), no file is taken longer than listed, and each file's bytes must
match the sha256 (LFS) or git blob id the listing gave, or it is deleted and the download fails naming it.

Downloads are an explicit user action (the Download button, ``python -m studio models download``): they are
allowed unless the user said offline (``--offline`` or ``HF_HUB_OFFLINE=1``) or the studio is a public Space (a
visitor must not fill the disk or accept a licence for the operator). A non-commercial licence must be accepted
first (``accept_license=True``); the acceptance is remembered in ``<data dir>/licences.json``.
Nothing here holds a lock the renders use: renders on other models go on meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..config import Settings
from ..errors import DownloadFailed, NotEnoughDisk, StudioError
from .registry import ModelSpec, Registry

RETRIES = 5  # consecutive failed attempts (without new bytes) before a download gives up
SPEED_WINDOW_S = 5.0
SPACE_HINT = "Downloads are off on a shared Space"
OFFLINE_HINT = ("Downloads are off: the studio was started offline (--offline or HF_HUB_OFFLINE=1). Restart it "
                "without --offline and with HF_HUB_OFFLINE unset to download models.")


class _BadFile(DownloadFailed):
    """The hub sent a file that is not what it listed (too long, wrong checksum): deleted, never retried."""


class _Cancelled(Exception):
    """Raised inside the download thread when the user cancels."""


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def human_seconds(s: float | None) -> str:
    if s is None:
        return "time left unknown"
    if s < 90:
        return f"{s:.0f} s left"
    return f"{s / 60:.0f} min left" if s < 5400 else f"{s / 3600:.1f} h left"


def disk_free(path: Path) -> int:
    """Free bytes on the disk holding ``path`` (its nearest existing parent)."""
    path = Path(path).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def hub_endpoint() -> str:
    """Where the hub is: HF_ENDPOINT as it is now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def offline_reason(explicit: bool = False) -> str | None:
    """Why downloads are off, or None: the user said offline (``--offline``, HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return OFFLINE_HINT if explicit or env or constants.is_offline_mode() else None


def spec_for(registry: Registry, ref: str) -> ModelSpec:
    """The catalogue entry for an id or a hub repo; a repo not in the catalogue gets a plain entry to download."""
    if ref in registry.specs:
        return registry.get(ref)
    for spec in registry.specs.values():
        if spec.hub_repo == ref:
            return spec
    if ref.count("/") == 1 and not Path(ref).exists():
        return ModelSpec(id=ref, source=f"hub:{ref}", title=ref, origin="download")
    return registry.get(ref)  # raises UnknownModel with the known ids


# ---- what a download takes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    blob: str  # its name in the cache's blobs/: the LFS sha256, else the git blob id (what the hub's ETag says)


@dataclass(frozen=True)
class DownloadPlan:
    repo: str
    commit: str
    files: tuple[RemoteFile, ...]
    have_bytes: int  # complete blobs and partial files already in the cache
    free_bytes: int
    cache_dir: Path

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def remaining_bytes(self) -> int:
        return max(self.total_bytes - self.have_bytes, 0)

    @property
    def fits(self) -> bool:
        return self.remaining_bytes <= self.free_bytes

    def storage(self) -> Path:
        return self.cache_dir / ("models--" + self.repo.replace("/", "--"))

    def describe(self) -> str:
        kept = f" ({human_bytes(self.have_bytes)} already here)" if self.have_bytes else ""
        return (f"Download size {human_bytes(self.total_bytes)}{kept} · {human_bytes(self.free_bytes)} free "
                f"in {self.cache_dir}")


def _on_disk(storage: Path, blob: str) -> int:
    done = storage / "blobs" / blob
    if done.is_file():
        return done.stat().st_size
    part = storage / "blobs" / f"{blob}.incomplete"
    return part.stat().st_size if part.is_file() else 0


def make_plan(repo: str, revision: str = "main") -> DownloadPlan:
    """Ask the hub for the repo's commit and files (two API calls), and look at the cache and the disk."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api, cache = HfApi(endpoint=hub_endpoint()), hub_cache_dir()
    try:
        commit = api.model_info(repo, revision=revision).sha
        check_listing(DownloadPlan(repo, commit, (), 0, 0, cache))  # before the commit goes into a URL or a path
        tree = [f for f in api.list_repo_tree(repo, recursive=True, revision=commit) if isinstance(f, RepoFile)]
    except StudioError:
        raise
    except Exception as exc:  # network, unknown repo, gated, hub down
        raise DownloadFailed(f"Could not reach the hub for {repo}: {_reason(exc)}. Check the network (and "
                             f"HF_ENDPOINT / HF_TOKEN if you use them) and try again.") from None
    files = tuple(RemoteFile(f.path, f.size, f.lfs.sha256 if f.lfs else f.blob_id) for f in tree)
    plan = DownloadPlan(repo, commit, files, 0, disk_free(cache), cache)
    check_listing(plan)
    return replace(plan, have_bytes=sum(min(_on_disk(plan.storage(), f.blob), f.size) for f in files))


# ---- what the hub says is data, not a promise (HF_ENDPOINT can name any server) ------------------------------
COMMIT_ID = re.compile(r"[0-9a-f]{40}")
BLOB_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a git blob id (sha1) or an LFS sha256


def safe_repo_path(path) -> bool:
    """A file name from a hub listing that stays inside its snapshot folder: relative, '/'-separated, no '..'."""
    if not isinstance(path, str) or not path or len(path) > 1000 or any(c in path for c in "\\\x00:"):
        return False
    return not path.startswith("/") and all(part not in ("", ".", "..") for part in path.split("/"))


def _hostile(plan: DownloadPlan, what: str) -> DownloadFailed:
    return DownloadFailed(f"The hub at {hub_endpoint()} answered for {plan.repo} with {what}; refused, nothing was "
                          f"written. Check HF_ENDPOINT (it should be the Hugging Face hub or a mirror you trust).")


def check_listing(plan: DownloadPlan) -> None:
    """Refuse a listing whose commit, file names, blob ids or sizes could write outside the repo's cache folder
    (each name is checked, then its resolved place)."""
    if not isinstance(plan.commit, str) or not COMMIT_ID.fullmatch(plan.commit):
        raise _hostile(plan, f"a commit id that is not one ({str(plan.commit)[:80]!r})")
    storage = plan.storage().resolve()
    for f in plan.files:
        if not safe_repo_path(f.path):
            raise _hostile(plan, f"a file name that leaves the model's folder ({str(f.path)[:200]!r})")
        if not isinstance(f.blob, str) or not BLOB_ID.fullmatch(f.blob):
            raise _hostile(plan, f"a file id that is not a sha1 or sha256 for {f.path} ({str(f.blob)[:80]!r})")
        if not isinstance(f.size, int) or isinstance(f.size, bool) or f.size < 0:
            raise _hostile(plan, f"a size that is not one for {f.path} ({f.size!r})")
        placed = (storage / "snapshots" / plan.commit / f.path).resolve()
        if not placed.is_relative_to(storage / "snapshots" / plan.commit):
            raise _hostile(plan, f"a file name that leaves the model's folder ({f.path[:200]!r})")


def file_digest(path: Path, blob: str) -> str:
    """What ``blob`` should equal for the file at ``path``: its sha256 (an LFS file's id), else its git blob id."""
    if len(blob) == 64:
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---- one download --------------------------------------------------------------------------------------------
@dataclass
class DownloadStatus:
    model_id: str
    repo: str
    state: str = "running"  # running | done | failed | cancelled
    done_bytes: int = 0
    total_bytes: int = 0
    speed: float = 0.0  # bytes per second over the last few seconds
    file: str = ""
    message: str = ""
    folder: str | None = None  # the snapshot folder, once done

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def eta_seconds(self) -> float | None:
        return (self.total_bytes - self.done_bytes) / self.speed if self.speed > 0 else None

    def describe(self) -> str:
        if not self.running:
            return self.message
        return (f"{human_bytes(self.done_bytes)} of {human_bytes(self.total_bytes)} · "
                f"{human_bytes(self.speed)}/s · {human_seconds(self.eta_seconds)}")


@dataclass
class DownloadJob:
    """One model's download in a background thread. ``status()`` is safe to poll from any thread."""

    spec: ModelSpec
    plan: DownloadPlan
    on_progress: Callable[[DownloadStatus], None] | None = None  # called from the download thread, per chunk
    finished: threading.Event = field(default_factory=threading.Event)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _samples: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._status = DownloadStatus(self.spec.id, self.plan.repo, done_bytes=self.plan.have_bytes,
                                      total_bytes=self.plan.total_bytes)

    def status(self) -> DownloadStatus:
        with self._lock:
            return replace(self._status)

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> DownloadStatus:
        self.finished.wait(timeout)
        return self.status()

    # ---- the thread --------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            for f in self.plan.files:
                self._fetch(f)
            folder = self._lay_out()
            self._finish("done", f"✓ {self.spec.id} downloaded ({human_bytes(self.plan.total_bytes)})", folder)
        except _Cancelled:
            self._finish("cancelled", f"Download of {self.spec.id} cancelled; {self._kept()} kept. Download again "
                                      f"to continue where it stopped.")
        except StudioError as exc:
            self._finish("failed", str(exc))
        except OSError as exc:  # the disk filled up, a permission, a rename
            self._finish("failed", self._failed(f"could not write to {self.plan.cache_dir}: {_reason(exc)}"))
        except Exception as exc:  # anything else: the job still ends, and says why
            self._finish("failed", self._failed(f"unexpected error: {_reason(exc)}"))
        finally:
            self.finished.set()  # whatever happened, nobody waits forever

    def _finish(self, state: str, message: str, folder: Path | None = None) -> None:
        with self._lock:
            self._status.state, self._status.message, self._status.speed = state, message, 0.0
            self._status.folder = str(folder) if folder else None
        self.finished.set()

    def _kept(self) -> str:
        s = self.status()
        return f"{human_bytes(s.done_bytes)} of {human_bytes(s.total_bytes)}"

    def _failed(self, why: str) -> str:
        return (f"Download of '{self.spec.id}' ({self.plan.repo}) failed: {why}. {self._kept()} are kept: run the "
                f"download again (the Download button or `python -m studio models download {self.spec.id}`) to "
                f"continue where it stopped.")

    def _count(self, n: int, file: str) -> None:
        now = time.monotonic()
        with self._lock:
            s = self._status
            s.done_bytes, s.file = s.done_bytes + n, file
            self._samples.append((now, s.done_bytes))
            while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW_S:
                self._samples.popleft()
            t0, b0 = self._samples[0]
            s.speed = (s.done_bytes - b0) / (now - t0) if now > t0 else s.speed
            seen = replace(s)
        if self.on_progress is not None:
            self.on_progress(seen)

    def _fetch(self, f: RemoteFile) -> None:
        """One file into blobs/<etag>, resuming its .incomplete part with a Range request."""
        from filelock import FileLock, Timeout

        blobs = self.plan.storage() / "blobs"
        if (blobs / f.blob).is_file():
            return
        blobs.mkdir(parents=True, exist_ok=True)
        part = blobs / f"{f.blob}.incomplete"
        try:
            with FileLock(str(part) + ".lock", timeout=0):
                self._fetch_locked(f, part)
        except Timeout:
            raise DownloadFailed(self._failed(f"another process is downloading {f.path} right now")) from None
        self._verify(f, part)
        part.replace(blobs / f.blob)

    def _verify(self, f: RemoteFile, part: Path) -> None:
        """The file's bytes against the checksum the hub listed (an LFS file's sha256, else its git blob id); a
        mismatch deletes the file and fails the download, naming it."""
        got = file_digest(part, f.blob)
        if got != f.blob:
            part.unlink(missing_ok=True)
            kind = "sha256" if len(f.blob) == 64 else "git blob id"
            raise _BadFile(f"Download of '{self.spec.id}' ({self.plan.repo}) failed: {f.path} does not match the "
                           f"{kind} the hub listed ({f.blob[:16]}…, the file gives {got[:16]}…); the file was "
                           f"deleted. The hub at {hub_endpoint()} sent a damaged or different file: try again, or "
                           f"check HF_ENDPOINT.")

    def _fetch_locked(self, f: RemoteFile, part: Path) -> None:
        import httpx2

        if f.size == 0:  # an empty file: nothing to fetch (the loop below would never create it)
            part.write_bytes(b"")
            return
        url, headers = self._source(f)
        failures = 0
        while (have := part.stat().st_size if part.exists() else 0) < f.size:
            try:
                self._stream(url, headers, part, have, f)
                failures = 0
            except _BadFile:
                raise
            except (httpx2.TransportError, DownloadFailed) as exc:
                got_more = part.exists() and part.stat().st_size > have
                failures = 0 if got_more else failures + 1
                if failures >= RETRIES or isinstance(exc, DownloadFailed):
                    raise DownloadFailed(self._failed(f"{f.path}: {_reason(exc)}")) from None
                if self._cancel.wait(0.2 * failures):  # a short pause, cut short by a cancel
                    raise _Cancelled from None
        if part.stat().st_size != f.size:
            part.unlink()
            raise DownloadFailed(self._failed(f"{f.path} came back with the wrong size; it will be fetched again"))

    def _source(self, f: RemoteFile) -> tuple[str, dict]:
        """The URL to GET (the hub's redirect, e.g. a CDN, followed once) and the headers (auth for the hub only)."""
        from urllib.parse import urlparse

        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.utils import build_hf_headers

        endpoint = hub_endpoint()
        url = hf_hub_url(self.plan.repo, f.path, revision=self.plan.commit, endpoint=endpoint)
        headers = build_hf_headers()
        try:
            meta = get_hf_file_metadata(url, endpoint=endpoint, retry_on_errors=True)
        except Exception as exc:
            raise DownloadFailed(self._failed(f"{f.path}: {_reason(exc)}")) from None
        if meta.location and urlparse(meta.location).netloc != urlparse(url).netloc:
            headers.pop("authorization", None)
        return meta.location or url, headers

    def _stream(self, url: str, headers: dict, part: Path, have: int, f: RemoteFile) -> None:
        """GET the file from ``have`` on into ``part``; never more bytes than the listing's size (a server that
        sends more is cut off: it cannot fill the disk)."""
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session, hf_raise_for_status

        if have:
            headers = {**headers, "Range": f"bytes={have}-"}
        with get_session().stream("GET", url, headers=headers, follow_redirects=True,
                                  timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as response:
            try:
                hf_raise_for_status(response)
            except Exception as exc:
                raise DownloadFailed(_reason(exc)) from None
            mode, name = "ab", f.path
            if have and response.status_code == 200:  # the server ignored the Range: start the file again
                mode, have = "wb", 0
                self._count(-part.stat().st_size, name)
            with part.open(mode) as out:
                for chunk in response.iter_bytes():  # as the bytes arrive: a broken connection loses none
                    have += len(chunk)
                    if have > f.size:
                        break
                    out.write(chunk)
                    self._count(len(chunk), name)
                    if self._cancel.is_set():
                        raise _Cancelled
        if have > f.size:
            part.unlink(missing_ok=True)
            raise _BadFile(f"Download of '{self.spec.id}' ({self.plan.repo}) failed: the hub sent more of {f.path} "
                           f"than the {f.size} bytes it listed; the file was deleted. Try again, or check HF_ENDPOINT.")

    def _lay_out(self) -> Path:
        """Lay the snapshot out as huggingface_hub does (``snapshots/<commit>/<path>`` linking to ``blobs/<id>``,
        ``refs/main``) from the checked listing, so ``snapshot_download(local_files_only=True)`` finds it. Done
        here rather than by ``snapshot_download``, which would list the repo again and name blobs after each
        file's ETag: a second, unchecked answer from the hub."""
        storage = self.plan.storage()
        snapshot = storage / "snapshots" / self.plan.commit
        for f in self.plan.files:
            pointer, blob = snapshot / f.path, storage / "blobs" / f.blob
            pointer.parent.mkdir(parents=True, exist_ok=True)
            pointer.unlink(missing_ok=True)
            try:
                pointer.symlink_to(os.path.relpath(blob, pointer.parent))
            except OSError:  # no symlinks here (Windows without developer mode): a copy, as huggingface_hub does
                shutil.copyfile(blob, pointer)
        refs = storage / "refs"
        refs.mkdir(parents=True, exist_ok=True)
        (refs / "main").write_text(self.plan.commit, encoding="utf-8")
        return snapshot


# ---- the studio's downloads ----------------------------------------------------------------------------------
class DownloadManager:
    """Starts, tracks and cancels model downloads; one job per model at a time."""

    def __init__(self, settings: Settings, registry: Registry | None = None, offline: bool = False):
        self.settings = settings
        self.registry = registry
        self.offline = offline  # the user said --offline (the environment is checked on each call)
        self._jobs: dict[str, DownloadJob] = {}
        self._plans: dict[str, tuple[float, DownloadPlan | StudioError]] = {}  # repo -> (when, answer), for the UI
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()

    @property
    def licence_file(self) -> Path:
        return self.settings.data_dir / "licences.json"

    def offline_reason(self) -> str | None:
        """Why downloads are off, or None: a public Space (any visitor could start one), or the user said offline."""
        return SPACE_HINT if self.settings.space else offline_reason(self.offline)

    def spec(self, ref: str) -> ModelSpec:
        return spec_for(self.registry or Registry.load(self.settings.user_models_file), ref)

    # ---- licences ----------------------------------------------------------------------------------------
    def accepted(self) -> dict:
        try:
            return json.loads(self.licence_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def needs_licence(self, spec: ModelSpec) -> bool:
        return spec.is_noncommercial and spec.hub_repo not in self.accepted()

    def _accept(self, spec: ModelSpec) -> None:
        accepted = self.accepted()
        accepted[spec.hub_repo] = {"licence": spec.license, "model": spec.id,
                                   "accepted": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.licence_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.licence_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(accepted, indent=2), encoding="utf-8")
        tmp.replace(self.licence_file)

    # ---- downloads ---------------------------------------------------------------------------------------
    def plan(self, spec: ModelSpec, max_age_s: float = 0.0) -> DownloadPlan:
        """The download's size and the free disk space (asks the hub, or reuses an answer up to ``max_age_s``
        old, failures included: the UI asks on every pick). Refused when offline."""
        self._check_can_download(spec)
        with self._lock:
            when, answer = self._plans.get(spec.hub_repo, (0.0, None))
        if answer is None or time.monotonic() - when > max_age_s:
            try:
                answer = make_plan(spec.hub_repo)
            except StudioError as exc:  # remembered too: an unreachable hub is not asked again on every pick
                answer = exc
            with self._lock:
                self._plans[spec.hub_repo] = (time.monotonic(), answer)
        if isinstance(answer, StudioError):
            raise answer
        return answer

    def _check_can_download(self, spec: ModelSpec) -> None:
        if spec.hub_repo is None:
            raise DownloadFailed(f"Model '{spec.id}' is not a hub model ({spec.source}); there is nothing to "
                                 f"download.")
        if (reason := self.offline_reason()) is not None:
            raise DownloadFailed(f"Cannot download '{spec.id}' ({spec.hub_repo}). {reason}")

    def start(self, ref: str | ModelSpec, accept_license: bool = False,
              on_progress: Callable[[DownloadStatus], None] | None = None) -> DownloadJob:
        """Check, then download in the background. Refused up front (a StudioError) when offline, when the licence
        is not accepted, or when the disk has no room. A download already running is returned as it is."""
        spec = ref if isinstance(ref, ModelSpec) else self.spec(ref)
        self._check_can_download(spec)
        with self._start_lock:
            running = self.job(spec.id)
            if running is not None and running.status().running:
                return running
            if spec.is_noncommercial and accept_license:
                self._accept(spec)
            if self.needs_licence(spec):
                raise DownloadFailed(f"'{spec.id}' is under a non-commercial licence ({spec.license}). Read it and "
                                     f"accept it first: tick the licence box, or pass --accept-license.")
            plan = make_plan(spec.hub_repo)
            if not plan.fits:
                raise NotEnoughDisk(self._no_room(spec, plan))
            job = DownloadJob(spec, plan, on_progress)
            with self._lock:
                self._jobs[spec.id] = job
            threading.Thread(target=job.run, name=f"download-{spec.id}", daemon=True).start()
            return job

    @staticmethod
    def _no_room(spec: ModelSpec, plan: DownloadPlan) -> str:
        return (f"Not enough disk space to download '{spec.id}' ({plan.repo}): it needs "
                f"{human_bytes(plan.remaining_bytes)} and {plan.cache_dir} has {human_bytes(plan.free_bytes)} free. "
                f"Free some space, or set HF_HUB_CACHE to a folder on a bigger disk and restart.")

    def job(self, model_id: str) -> DownloadJob | None:
        with self._lock:
            return self._jobs.get(model_id)

    def status(self, model_id: str) -> DownloadStatus | None:
        job = self.job(model_id)
        return job.status() if job else None

    def cancel(self, model_id: str) -> bool:
        job = self.job(model_id)
        if job is None or not job.status().running:
            return False
        job.cancel()
        return True


def download_with_bar(manager: DownloadManager, ref: str, accept_license: bool = False, stream=None) -> DownloadStatus:
    """``python -m studio models download``: the same download, headless, with a progress bar on ``stream``.
    Ctrl-C cancels (what came is kept for the next run). Raises a StudioError when it fails."""
    import sys

    from tqdm import tqdm

    stream = stream or sys.stderr
    started = time.monotonic()
    job = manager.start(ref, accept_license=accept_license)
    bar = tqdm(total=job.plan.total_bytes, initial=job.plan.have_bytes, unit="B", unit_scale=True,
               unit_divisor=1024, desc=job.spec.id, file=stream)
    try:
        while not job.finished.wait(0.25):
            bar.update(job.status().done_bytes - bar.n)
    except KeyboardInterrupt:
        job.cancel()
        job.wait()
        raise
    finally:
        bar.update(job.status().done_bytes - bar.n)
        bar.close()
    status = job.status()
    if status.state != "done":
        raise DownloadFailed(status.message)
    took = time.monotonic() - started
    print(f"{status.message} in {took:.1f} s, into {status.folder}", file=stream)
    return status
