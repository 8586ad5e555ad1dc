"""``render --extend ID`` without --prompt continues with the original render's prompt (issue 17)."""

from studio.engine import media
from studio.engine.render import RenderRequest


def test_cli_extend_without_prompt_uses_the_originals(studio, settings, capsys):
    from studio.cli.commands import main

    original = studio.engine.run(RenderRequest(prompt="a red ball rolls", model="t-bidi-kf", seed=3, steps=2))[-1]
    studio.close()
    code = main(["render", "--data-dir", str(settings.data_dir), "--models-file", str(settings.models_file),
                 "--device", "cpu", "--quiet", "--extend", original.record_id, "--frames", "4"])
    out = capsys.readouterr()
    assert code == 0, out.err
    path = out.out.strip().splitlines()[-1]
    assert len(media.read_video(path)[0]) == 13
    meta = media.read_metadata(path)
    from studio.store.history import HistoryStore

    store = HistoryStore(settings.history_path)
    try:
        child = store.get(meta["id"])
    finally:
        store.close()
    assert child["parent_id"] == original.record_id
    assert child["request"]["prompt"] == "a red ball rolls"


def test_cli_extend_of_a_copied_mp4_without_prompt_uses_its_metadata(studio, settings, capsys, tmp_path):
    """An mp4 from another data folder (no history row here): the prompt comes from the file's metadata."""
    import shutil

    from studio.cli.commands import main

    original = studio.engine.run(RenderRequest(prompt="a blue cube spins", model="t-bidi-kf", seed=3, steps=2))[-1]
    studio.close()
    other = tmp_path / "other-data"
    copied = shutil.copy(original.video_path, tmp_path / "copied.mp4")
    code = main(["render", "--data-dir", str(other), "--models-file", str(settings.models_file),
                 "--device", "cpu", "--quiet", "--extend", str(copied), "--frames", "4"])
    out = capsys.readouterr()
    assert code == 0, out.err
    meta = media.read_metadata(out.out.strip().splitlines()[-1])
    assert meta["prompt"] == "a blue cube spins"
