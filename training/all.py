"""Run the whole recipe in order, skipping finished stages (each stage also resumes from its checkpoint).

    nohup nice -n 10 .venv/bin/python -m training.all --workdir runs > runs/all.log 2>&1 &

Stages: vae -> teacher -> student -> export -> bench (bench/any_step.py writes runs/bench/).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from .common import REPO, workdir

STAGES = ("vae", "teacher", "student", "export", "bench")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--only", nargs="*", default=None, help="stages to run (default: all)")
    args, rest = ap.parse_known_args(argv)
    work = workdir(args.workdir)
    for stage in args.only or STAGES:
        done = work / stage / "done.json"
        if stage not in ("export", "bench") and done.exists():
            print(f"== {stage}: done ({done})", flush=True)
            continue
        if stage == "bench":
            cmd = [sys.executable, str(REPO / "bench" / "any_step.py"), "--workdir", str(work)]
        else:
            cmd = [sys.executable, "-m", f"training.{stage}", "--workdir", str(work)] + rest
        print(f"== {stage}: {' '.join(cmd)}", flush=True)
        t0 = time.time()
        rc = subprocess.call(cmd, cwd=REPO)
        print(f"== {stage}: exit {rc} after {time.time() - t0:.0f}s", flush=True)
        if rc:
            sys.exit(rc)


if __name__ == "__main__":
    main()
