"""``render --extend`` beside a studio that owns the data folder is refused (no second model copy, no second
writer), and flags an extension does not use are refused with one message instead of being dropped."""

import pytest

from test_extend import _cli, _original


def test_extend_beside_a_studio_that_owns_the_folder_is_refused(studio, settings, capsys):
    original = _original(studio, "t-bidi-kf")
    assert studio.claim_data_folder("http://127.0.0.1:9", kind="studio")  # the studio serving this folder
    before = len(studio.history.search(text=""))
    code, out, err = _cli(settings, capsys, "--extend", original.record_id, "--frames", "4")
    assert code == 2 and out == "" and "Traceback" not in err
    assert "Extend button" in err and "stop it" in err
    assert len(studio.history.search(text="")) == before  # nothing rendered beside it


@pytest.mark.parametrize("flags", [["--lora", "ink.safetensors"], ["--preview", "1"], ["--compare", "1,2"],
                                   ["--policy", "fast"], ["--gif"], ["--json"], ["--from", "x.json"],
                                   ["--mode", "t2v"], ["--image", "a.png"], ["--video", "b.mp4"], ["--height", "64"],
                                   ["--width", "64"], ["--fps", "8"]])
def test_extend_refuses_flags_it_does_not_use(settings, capsys, flags):
    code, out, err = _cli(settings, capsys, "--extend", "some-id", "--frames", "4", *flags)
    assert code == 2 and f"{flags[0]} does not apply to --extend" in err and "Traceback" not in err
