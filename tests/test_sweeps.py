"""Sweeps on the tiny test models: the CLI end to end (its JSON keys and exports), the blind review hiding the
budget, policies written only when accepted, and a sweep that survives kill -9 and resumes without re-rendering
what finished."""

import json
import os
import signal
import sqlite3
import subprocess
import sys

from conftest import ROOT, wait_for_query

from studio.engine import media
from studio.jobs import sweep_review, sweep_run
from studio.cli.commands import main
from studio.config import Settings
from studio.app.services import Studio
from studio.store.sweeps import SweepStore

PROMPTS = ["a red circle moving right on a black background", "a blue square moving up on a white background"]


def _run(studio, **spec) -> dict:
    events = list(sweep_run.run_events(studio, dict({"prompts": PROMPTS, "budgets": [1, 2], "seeds": 1,
                                                     "models": ["t-bidi"]}, **spec)))
    assert events[-1]["type"] == "report", events[-1]
    return events[-1]


def test_cli_sweep_run_json_keys_and_exports(tmp_path, models_file, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two prompts\n" + "\n".join(PROMPTS) + "\n", encoding="utf-8")
    common = ["--data-dir", str(tmp_path / "data"), "--models-file", str(models_file), "--device", "cpu"]
    assert main(["sweep", "run", *common, "--prompts", str(prompts), "--budgets", "1,2,4", "--seeds", "1",
                 "--model", "t-bidi", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"id", "status", "counts", "summary", "cliffs", "off", "policies", "exports", "spec"} <= set(report)
    assert report["status"] == "done" and report["counts"]["rendered"] == 6 and isinstance(report["cliffs"], list)
    first = report["summary"][0]
    assert [g["steps"] for g in report["summary"]] == [1, 2, 4] and first["renders"] == 2
    assert {"median", "p90", "denoise", "decode"} <= set(first["seconds"])
    assert first["peak_memory_gb"] == "not measured"
    assert {"convergence_ssim", "convergence_psnr", "change", "flicker", "sharpness"} <= set(first["metrics"])
    assert report["summary"][-1]["metrics"]["convergence_ssim"]["mean"] == 1.0  # the top budget is its own reference
    assert first["accepted"]["reviewed"] == 0 and "clip_score" in report["off"]
    for path in report["exports"].values():
        assert os.path.getsize(path) > 0
    rows = json.loads(open(report["exports"]["renders_json"], encoding="utf-8").read())
    assert len(rows) == 6 and {"steps", "seconds", "flicker", "review"} <= set(rows[0])
    sid = report["id"]
    assert main(["sweep", "policies", sid, *common]) == 0
    out = capsys.readouterr().out
    assert "final" in out and "steps" in out and "not written" in out
    assert not (tmp_path / "data" / "policies.toml").exists()  # proposed, not written
    assert main(["sweep", "policies", sid, *common, "--write", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["written"]
    assert f'source = "sweep:{sid}"' in open(written, encoding="utf-8").read()
    assert main(["sweep", "report", "no-such-sweep", *common]) == 2
    assert "no sweep 'no-such-sweep'" in capsys.readouterr().err


def test_blind_review_hides_the_budget(studio):
    report = _run(studio)
    sid = report["id"]
    first = sweep_review.clip(studio, sid, 0)
    assert set(first) == {"item", "index", "total", "reviewed", "verdict", "video"} and first["total"] == 4
    item = SweepStore(studio.history).item(first["item"])
    assert item["render_id"] not in first["video"] and media.read_metadata(first["video"]) == {}
    assert "steps" not in json.dumps(first) and str(item["steps"]) + " steps" not in json.dumps(first)
    order = [sweep_review.clip(studio, sid, k)["item"] for k in range(4)]
    assert sorted(order) == sorted(i["id"] for i in SweepStore(studio.history).items(sid))
    for k, item_id in enumerate(order):
        sweep_review.review(studio, sid, item_id, "accept" if k % 2 == 0 else "reject")
    again = sweep_run.report(studio, sid, export=False)
    assert sum(g["accepted"]["reviewed"] for g in again["summary"]) == 4 and again["counts"]["reviewed"] == 4
    assert sweep_review.clip(studio, sid, 1)["reviewed"] == 4


def test_bad_sweeps_are_one_message(studio):
    for spec, words in (({"prompts": []}, "1 to"), ({"prompts": ["x"], "budgets": [0]}, "1-128"),
                        ({"prompts": ["x"], "models": ["nope"]}, "nope"),
                        ({"prompts": ["x"], "mode": "i2v"}, "needs an image")):
        events = list(sweep_run.run_events(studio, spec))
        assert [e["type"] for e in events] == ["error"] and words in events[0]["message"], events


def test_a_sweep_survives_kill_9_and_resumes_without_rerendering(tmp_path, models_file):
    spec = {"prompts": [PROMPTS[0]], "budgets": [1, 2, 12], "seeds": 1, "models": ["t-bidi"]}
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "sweep_crash_worker.py"), str(tmp_path),
                             str(models_file), json.dumps(spec)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, HF_HUB_OFFLINE="1", SWEEP_STEP_SECONDS="0.5"))  # 12 steps: 6 s
    db = tmp_path / "history.db"
    try:  # the two cheap budgets measured, the 12-step one running
        wait_for_query("SELECT count(*) = 2 AND (SELECT count(*) FROM renders WHERE status = 'running') = 1 "
                       "FROM sweep_items WHERE render_id IS NOT NULL", db, timeout=300)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with sqlite3.connect(db) as conn:
        before = dict(conn.execute("SELECT id, finished_at FROM renders WHERE status = 'ok'").fetchall())
    studio = Studio.open(Settings(data_dir=tmp_path, models_file=models_file, default_model="t-bidi", device="cpu"))
    try:
        assert studio.claim_data_folder(kind="cli")
        studio.recover_after_crash()
        sid = SweepStore(studio.history).list()[0]["id"]
        events = list(sweep_run.resume_events(studio, sid))
        assert events[0] == {"type": "sweep", "id": sid, "items": 3, "done": 2, "todo": 1}
        assert [e["steps"] for e in events if e["type"] == "render"] == [12]
        assert events[-1]["status"] == "done" and events[-1]["counts"]["rendered"] == 3
        with sqlite3.connect(db) as conn:
            after = dict(conn.execute("SELECT id, finished_at FROM renders WHERE status = 'ok'").fetchall())
            # the killed render's row says so; its budget rendered again in a job of its own (this process's)
            assert conn.execute("SELECT status FROM renders WHERE status != 'ok'").fetchall() == [("interrupted",)]
        assert {k: after[k] for k in before} == before and len(after) == 3  # the finished two untouched
    finally:
        studio.close()


def test_an_image_to_video_sweep_measures_first_frame_fidelity(studio, sample_media):
    report = _run(studio, mode="i2v", models=["t-bidi-kf"],
                  prompts=[{"prompt": PROMPTS[0], "image": str(sample_media["image"])}])
    assert report["status"] == "done" and report["spec"]["mode"] == "i2v"
    for group in report["summary"]:
        assert {"i2v_psnr", "i2v_ssim", "convergence_ssim"} <= set(group["metrics"])
        assert 0 < group["metrics"]["i2v_psnr"]["mean"] <= 100
    assert "judge" in report["off"]  # not the shapes model


def test_the_review_view_shows_no_budget(studio):
    from studio.ui import sweep_review_tab

    sid = _run(studio)["id"]
    text, video, index, item = sweep_review_tab.show(studio, sid, 0)
    assert index == 0 and "1 of 4" in text and "steps" not in text.replace("Keys", "")
    assert "t-bidi" not in text and SweepStore(studio.history).item(item)["render_id"] not in video
    text, _, index, _ = sweep_review_tab.judge(studio, sid, 0, item, "accept")
    assert index == 1 and "1 reviewed" in text


def test_sweep_commands_go_to_the_owning_studio(tmp_path, tiny_dirs, capsys):
    from conftest import launch_app

    from studio.ui import owner_api

    demo, url, studio = launch_app(tmp_path / "owner", tiny_dirs)
    try:
        assert studio.claim_data_folder()
        owner_api.serve(demo.app, studio, url)
        prompts = tmp_path / "prompts.json"
        prompts.write_text(json.dumps(PROMPTS[:1]), encoding="utf-8")
        data = ["--data-dir", str(studio.settings.data_dir)]
        assert main(["sweep", "run", *data, "--prompts", str(prompts), "--budgets", "1,2", "--seeds", "1",
                     "--model", "t-bidi", "--quiet"]) == 0
        out, err = capsys.readouterr()
        assert f"sent to the studio at {url}" in err and "cliffs:" in out
        sid = SweepStore(studio.history).list()[0]["id"]
        assert main(["sweep", "report", sid, *data, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["counts"]["rendered"] == 2
        assert main(["sweep", "policies", sid, *data, "--write"]) == 0
        assert "written to" in capsys.readouterr().out
        assert studio.policies.get("final").steps in (1, 2)  # in force in the running studio at once
        assert "sweep:" + sid in (studio.settings.data_dir / "policies.toml").read_text(encoding="utf-8")
    finally:
        demo.close()
        studio.close()
