"""Download benchmark: the tiny AnyFlow repo through the local stand-in hub (tests/fake_hub.py), over real HTTP.

    .venv/bin/python bench/downloads.py              # 5 full downloads, then a cancel at 64 kB and the resume
    .venv/bin/python bench/downloads.py --runs 3 --cancel-at 100000

Prints the throughput of a full download (each into an empty cache: hub API calls, HEAD per file, the GETs and the
snapshot layout included), and, after a cancel mid-file, how many bytes the resume fetched again: only the rest of
the cancelled file and the files after it, never what is already on disk. Offline: nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.pop(name, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cancel-at", type=int, default=65536, help="bytes into the largest file")
    args = parser.parse_args()

    from huggingface_hub import constants

    from fake_hub import FakeHub
    from studio.config import Settings
    from studio.models.downloads import DownloadManager
    from studio.models.tiny import tiny_pipeline

    root = Path(tempfile.mkdtemp(prefix="bench-downloads-"))
    tiny_pipeline("causal", seed=0).save_pretrained(root / "repo")
    hub = FakeHub("bench-org/tiny-far", root / "repo")
    os.environ["HF_ENDPOINT"] = hub.start()
    settings = Settings(data_dir=root / "data")
    print(f"repo: {len(hub.files)} files, {hub.total_bytes / 1024:.1f} KB; hub at {hub.url}")

    rates = []
    for run in range(args.runs):
        constants.HF_HUB_CACHE = str(root / f"cache-{run}")
        started = time.perf_counter()
        status = DownloadManager(settings).start(hub.repo).wait(60)
        took = time.perf_counter() - started
        assert status.state == "done", status.message
        rates.append(hub.total_bytes / took)
        print(f"  full download {run + 1}: {took * 1000:.0f} ms, {hub.total_bytes / took / 1024:.0f} KB/s")
    print(f"throughput: median {statistics.median(rates) / 1024:.0f} KB/s over {args.runs} runs")

    constants.HF_HUB_CACHE = str(root / "cache-cancel")
    hub.served.clear()
    big = hub.largest()
    before = sum(len(hub.files[p]) for p in hub.files if p < big)
    hub.hold, reached = (big, args.cancel_at), threading.Event()

    def watch(s):
        if s.file == big and s.done_bytes >= before + args.cancel_at:
            reached.set()

    job = DownloadManager(settings).start(hub.repo, on_progress=watch)
    reached.wait(30)
    job.cancel()
    hub.go.set()
    kept = job.wait(30).done_bytes
    sent_before = sum(hub.served.values())
    hub.served.clear()
    resumed = DownloadManager(settings).start(hub.repo).wait(60)
    assert resumed.state == "done", resumed.message
    again = sum(hub.served.values())
    print(f"cancel at {args.cancel_at} B into {big} ({len(hub.files[big])} B): {kept} of {hub.total_bytes} B "
          f"on disk (the hub had sent {sent_before} B)")
    print(f"resume fetched {again} B = the {hub.total_bytes - kept} B not yet on disk; "
          f"re-fetched {again - (hub.total_bytes - kept)} B")
    hub.stop()


if __name__ == "__main__":
    main()
