"""Issue 27's figures in one run; the last line is the summary.

    python bench/scale.py [--shots 200] [--rounds 2]

- board_ui_ratio: a storyboard batch from the page against the same batch through `board run` (bench/board_ui.py:
  the larger of the wall and studio-CPU ratios, medians over --rounds interleaved rounds of --shots shots);
- follow_5000_ms: one follower's pass over 5000 waiting jobs (their places), median CPU ms (bench/queue_scale.py);
- id_collisions_200k: duplicate-id errors when 200,000 ids from history.new_id() are inserted in a tight loop.

Last line: ``board_ui_ratio R, follow_5000_ms F, id_collisions_200k C`` (issue 27 asks R <= 1.15, F <= 50, C = 0).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import board_ui  # noqa: E402
import queue_scale  # noqa: E402

from studio.store.history import new_id  # noqa: E402


def id_collisions(n: int = 200_000) -> int:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
    collisions = 0
    with conn:
        for _ in range(n):
            try:
                conn.execute("INSERT INTO t (id) VALUES (?)", [new_id()])
            except sqlite3.IntegrityError:
                collisions += 1
    return collisions


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shots", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--skip-ui", action="store_true", help="leave out the (slow) browser bench: R is printed as -")
    args = p.parse_args()
    collisions = id_collisions()
    print(f"ids: {collisions} collisions in 200,000", flush=True)
    follow = queue_scale.follow_5000_ms()
    print(f"follow: {follow:.1f} ms CPU per pass at 5000 waiting jobs", flush=True)
    ratio = "-"
    if not args.skip_ui:
        r = board_ui.run(args.shots, args.rounds)
        print(f"board ui ({r['shots']} shots, {r['rounds']} rounds): wall x{r['wall_ratio']:.2f}, studio CPU "
              f"x{r['cpu_ratio']:.2f}; studio memory {r['rss_before_mib']:.0f} -> {r['rss_after_mib']:.0f} MiB",
              flush=True)
        ratio = f"{r['ratio']:.2f}"
    print(f"board_ui_ratio {ratio}, follow_5000_ms {follow:.1f}, id_collisions_200k {collisions}")


if __name__ == "__main__":
    main()
