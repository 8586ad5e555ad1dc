"""``render --extend`` beside a studio that owns the data folder is sent to it (an ``extension`` job on its queue,
no second model copy, no second writer), a clip file travels with the job; flags an extension does not use are
refused with one message instead of being dropped."""

import json

import pytest

from test_extend import _cli


def test_extend_beside_a_running_studio_is_sent_to_it(tmp_path, tiny_dirs, capsys):
    from conftest import launch_app
    from studio.cli.commands import main
    from studio.engine.media import read_video
    from studio.engine.request import RenderRequest
    from studio.ui import owner_api

    demo, url, studio = launch_app(tmp_path / "owner", tiny_dirs)
    try:
        assert studio.claim_data_folder()
        owner_api.serve(demo.app, studio, url)
        original = studio.engine.run(RenderRequest(prompt="a red ball rolls", model="t-far", seed=3, steps=1))[-1]
        data = ["--data-dir", str(studio.settings.data_dir), "--quiet"]
        code = main(["render", *data, "--extend", original.record_id, "--frames", "4", "--steps", "1", "--json"])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert "sent to the studio" in out.err and "extending" in out.err
        result = json.loads(out.out)["results"][-1]
        row = studio.history.get(result["id"])
        assert row["status"] == "ok" and row["parent_id"] == original.record_id
        frames, _ = read_video(row["video_path"])
        assert len(frames) > len(read_video(original.video_path)[0])  # one joined clip, rendered by the studio
        jobs = studio.dispatcher().store.list(states=("done",))
        assert [j["kind"] for j in jobs] == ["extension"]
        # a clip given as a file travels with the job (the studio reads no path from outside its folders)
        clip = tmp_path / "elsewhere.mp4"
        clip.write_bytes((studio.settings.data_dir / original.video_path).read_bytes()
                         if not original.video_path.startswith("/") else open(original.video_path, "rb").read())
        code = main(["render", *data, "--extend", str(clip), "--frames", "4", "--steps", "1"])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert str(studio.settings.renders_dir) in out.out and "Traceback" not in out.err
        code = main(["render", *data, "--extend", "/etc/hostname-nope", "--frames", "4"])
        err = capsys.readouterr().err
        assert code == 2 and "Nothing to extend" in err and "Traceback" not in err
    finally:
        demo.close()
        studio.close()


@pytest.mark.parametrize("flags", [["--lora", "ink.safetensors"], ["--preview", "1"], ["--compare", "1,2"],
                                   ["--policy", "fast"], ["--gif"], ["--from", "x.json"],
                                   ["--mode", "t2v"], ["--image", "a.png"], ["--video", "b.mp4"], ["--height", "64"],
                                   ["--width", "64"], ["--fps", "8"]])
def test_extend_refuses_flags_it_does_not_use(settings, capsys, flags):
    code, out, err = _cli(settings, capsys, "--extend", "some-id", "--frames", "4", *flags)
    assert code == 2 and f"{flags[0]} does not apply to --extend" in err and "Traceback" not in err
