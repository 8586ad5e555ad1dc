"""The farm across nodes (issue 14, item 5): a node lost mid-render costs only that render's unfinished budgets.

A simulated two-node cluster (ray.cluster_utils.Cluster) runs in its own process (tests/farm_cluster.py), as
one Ray per process allows; the script prints what it saw as one JSON line."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("ray")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cluster(settings, mode: str) -> dict:
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "farm_cluster.py"), str(settings.data_dir),
                          str(settings.models_file), mode], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_node_lost_mid_render_the_render_completes_on_another_node(settings):
    report = _cluster(settings, "lost")
    print(json.dumps(report))  # the figures (remove_node_s, resumed_s) for the record, with -s
    assert report["on_node_b"], report  # the render ran on the node that went away
    assert report["failed"] == [], report
    assert report["results"] == [[0, 2], [1, 64]], report  # each budget once: the preview did not run again
    assert report["rows"] == [["ok", 2], ["ok", 64]], report  # one row ok per budget, no failed or duplicate row
    assert report["integrity"] == "ok"
    assert any("died mid-render" in s for s in report["statuses"]), report
    assert report["workers"][1] and report["head"][:8] in report["workers"][1], report  # finished on the head
    assert (report["before"], report["after"]) == (2, 1), report  # the lost node's worker is forgotten
