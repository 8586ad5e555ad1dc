"""What the UI never serves: the data folder's database and its owner files (the owner-API token among them)."""

from pathlib import Path

from studio.ui import guard


def test_the_owner_files_are_never_served(studio):
    blocked = set(guard.blocked(studio))
    data = Path(studio.settings.data_dir).resolve()
    for name in ("studio.json", "studio.lock", "licences.json", "window.json", "history.db"):
        assert any(Path(p).name == name and Path(p).parent == data for p in blocked), name
