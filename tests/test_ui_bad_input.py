"""Bad input through the UI (gradio_client against the in-process app): one clear message, never a traceback.

Table-driven; each case names what it sends and a phrase the message must contain. Messages come
either in the Create tab's status (the engine's words) or as a Gradio error the browser shows as a
toast (a control refusing a value); both are checked for traceback text. Where the engine ran,
History records the failed attempt.
"""

import sys
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402

from conftest import launch_app, page_client  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile  # noqa: E402

TRACEBACK_MARKS = ("Traceback", 'File "', "Error:", "has raised an exception", "show_error")


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_dirs):
    root = tmp_path_factory.mktemp("ui-bad")
    demo, url, studio = launch_app(root, tiny_dirs)
    files = {"image": hostile.make_images(root / "img"), "video": _videos(root / "vid")}
    yield page_client(url), studio, files
    demo.close()
    studio.close()


def _videos(root):
    """The few hostile videos the UI cases use (the 2-hour one is covered by test_hardening)."""
    import subprocess

    from studio.engine import media

    root.mkdir(parents=True, exist_ok=True)
    audio = root / "audio.m4a"
    subprocess.run([media._ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    str(audio)], check=True, capture_output=True)
    garbage = root / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 40)
    zero = root / "zero.mp4"
    zero.write_bytes(b"")
    return {"audio_only": audio, "garbage": garbage, "zero_bytes": zero}


# (case id, fields that differ from a good T2V request, phrase the message must contain, History row expected)
CASES = [
    ("empty prompt", {"prompt": ""}, "Prompt is empty", False),
    ("whitespace prompt", {"prompt": " \t\n "}, "Prompt is empty", False),
    ("20,000-char prompt", {"prompt": "x" * 20_000}, "2,000", False),
    ("steps 0", {"steps": 0}, "Steps", False),
    ("steps -1", {"steps": -1}, "Steps", False),
    ("steps 10,000", {"steps": 10_000}, "Steps", False),
    ("i2v without an image", {"mode": "i2v"}, "needs an input image", False),
    ("corrupt image", {"mode": "i2v", "image": "corrupt"}, "damaged", True),
    ("text file as image", {"mode": "i2v", "image": "not_an_image"}, "not an image", True),
    ("zero-byte image", {"mode": "i2v", "image": "zero_bytes"}, "empty", True),
    ("20000x20000 image", {"mode": "i2v", "image": "huge"}, "too large", True),
    ("audio-only file for v2v", {"mode": "v2v", "video": "audio_only"}, "no video stream", True),
    ("garbage video", {"mode": "v2v", "video": "garbage"}, "damaged", True),
]


def _args(files, mode="t2v", prompt="a fox in the snow", image=None, video=None, steps=1):
    img = handle_file(str(files["image"][image])) if image else None
    vid = handle_file(str(files["video"][video])) if video else None
    return (mode, "t-far", prompt, "", img, vid, steps, 0, False, "32x32", 9, False, 1)


@pytest.mark.parametrize("name, fields, phrase, recorded", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_message(app, name, fields, phrase, recorded):
    client, studio, files = app
    before = studio.history.count()
    job = client.submit(*_args(files, **fields), api_name="/render")
    try:
        job.result(timeout=120)
        error = None
    except Exception as exc:  # a Gradio error (shown as a toast in the browser)
        error = str(exc)
    statuses = [o[1] for o in job.outputs() if isinstance(o[1], str)]
    messages = [s for s in statuses if s.lstrip().startswith("⚠") or "⚠" in s] + ([error] if error else [])
    assert messages, (name, statuses, error)
    text = " ".join(messages)
    assert phrase in text, (name, text)
    assert not any(mark in text for mark in TRACEBACK_MARKS), (name, text)
    assert not any(isinstance(o[4], dict) and o[4].get("role") for o in job.outputs())  # no result shown
    if recorded:  # the engine tried it: History says it failed, with the same message
        rows = studio.history.search(status="failed", limit=5)
        assert studio.history.count() == before + 1 and phrase in rows[0]["error"]
    else:
        assert studio.history.count() == before
