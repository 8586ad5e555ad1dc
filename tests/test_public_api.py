"""The public API (studio/ui/public_api.py) through the real gradio_client, against a launched studio on the tiny
test models: each endpoint with only its required arguments, files on the client's disk, the documented JSON."""

import typing

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from conftest import launch_app  # noqa: E402
from studio.engine import media  # noqa: E402
from studio.ui import public_api_io  # noqa: E402

PROMPT = "a red circle moving left on a black background"
PUBLIC = {"/generate", "/compare", "/extend", "/history", "/models"}


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_dirs):
    root = tmp_path_factory.mktemp("public-api")
    demo, url, studio = launch_app(root, tiny_dirs)
    client = Client(url, verbose=False, download_files=str(root / "client-downloads"))
    yield client, studio, root / "client-downloads"
    demo.close()
    studio.close()


def keys_of(typed_dict) -> set:
    return set(typing.get_type_hints(typed_dict))


def assert_video(path, downloads, min_frames=5):
    assert str(path).startswith(str(downloads)), f"{path} is not on the client's disk"
    frames, _ = media.read_video(path)
    assert len(frames) >= min_frames


def test_view_api_lists_only_the_public_endpoints(app):
    client, _, _ = app
    info = client.view_api(print_info=False, return_format="dict")
    shown = client.view_api(print_info=False, return_format="str")
    listed = {line.split("api_name=")[1].split('"')[1] for line in shown.splitlines() if "api_name=" in line}
    assert listed == PUBLIC and len(listed) <= 8
    for name in PUBLIC:
        params = info["named_endpoints"][name]["parameters"]
        assert all(p["parameter_name"] and not p["parameter_name"].endswith("_v") for p in params), name
        assert all(p["python_type"]["description"] for p in params), f"{name}: every parameter documented"
    generate = {p["parameter_name"]: p for p in info["named_endpoints"]["/generate"]["parameters"]}
    assert [n for n, p in generate.items() if not p["parameter_has_default"]] == ["prompt"]
    assert {"prompt", "mode", "image", "video", "steps", "preview_steps", "seed", "width", "height", "frames",
            "model", "loras"} == set(generate)
    # the UI's handlers are still there for the page (and old scripts), only not on the API page
    assert "/render" not in info["named_endpoints"] and "/history_search" not in info["named_endpoints"]


def test_generate_with_only_a_prompt(app):
    client, studio, downloads = app
    video, info = client.predict(PROMPT, api_name="/generate")
    assert_video(video, downloads)
    assert keys_of(public_api_io.Rendered) <= set(info)
    assert info["steps"] == 4 and info["steps_why"] == "as asked" and info["model"] == "t-far"
    row = studio.history.get(info["history_id"])
    assert row["status"] == "ok" and row["seed"] == info["seed"]


def test_generate_streams_the_preview_then_the_final(app):
    client, _, downloads = app
    job = client.submit(PROMPT, steps=2, preview_steps=1, seed=5, api_name="/generate")
    final_video, final = job.result(timeout=120)
    outs = job.outputs()
    assert [o[1]["role"] for o in outs] == ["preview", "final"]
    assert [o[1]["steps"] for o in outs] == [1, 2] and {o[1]["seed"] for o in outs} == {5}
    assert final["role"] == "final"
    assert_video(outs[0][0], downloads)


def test_generate_refuses_bad_input_with_a_message(app):
    client, _, _ = app
    with pytest.raises(AppError, match="First frame"):
        client.predict(PROMPT, mode="i2v", api_name="/generate")
    with pytest.raises(AppError, match="not a path"):
        client.predict(PROMPT, loras=["/etc/passwd:1"], api_name="/generate")


def test_a_file_is_what_the_client_uploaded_never_a_server_path(tmp_path):
    from gradio.utils import get_upload_folder

    from studio.errors import InvalidRequest

    for forged in ("/etc/hostname", f"{get_upload_folder()}/../../etc/hostname", str(tmp_path)):
        with pytest.raises(InvalidRequest, match="handle_file"):
            public_api_io.uploaded({"path": forged, "meta": {"_type": "gradio.FileData"}}, "video")
    with pytest.raises(InvalidRequest):
        public_api_io.uploaded("/etc/hostname", "video")  # a bare string is no upload either
    assert public_api_io.uploaded(None, "video") is None


def test_compare_with_only_a_prompt(app):
    client, _, downloads = app
    videos, info = client.predict(PROMPT, api_name="/compare")
    assert len(videos) == 3 and [b["steps"] for b in info["budgets"]] == [2, 4, 8]
    for video in videos:
        assert_video(video, downloads)
    assert keys_of(public_api_io.Compared) <= set(info)
    assert all(b["seconds"] > 0 and b["history_id"] for b in info["budgets"])


def test_extend_a_history_id_and_an_uploaded_clip(app, sample_media):
    client, _, downloads = app
    _, first = client.predict(PROMPT, steps=1, api_name="/generate")
    video, info = client.predict(history_id=first["history_id"], api_name="/extend")
    assert_video(video, downloads, min_frames=first["frames"] + 1)
    assert info["extends"] == first["history_id"] and keys_of(public_api_io.Rendered) <= set(info)
    video, info = client.predict(clip=handle_file(str(sample_media["video"])), frames=4, steps=1, prompt=PROMPT,
                                 api_name="/extend")
    assert_video(video, downloads, min_frames=9)
    with pytest.raises(AppError, match="either history_id"):
        client.predict(api_name="/extend")


def test_history_lists_renders_with_the_documented_keys(app):
    client, _, _ = app
    client.predict(PROMPT, steps=1, api_name="/generate")
    rows = client.predict(api_name="/history")
    assert rows and keys_of(public_api_io.HistoryEntry) <= set(rows[0])
    assert client.predict(search="zebra", api_name="/history") == []
    models = client.predict(api_name="/models")
    assert {"t-far", "t-bidi"} <= {m["id"] for m in models} and any(m["default"] for m in models)


def test_space_mode_keeps_each_client_to_its_own_renders(tmp_path, tiny_dirs):
    demo, url, studio = launch_app(tmp_path, tiny_dirs, space=True)
    try:
        alice, bob = Client(url, verbose=False, download_files=str(tmp_path / "a")), Client(
            url, verbose=False, download_files=str(tmp_path / "b"))
        _, made = alice.predict(PROMPT, steps=1, api_name="/generate")
        assert studio.history.get(made["history_id"])["session"]  # recorded under alice's session
        assert [r["history_id"] for r in alice.predict(api_name="/history")] == [made["history_id"]]
        assert bob.predict(api_name="/history") == []
        with pytest.raises(AppError, match="of yours"):
            bob.predict(history_id=made["history_id"], api_name="/extend")
    finally:
        demo.close()
        studio.close()
