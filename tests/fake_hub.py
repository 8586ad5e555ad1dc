"""A stand-in for the Hugging Face hub on 127.0.0.1: serves one repo from a folder, over real HTTP.

It answers what huggingface_hub 2.4 calls for a download (read in its code): ``/api/models/{repo}/revision/{rev}``
(model_info), ``/api/models/{repo}/tree/{rev}`` (list_repo_tree) and HEAD/GET ``/{repo}/resolve/{rev}/{path}``
with ETag (git blob id, or X-Linked-Etag = sha256 for LFS files), X-Repo-Commit, Content-Length and Range. No xet
headers, so huggingface_hub never switches to xet. For the tests it counts the body bytes it sends per file,
can drop the connection once after N bytes of a file, and can hold a file at a byte offset until told to go on.

A hostile hub, for the security tests: ``listing`` changes tree entries (a traversal ``path`` or ``oid``, a size
that is not the file's), ``extra`` adds entries (served with ``extra_data``), ``tamper`` serves a file with its
bytes changed (the listed sha256 is then wrong) and ``commit`` can be set to any string.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin")


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self, repo: str, folder: Path, chunk: int = 8192, delay: float = 0.0):
        self.repo = repo
        self.files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
                      if p.is_file()}
        self.commit = hashlib.sha1(repo.encode() + b"".join(self.files.values())).hexdigest()
        self.chunk, self.delay = chunk, delay
        self.served: Counter[str] = Counter()  # body bytes sent, per file
        self.gets: list[dict] = []  # each GET of a file: {"file", "range", "sent"}
        self.break_once: dict[str, int] = {}  # file -> drop the connection after this many bytes (once)
        self.cut_at: dict[str, int] = {}  # file -> every GET stops at this offset and drops the connection
        self.hold: tuple[str, int] | None = None  # (file, offset): stop there until `go` is set
        self.held, self.go = threading.Event(), threading.Event()
        self.listing: dict[str, dict] = {}  # file -> fields of its tree entry to replace ("path", "oid", "size", "lfs")
        self.extra: list[dict] = []  # tree entries added as they are
        self.extra_data: dict[str, bytes] = {}  # what a GET of an extra entry's path returns
        self.tamper: set[str] = set()  # files served with their first bytes changed (same length)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---- the repo -------------------------------------------------------------------------------------------
    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def etag(self, path: str) -> str:
        data = self.files[path]
        return hashlib.sha256(data).hexdigest() if self.is_lfs(path) else _git_oid(data)

    @property
    def total_bytes(self) -> int:
        return sum(len(d) for d in self.files.values())

    def largest(self) -> str:
        return max(self.files, key=lambda p: len(self.files[p]))

    def tree(self) -> list[dict]:
        entries = []
        for path, data in self.files.items():
            entry = {"type": "file", "path": path, "size": len(data), "oid": _git_oid(data)}
            if self.is_lfs(path):
                entry["lfs"] = {"oid": self.etag(path), "size": len(data), "pointerSize": 134}
            entries.append({**entry, **self.listing.get(path, {})})
        return entries + list(self.extra)

    def body(self, path: str) -> bytes:
        data = self.files[path] if path in self.files else self.extra_data[path]
        return bytes(b ^ 0xFF for b in data[:16]) + data[16:] if path in self.tamper else data

    # ---- serving --------------------------------------------------------------------------------------------
    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self.go.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def count(self, get: dict, n: int) -> None:
        with self._lock:
            self.served[get["file"]] += n
            get["sent"] += n

    def gets_of(self, path: str) -> list[dict]:
        return [g for g in self.gets if g["file"] == path]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # a client that went away (a cancel): not news
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, *args) -> None:  # quiet
        pass

    def _json(self, payload) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _missing(self) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", "EntryNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self._route(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)

    def _route(self, head: bool) -> None:
        hub, path = self.hub, self.path.split("?", 1)[0]
        repo = re.escape(hub.repo)
        revs = f"(?:main|{re.escape(hub.commit)})"
        if re.fullmatch(f"/api/models/{repo}(?:/revision/{revs})?", path):
            return self._json({"id": hub.repo, "sha": hub.commit, "private": False,
                               "siblings": [{"rfilename": p} for p in hub.files]})
        if re.fullmatch(f"/api/models/{repo}/tree/{revs}", path):
            return self._json(hub.tree())
        match = re.fullmatch(f"/{repo}/resolve/{revs}/(.+)", path)
        if not match or (match.group(1) not in hub.files and match.group(1) not in hub.extra_data):
            return self._missing()
        self._file(match.group(1), head)

    def _file(self, name: str, head: bool) -> None:
        hub, data = self.hub, self.hub.body(name)
        start = 0
        ranged = self.headers.get("Range")
        if ranged and (m := re.fullmatch(r"bytes=(\d+)-", ranged.strip())):
            start = int(m.group(1))
        self.send_response(206 if start else 200)
        self.send_header("ETag", f'"{_git_oid(data)}"')
        if hub.is_lfs(name) and name in hub.files:
            self.send_header("X-Linked-Etag", f'"{hub.etag(name)}"')
            self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("X-Repo-Commit", hub.commit)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not head:
            get = {"file": name, "range": ranged, "sent": 0}
            hub.gets.append(get)
            self._body(get, data, start)

    def _body(self, get: dict, data: bytes, start: int) -> None:
        hub, pos, name = self.hub, start, get["file"]
        once = hub.break_once.pop(name, None)
        limits = [len(data)] + ([start + once] if once is not None else []) + ([hub.cut_at[name]] if name in
                                                                               hub.cut_at else [])
        stop = max(min(limits), start)
        while pos < stop:
            if hub.hold and hub.hold[0] == name and pos >= hub.hold[1] and not hub.held.is_set():
                hub.held.set()
                hub.go.wait(10)
            end = min(pos + hub.chunk, stop)
            try:
                self.wfile.write(data[pos:end])
                self.wfile.flush()
            except OSError:  # the client went away (a cancel)
                self.close_connection = True
                return
            hub.count(get, end - pos)
            pos = end
            if hub.delay:
                time.sleep(hub.delay)
        if stop < len(data):
            self.connection.shutdown(socket.SHUT_RDWR)  # a broken connection, mid-file
            self.close_connection = True
