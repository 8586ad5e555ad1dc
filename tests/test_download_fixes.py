"""Review fixes in studio/models/downloads.py and its panel: off on a shared Space, an unexpected error ends the job,
an empty repo file downloads, and the panel does not ask the hub when it cannot help."""

import dataclasses

import pytest

from fake_hub import FakeHub
from studio.models import downloads
from studio.errors import DownloadFailed
from studio.app.services import Studio
from test_downloads import REPO, _blobs, hub_settings, online, studio  # noqa: F401  (fixtures)


@pytest.fixture()
def hub(tiny_dirs, tmp_path):
    """The tiny repo plus an empty file (a 0-byte ``.gitattributes``-like file some repos hold)."""
    import shutil

    folder = tmp_path / "repo"
    shutil.copytree(tiny_dirs["t-far"][1], folder)
    (folder / "empty.txt").write_bytes(b"")
    fake = FakeHub(REPO, folder)
    fake.start()
    yield fake
    fake.stop()


def test_on_a_shared_space_downloads_are_off_and_the_panel_says_so(online, hub, hub_settings):
    from studio.ui import downloads as panel_ui

    space = Studio.open(dataclasses.replace(hub_settings, space=True))
    try:
        assert space.downloads.offline_reason() == "Downloads are off on a shared Space"
        with pytest.raises(DownloadFailed, match="shared Space"):
            space.downloads.start("hub-far")
        box, info, licence, button, *_ = panel_ui.panel(space, "hub-far")
        assert box.visible and not button.interactive and "shared Space" in info
    finally:
        space.close()
    assert hub.gets == []


def test_an_unexpected_error_fails_the_job_and_sets_finished(online, hub, studio, monkeypatch):
    def broken(self, f):
        raise ValueError("a bad header")

    monkeypatch.setattr(downloads.DownloadJob, "_fetch", broken)
    status = studio.downloads.start("hub-far").wait(10)
    assert studio.downloads.job("hub-far").finished.is_set()
    assert status.state == "failed" and "ValueError: a bad header" in status.message


def test_an_empty_repo_file_downloads(online, hub, studio):
    status = studio.downloads.start("hub-far").wait(30)
    assert status.state == "done", status.message
    empty = hub.etag("empty.txt")
    assert (_blobs(online) / empty).stat().st_size == 0


def test_the_panel_asks_the_hub_once_per_two_minutes_even_when_it_fails(online, hub, studio, monkeypatch):
    from studio.ui import downloads as panel_ui

    calls = []

    def unreachable(repo, revision="main"):
        calls.append(repo)
        raise DownloadFailed(f"Could not reach the hub for {repo}: timed out.")

    monkeypatch.setattr(downloads, "make_plan", unreachable)
    first = panel_ui.panel(studio, "hub-far")[1]
    again = panel_ui.panel(studio, "hub-far")[1]
    assert calls == [REPO] and first == again
    # offline said plainly, no raw network error, and the free disk shown anyway
    assert "size is unknown until the hub answers" in first and "free in" in first and "timed out" not in first


def test_the_panel_never_asks_the_hub_when_downloads_are_off(studio, monkeypatch):  # conftest's HF_HUB_OFFLINE=1
    from studio.ui import downloads as panel_ui

    monkeypatch.setattr(downloads, "make_plan", lambda *a, **k: pytest.fail("asked the hub while offline"))
    box, info, licence, button, *_ = panel_ui.panel(studio, "hub-far")
    assert box.visible and not button.interactive and "HF_HUB_OFFLINE=1" in info
