"""CLI wall time, before and after, in one run: a render sent to a running studio vs --standalone; history; models.

    .venv/bin/python bench/cli.py                          # this checkout only
    .venv/bin/python bench/cli.py --old /tmp/old           # and an older checkout (git worktree add /tmp/old REV)

Starts `python app.py` on a fresh data folder (embedded default model, CPU, offline) and waits for its API, warms
it with one render (its model load, not counted). Then each command runs ``--repeat`` times as a fresh
`python -m studio` subprocess, and the median wall time is reported with the count of modules it imported
(``-X importtime``) and whether torch was among them. The standalone render and the old checkout's render run on
a second data folder (a studio refuses --standalone beside it; the old CLI would load its own copy there too).
The machine may be shared: compare the columns with each other, not with another run's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RENDER = ["render", "--prompt", "a red circle moving left", "--steps", "1", "--seed", "0", "--quiet"]


def run_cli(checkout: Path, argv: list[str], data_dir: Path) -> tuple[float, int, bool, subprocess.CompletedProcess]:
    """(wall seconds, modules imported, torch imported?, the process) for one `python -X importtime -m studio`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", STUDIO_DEVICE="cpu")
    cmd = [sys.executable, "-X", "importtime", "-m", "studio", *argv, "--data-dir", str(data_dir)]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} in {checkout} failed:\n{out.stderr[-2000:]}")
    imports = [line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    return wall, len(imports) - 1, "torch" in imports, out


def start_studio(data_dir: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "app.py", "--data-dir", str(data_dir), "--device", "cpu"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if json.loads((data_dir / "studio.json").read_text()).get("token"):
                return proc
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            raise SystemExit("the studio exited before it announced its API")
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the studio did not announce its API within 300 s")


def measure(label: str, checkout: Path, argv: list[str], data_dir: Path, repeat: int) -> dict:
    runs = [run_cli(checkout, argv, data_dir) for _ in range(repeat)]
    row = {"case": label, "median_s": round(statistics.median(r[0] for r in runs), 2),
           "min_s": round(min(r[0] for r in runs), 2), "modules": runs[-1][1], "torch": runs[-1][2]}
    print(f"{label:<40} {row['median_s']:>7.2f} s (min {row['min_s']:.2f})  {row['modules']:>5} modules  "
          f"torch {'yes' if row['torch'] else 'no'}", flush=True)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", type=Path, help="an older checkout to measure too (e.g. a git worktree at 9cde2d2)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        owned, alone = Path(tmp) / "owned", Path(tmp) / "alone"
        studio = start_studio(owned)
        try:
            run_cli(ROOT, RENDER, owned)  # warm-up: the studio loads its model once
            rows = [measure("render via the running studio", ROOT, RENDER, owned, args.repeat),
                    measure("render --standalone (no studio)", ROOT, RENDER + ["--standalone"], alone, args.repeat),
                    measure("history (beside the studio)", ROOT, ["history"], owned, args.repeat),
                    measure("models (beside the studio)", ROOT, ["models"], owned, args.repeat)]
            if args.old:
                rows += [measure("old: render (in-process)", args.old, RENDER, alone, args.repeat),
                         measure("old: history", args.old, ["history"], owned, args.repeat),
                         measure("old: models", args.old, ["models"], owned, args.repeat)]
        finally:
            studio.send_signal(signal.SIGINT)
            try:
                studio.wait(timeout=30)
            except subprocess.TimeoutExpired:
                studio.kill()
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
