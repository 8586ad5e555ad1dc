"""A storyboard batch from the page against the same batch through `board run`, on one running studio.

    python bench/board_ui.py [--shots 40] [--rounds 2]

Starts the studio (app.py, the embedded model, a fresh data folder with a 1-step policy ``one`` so the page's
overhead shows against cheap renders), opens its page in Chromium (Playwright, /usr/bin/chromium), and for each
round, interleaved: `board run` of an N-shot board file (previews at ``one``), then "Preview all" on the page of
a board with the same N shots. Each batch's wall time (until the CLI exits / the page's status says Done) and the
studio process's CPU seconds (utime + stime from /proc) are measured. Prints the medians, their ratios, and the
studio's resident memory before the first page batch and after the last (issue 27 asks for at most 1.15x and
30 MiB after two 200-shot page batches). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.jobs.shot_rules import board_store  # noqa: E402
from studio.store.history import HistoryStore  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
POLICY = "one"


def shots(n: int) -> list[dict]:
    colours, moves = ("red", "blue", "green", "white"), ("left", "right", "up", "down")
    return [{"prompt": f"a {colours[i % 4]} circle moving {moves[(i // 4) % 4]}, take {i}", "seed": i}
            for i in range(n)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser_cpu() -> float:
    """CPU seconds of every Chromium process now running (the page's browser shares the studio's cores)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"chromium" in (entry / "cmdline").read_bytes():
                    total += cpu_seconds(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return total


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Studio:
    """The studio as a user runs it: its own process, its own port, the data folder it owns."""

    def __init__(self, data: Path):
        self.data = data
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        self.env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
        self.proc = subprocess.Popen([sys.executable, "app.py", "--data-dir", str(data), "--port", str(self.port)],
                                     cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}/"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for _ in range(600):
            try:
                opener.open(self.url, timeout=5)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit("the studio did not start")
                time.sleep(0.5)
        raise SystemExit("the studio did not answer")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def settle(pid: int, busy: float = 0.05, longest: float = 60.0) -> None:
    """Wait until the studio is idle (under ``busy`` of a core over a second), so that what a page load or the
    previous batch left running is not counted in the next batch."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < busy:
            return


def cli_batch(studio: Studio, name: str, n: int) -> tuple[float, float]:
    path = studio.data / f"{name}.json"
    path.write_text(json.dumps({"name": name, "preview_policy": POLICY, "shots": shots(n)}))
    settle(studio.proc.pid)
    cpu, started = cpu_seconds(studio.proc.pid), time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "studio", "board", "run", str(path), "--stage", "preview", "--quiet",
                          "--data-dir", str(studio.data)], cwd=ROOT, env=studio.env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"board run failed: {out.stderr[-2000:]}")
    return wall, cpu_seconds(studio.proc.pid) - cpu


def page_batch(studio: Studio, page, name: str, n: int) -> tuple[float, float]:
    history = HistoryStore(studio.data / "history.db")
    try:
        boards = board_store(history)
        board = boards.create(name, preview_policy=POLICY)
        for shot in shots(n):
            boards.add_shot(board.id, shot["prompt"], seed=shot["seed"])
    finally:
        history.close()
    page.goto(studio.url, wait_until="load")
    page.get_by_role("tab", name="Storyboard").click()  # opens the latest board: this one
    page.wait_for_function(f"document.querySelectorAll('#board-gallery .thumbnail-item').length === {n}",
                           timeout=300_000)
    settle(studio.proc.pid)
    cpu, started, browser = cpu_seconds(studio.proc.pid), time.perf_counter(), browser_cpu()
    page.click("#board-preview-all")
    page.wait_for_function("document.querySelector('#board-status')?.innerText.includes('✓ Done')",
                           timeout=3_600_000, polling=200)
    wall = time.perf_counter() - started
    status = page.inner_text("#board-status")
    if f"{n} rendered" not in status:
        raise SystemExit(f"the page batch did not render every shot: {status}")
    print(f"  page batch: the browser used {browser_cpu() - browser:.1f} s CPU", flush=True)
    spent = cpu_seconds(studio.proc.pid) - cpu
    page.goto("about:blank")  # the next `board run` round runs with no studio page open (its renders ran 3x slower)
    return wall, spent


def run(n: int, rounds: int) -> dict:
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="board-ui-"))
    (data / "policies.toml").write_text(f"[policies.{POLICY}]\nsteps = 1\n")
    studio = Studio(data)
    cli, ui = [], []
    try:
        cli_batch(studio, "warm-up", 2)  # the model loads
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            rss_before = None
            for r in range(rounds):
                cli.append(cli_batch(studio, f"cli-{r}", n))
                if rss_before is None:
                    rss_before = rss_mib(studio.proc.pid)
                ui.append(page_batch(studio, page, f"page-{r}", n))
                print(f"round {r + 1}: board run {cli[-1][0]:.1f} s wall, {cli[-1][1]:.1f} s studio CPU; "
                      f"page {ui[-1][0]:.1f} s wall, {ui[-1][1]:.1f} s studio CPU", flush=True)
            rss_after = rss_mib(studio.proc.pid)
            browser.close()
    finally:
        studio.close()
    wall = statistics.median(w for w, _ in ui) / statistics.median(w for w, _ in cli)
    cpu = statistics.median(c for _, c in ui) / statistics.median(c for _, c in cli)
    return {"shots": n, "rounds": rounds, "wall_ratio": wall, "cpu_ratio": cpu, "ratio": max(wall, cpu),
            "rss_before_mib": rss_before, "rss_after_mib": rss_after, "cli": cli, "page": ui}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shots", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    print(f"{args.shots} shots, 1-step previews, {args.rounds} rounds; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    r = run(args.shots, args.rounds)
    print(f"page / board run: wall x{r['wall_ratio']:.2f}, studio CPU x{r['cpu_ratio']:.2f}; studio memory "
          f"{r['rss_before_mib']:.0f} MiB before the page batches, {r['rss_after_mib']:.0f} MiB after "
          f"({r['rss_after_mib'] - r['rss_before_mib']:+.0f} MiB)")


if __name__ == "__main__":
    main()
