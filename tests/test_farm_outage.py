"""A lost Ray (issue 24 item 11): a farm that started its own local Ray starts it again when the raylet is killed,
and the queued jobs and the interrupted one all render; none fails for the outage. Runs in its own process
(tests/farm_outage.py), so the session's shared Ray (test_farm*.py) is never touched."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("ray")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_killed_raylet_of_the_farms_own_ray_is_started_again_and_every_job_ends_done(settings):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "farm_outage.py"), str(settings.data_dir),
                          str(settings.models_file)], capture_output=True, text=True, timeout=420, cwd=ROOT)
    assert out.returncode == 0, (out.returncode, out.stdout[-2000:], out.stderr[-3000:])
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["killed"] == 1
    assert report["states"] == ["done", "done", "done"], (report, [l for l in out.stderr.splitlines() if "studio" in l])
    assert report["epoch"] == 1  # started again once
    assert any("own Ray was lost" in s for s in report["statuses"]), report["statuses"]
    assert report["rows"] == 3  # one history row per job and budget: the interrupted job's row is not doubled
