"""Model downloads, for real over HTTP: a local stand-in hub (tests/fake_hub.py) serves a tiny AnyFlow repo; the
client is pointed at it with HF_ENDPOINT and writes into a temporary hub cache. No network beyond 127.0.0.1.

conftest sets HF_HUB_OFFLINE=1 for every test; the `online` fixture lifts it for these tests only."""

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fake_hub import FakeHub
from studio.models import downloads
from studio.config import Settings
from studio.models.downloads import DownloadManager
from studio.errors import DownloadFailed, NotEnoughDisk
from studio.engine.render import RenderRequest
from studio.app.services import Studio

ROOT = Path(__file__).resolve().parent.parent
REPO = "test-org/tiny-far"
NONCOMMERCIAL = "NVIDIA Open Model License (non-commercial)"


@pytest.fixture()
def hub(tiny_dirs):
    fake = FakeHub(REPO, tiny_dirs["t-far"][1])
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture()
def online(monkeypatch, tmp_path, hub):
    """Downloads on, from the stand-in hub, into a cache of this test's own."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read once at import, while conftest had it on
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _models_toml(tmp_path: Path, tiny_dirs) -> Path:
    path = tmp_path / "models.toml"
    native = "height = 32\nwidth = 32\nframes = 9\nfps = 8\nmemory_gb = 0.01\n"
    path.write_text(
        f'[models."hub-far"]\nsource = "hub:{REPO}"\nfamily = "causal"\nmodes = ["t2v", "i2v", "v2v"]\n{native}'
        f'license = "test"\n\n'
        f'[models."hub-nc"]\nsource = "hub:{REPO}"\nfamily = "causal"\n{native}license = "{NONCOMMERCIAL}"\n\n'
        f'[models."t-far"]\nsource = "local:{tiny_dirs["t-far"][1].as_posix()}"\nfamily = "causal"\n{native}',
        encoding="utf-8")
    return path


@pytest.fixture()
def hub_settings(tmp_path, tiny_dirs):
    return Settings(data_dir=tmp_path / "data", default_model="t-far", models_file=_models_toml(tmp_path, tiny_dirs),
                    device="cpu")


@pytest.fixture()
def studio(hub_settings):
    s = Studio.open(hub_settings)
    yield s
    s.close()


def _watch_until(hub, offset: int):
    """(on_progress callback, Event): the event is set once the client has written ``offset`` bytes of the
    largest file, where the stand-in hub holds it: the download then waits on the hub, mid-file."""
    big, reached = hub.largest(), threading.Event()
    before = sum(len(hub.files[p]) for p in hub.files if p < big)
    hub.hold = (big, offset)

    def watch(status):
        if status.file == big and status.done_bytes >= before + offset:
            reached.set()

    return watch, reached


def _blobs(cache: Path) -> Path:
    return cache / ("models--" + REPO.replace("/", "--")) / "blobs"


def test_a_download_reports_progress_and_then_loads_through_the_normal_path(online, hub, studio):
    spec = studio.registry.get("hub-far")
    assert studio.models.cached_folder(spec) is None
    big = hub.largest()
    watch, reached = _watch_until(hub, 65536)
    job = studio.downloads.start("hub-far", on_progress=watch)
    assert reached.wait(10)
    seen = job.status()
    hub.go.set()
    assert seen.running and seen.file == big and seen.total_bytes == hub.total_bytes
    assert 65536 <= seen.done_bytes < hub.total_bytes and seen.speed > 0 and seen.eta_seconds > 0
    assert "of 309.2 KB" in seen.describe() and "/s" in seen.describe()
    done = job.wait(30)
    assert done.state == "done" and done.done_bytes == done.total_bytes == hub.total_bytes, done.message
    assert dict(hub.served) == {p: len(d) for p, d in hub.files.items()}  # every byte once, nothing after
    folder = studio.models.cached_folder(spec)
    assert folder is not None and str(folder) == done.folder
    assert studio.models.get("hub-far").folder == folder  # the offline-first resolve finds it and loads it


def test_cancel_then_resume_after_a_restart_fetches_only_the_rest(online, hub, hub_settings):
    big = hub.largest()
    watch, reached = _watch_until(hub, 65536)
    job = DownloadManager(hub_settings).start("hub-far", on_progress=watch)
    assert reached.wait(10)
    job.cancel()
    hub.go.set()
    cancelled = job.wait(10)
    assert cancelled.state == "cancelled" and "continue where it stopped" in cancelled.message
    part = _blobs(online) / f"{hub.etag(big)}.incomplete"
    kept = part.stat().st_size
    assert 65536 < kept < len(hub.files[big])  # what came after the cancel is kept too; then it stopped mid-file

    resumed = DownloadManager(hub_settings).start("hub-far")  # a new manager: as after a restart
    assert resumed.status().done_bytes >= kept  # the plan counts what is already here
    assert resumed.wait(30).state == "done"
    again = hub.gets_of(big)[-1]
    assert again["range"] == f"bytes={kept}-" and again["sent"] == len(hub.files[big]) - kept
    before = list(hub.files)[: list(hub.files).index(big)]
    assert all(len(hub.gets_of(p)) == 1 for p in before)  # finished files are not fetched again
    data = (_blobs(online) / hub.etag(big)).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hub.etag(big) and not part.exists()


def test_a_connection_broken_mid_file_is_resumed_in_the_same_download(online, hub, studio):
    big = hub.largest()
    hub.break_once[big] = 50_000
    assert studio.downloads.start("hub-far").wait(30).state == "done"
    first, second = hub.gets_of(big)
    assert first["sent"] == 50_000 and second["range"] == "bytes=50000-"
    assert second["sent"] == len(hub.files[big]) - 50_000
    assert hashlib.sha256((_blobs(online) / hub.etag(big)).read_bytes()).hexdigest() == hub.etag(big)


def test_a_failed_download_says_so_keeps_its_bytes_and_a_retry_completes(online, hub, studio, monkeypatch):
    monkeypatch.setattr(downloads, "RETRIES", 1)
    big = hub.largest()
    hub.cut_at[big] = 40_000  # the network goes at 40 kB: the retry gets nothing more
    failed = studio.downloads.start("hub-far").wait(30)
    assert failed.state == "failed"
    assert failed.message.startswith("Download of 'hub-far' (test-org/tiny-far) failed: ")
    assert "are kept" in failed.message and "models download hub-far" in failed.message
    assert studio.models.cached_folder(studio.registry.get("hub-far")) is None  # half a model is not a model
    hub.cut_at.clear()  # the network is back
    assert studio.downloads.start("hub-far").wait(30).state == "done"
    assert hub.gets_of(big)[-1]["range"] == "bytes=40000-"


def test_an_unreachable_hub_is_one_clear_message(online, hub, studio):
    hub.stop()
    with pytest.raises(DownloadFailed, match=r"^Could not reach the hub for test-org/tiny-far: .*try again"):
        studio.downloads.start("hub-far")


def test_a_full_disk_is_refused_up_front_with_both_numbers(online, hub, studio, monkeypatch):
    monkeypatch.setattr(downloads, "disk_free", lambda path: 100_000)
    plan = studio.downloads.plan(studio.registry.get("hub-far"))
    assert (plan.total_bytes, plan.free_bytes, plan.fits) == (hub.total_bytes, 100_000, False)
    with pytest.raises(NotEnoughDisk, match=r"needs 309\.2 KB and .*hf-cache has 97\.7 KB free"):
        studio.downloads.start("hub-far")
    assert hub.gets == []  # nothing was fetched


def test_a_non_commercial_licence_must_be_accepted_once(online, hub, studio, hub_settings):
    with pytest.raises(DownloadFailed, match="non-commercial licence.*accept it first"):
        studio.downloads.start("hub-nc")
    assert hub.gets == []
    assert studio.downloads.start("hub-nc", accept_license=True).wait(30).state == "done"
    remembered = json.loads((hub_settings.data_dir / "licences.json").read_text())
    assert remembered[REPO]["licence"] == NONCOMMERCIAL
    assert not DownloadManager(hub_settings).needs_licence(studio.registry.get("hub-nc"))


def test_offline_refuses_downloads_and_says_how_to_turn_them_on(online, hub, studio, monkeypatch, hub_settings):
    with pytest.raises(DownloadFailed, match="--offline"):
        DownloadManager(hub_settings, offline=True).start("hub-far")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadFailed, match=r"HF_HUB_OFFLINE=1\).*unset"):
        studio.downloads.start("hub-far")
    assert hub.gets == []


def test_renders_on_other_models_go_on_during_a_download(online, hub, studio):
    hub.hold = (hub.largest(), 8192)
    job = studio.downloads.start("hub-far")
    assert hub.held.wait(10)
    try:
        result = studio.engine.run(RenderRequest(prompt="a red circle", model="t-far", steps=1, seed=0))[0]
        assert Path(result.video_path).is_file() and job.status().running
    finally:
        hub.go.set()
    assert job.wait(30).state == "done"


def _cli(hub, cache: Path, settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(cache))
    cmd = [sys.executable, "-m", "studio", "models", "download", *args, "--data-dir", str(settings.data_dir),
           "--models-file", str(settings.models_file)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_downloads_with_a_progress_bar_and_exits_0(hub, hub_settings, tmp_path):
    done = _cli(hub, tmp_path / "cli-cache", hub_settings, "hub-nc", "--accept-license")
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr and "hub-nc downloaded (309.2 KB) in " in done.stderr
    assert done.stdout.strip() == str(tmp_path / "cli-cache" / "models--test-org--tiny-far" / "snapshots" / hub.commit)
    assert (tmp_path / "cli-cache" / "models--test-org--tiny-far" / "refs" / "main").read_text() == hub.commit
    refused = _cli(hub, tmp_path / "cli-cache2", hub_settings, "hub-far", "--offline")
    assert refused.returncode == 2 and refused.stderr.count("error:") == 1 and "--offline" in refused.stderr


# ---- the panel in the page (studio/ui/downloads.py): its handlers, and the app it is built into -------------------
def test_the_panel_shows_size_free_disk_and_licence_then_progress_until_done(online, hub, studio, monkeypatch):
    from studio.ui import downloads as panel_ui

    monkeypatch.setattr(downloads, "disk_free", lambda path: 5 * 1024**3)
    box, info, licence, button, cancel, progress, timer = panel_ui.panel(studio, "hub-nc")
    assert box.visible and "Download size 309.2 KB · 5.0 GB free" in info and "non-commercial" in info
    assert licence.visible and button.interactive and not timer.active
    refused = panel_ui.start(studio, "hub-nc", False)
    assert "Tick the licence box" in refused[2] and "--accept-license" not in refused[2] and hub.gets == []
    watch, reached = _watch_until(hub, 8192)
    monkeypatch.setattr(studio.downloads, "start", lambda *a, _start=studio.downloads.start, **k: _start(
        *a, **k, on_progress=watch))
    button, cancel, progress, timer = panel_ui.start(studio, "hub-nc", True)
    assert timer.active and cancel.visible and not button.interactive
    assert reached.wait(10)
    ticking = panel_ui.poll(studio, "hub-nc")
    assert "of 309.2 KB" in ticking[0] and "width:" in ticking[0] and ticking[-1].active
    hub.go.set()
    studio.downloads.job("hub-nc").wait(30)
    progress, dropdown, card, box, button, cancel, timer = panel_ui.poll(studio, "hub-nc")
    assert "downloaded" in progress and not box.visible and not timer.active and "on disk" in card


def test_offline_the_button_is_off_and_says_why(studio):  # conftest's HF_HUB_OFFLINE=1
    from studio.ui import build_app, downloads as panel_ui

    box, info, licence, button, cancel, progress, timer = panel_ui.panel(studio, "hub-far")
    assert box.visible and not button.interactive and "offline" in button.value and "HF_HUB_OFFLINE=1" in info
    assert not panel_ui.panel(studio, "t-far")[0].visible  # on this machine: no panel
    assert build_app(studio) is not None
