"""Nothing gets in (issue 24, items 1-4 and 9): hostile values at every Gradio endpoint that can name a file, an id or
a path; a foreign Host or a foreign page's Origin on every route; a hostile stand-in hub; the CLI beside a proxy;
hostile bodies at the owner API. See docs/security.md.

One studio on the tiny models is launched for the module (launch_app, as app.py runs it, with its owner API); a
"secret" clip and PNG lie outside its folders, and no answer may carry a byte of them.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import launch_app
from fake_hub import FakeHub
from studio.engine import confine, media, space
from studio.jobs import shape as job_shape
from studio.config import Settings
from studio.models.downloads import DownloadManager
from studio.errors import DownloadFailed, OutsideFolders
from studio.engine.render import RenderRequest
from studio.ui import extend_action, history as history_ui, owner_api
from studio.ui.host_check import allowed_hosts

ROOT = Path(__file__).resolve().parent.parent
MARK = b"SECRET-OUTSIDE-BYTES"


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """Files outside every studio folder: a 32x32 clip the tiny model could extend, a PNG, a text file."""
    root = tmp_path_factory.mktemp("outside")
    clip = np.zeros((9, 32, 32, 3), dtype=np.uint8)
    clip[:, 8:24, 8:24] = (250, 10, 10)
    video = media.write_video(clip, root / "secret.mp4", fps=8)
    png = root / "secret.png"
    Image.fromarray(clip[0]).save(png)
    text = root / "secret.txt"
    text.write_bytes(MARK * 10)
    return {"video": Path(video), "png": png, "text": text, "root": root}


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_dirs):
    demo, url, studio = launch_app(tmp_path_factory.mktemp("sec"), tiny_dirs)
    assert studio.claim_data_folder()
    token = owner_api.serve(demo.app, studio, url, max_upload_mb=1)  # bodies up to ~2.3 MB: quick to exceed
    yield demo, url, studio, token
    demo.close()
    studio.close()


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def _raw(url, method, path, host=None, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", _port(url), timeout=30)
    conn.request(method, path, body=body, headers={"Host": host or f"127.0.0.1:{_port(url)}", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def call(url, api_name, data, session="sec-session-1", timeout=60) -> tuple[str, str]:
    """A Gradio endpoint through its HTTP API, as any client may call it: (last event, all the text that came)."""
    body = json.dumps({"data": data, "session_hash": session}).encode()
    req = urllib.request.Request(f"{url.rstrip('/')}/gradio_api/call/{api_name}", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        event_id = json.loads(resp.read())["event_id"]
    with urllib.request.urlopen(f"{url.rstrip('/')}/gradio_api/call/{api_name}/{event_id}", timeout=timeout) as resp:
        text = resp.read().decode("utf-8", "replace")
    events = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
    return (events[-1] if events else ""), text


def _fetched_files(url, text: str) -> list[bytes]:
    """Every file an answer points at (Gradio's /file= URLs and paths), fetched as the browser would."""
    got = []
    for chunk in text.split('"url": "')[1:] + text.split('"url":"')[1:]:
        link = chunk.split('"', 1)[0]
        if link.startswith("http"):
            try:
                with urllib.request.urlopen(link, timeout=10) as resp:
                    got.append(resp.read())
            except OSError:
                pass
    return got


def _assert_nothing_of(outside, url, text: str) -> None:
    secrets = [outside["video"].read_bytes(), outside["png"].read_bytes(), outside["text"].read_bytes()]
    assert MARK.decode() not in text and "Traceback" not in text
    for data in _fetched_files(url, text):
        assert all(data != s for s in secrets) and MARK not in data


def _hostile_paths(outside, studio) -> dict[str, str]:
    """Hostile values for a field that names a file, with the inside folder they are tried from."""
    renders = studio.settings.renders_dir
    renders.mkdir(parents=True, exist_ok=True)
    link = renders / "link-out.mp4"
    if not link.is_symlink():
        link.symlink_to(outside["video"])
    fifo = renders / "pipe.mp4"
    if not fifo.exists():
        os.mkfifo(fifo)
    up = os.path.relpath(outside["video"], Path.cwd())
    return {"absolute": str(outside["video"]), "png": str(outside["png"]), "text": str(outside["text"]),
            "dotdot": str(renders / ".." / ".." / ".." / Path(up)), "relative": up, "symlink": str(link),
            "fifo": str(fifo), "dev_zero": "/dev/zero", "missing": str(outside["root"] / "nothing-here.mp4"),
            "etc": "/etc/passwd", "nul": "a\x00b", "url": "http://127.0.0.1:1/x.mp4"}


# ---- 1. file confinement -----------------------------------------------------------------------------------------
def test_confine_takes_only_regular_files_inside_the_folders(tmp_path, outside):
    inside = tmp_path / "in"
    inside.mkdir()
    (inside / "ok.mp4").write_bytes(b"x")
    (inside / "up.mp4").symlink_to(outside["video"])
    os.mkfifo(inside / "fifo")
    assert confine.inside(inside / "ok.mp4", [inside]) == (inside / "ok.mp4").resolve()
    for bad in (inside / "up.mp4", inside / "fifo", "/dev/zero", inside / ".." / "in" / ".." / "x", outside["video"],
                inside, None, 3, "", "a\x00b"):
        assert confine.inside(bad, [inside]) is None, bad
    with pytest.raises(OutsideFolders) as there:
        confine.confined(outside["video"], [inside], "Video")
    with pytest.raises(OutsideFolders) as missing:
        confine.confined(outside["root"] / "missing.mp4", [inside], "Video")
    assert str(there.value) == str(missing.value)  # says nothing about what exists outside


def test_extend_create_reads_no_file_outside_the_studio(app, outside):
    _, url, studio, _ = app
    before = studio.history.count()
    answers = {}
    for name, value in _hostile_paths(outside, studio).items():
        started = time.monotonic()
        last, text = call(url, "extend_create", [{"record_id": value}, 8, "", 0, 2])
        assert time.monotonic() - started < 20, f"{name}: a FIFO or a device must not be read"
        assert last == "complete", (name, text[-300:])
        _assert_nothing_of(outside, url, text)
        assert "not a finished render in History or a video in the studio's folders" in text, (name, text[-300:])
        answers[name] = text.replace(json.dumps(value)[1:-1], "VALUE").replace(value, "VALUE")
    assert answers["absolute"] == answers["missing"], "a refusal must not say whether an outside file exists"
    for odd in ([1, 2], {"x": 1}, 7, "not json at all"):  # the hidden JSON itself, as anything
        last, text = call(url, "extend_create", [odd, 8, "", 0, 2])
        assert last == "complete" and "Pick a finished render" in text and "Traceback" not in text
    assert studio.history.count() == before, "nothing was rendered from any of them"


def test_a_clip_inside_the_renders_folder_still_extends(app, outside):
    """The control: the same clip copied into the studio's folder is taken (so the refusals above are the check)."""
    _, url, studio, _ = app
    inside = studio.settings.renders_dir / "kept.mp4"
    inside.write_bytes(outside["video"].read_bytes())
    last, text = call(url, "extend_create", [{"record_id": str(inside)}, 4, "it keeps going", 0, 2], timeout=120)
    assert last == "complete" and "extended `" in text, text[-400:]


def test_file_inputs_take_no_path_outside_gradios_cache(app, outside):
    """Every endpoint with a file input, sent a FileData naming a server path instead of an upload."""
    demo, url, studio, _ = app
    # every endpoint with a name, the UI's own (hidden from the API page, callable still) as much as the public ones
    endpoints = {f"/{fn.api_name}": fn.inputs for fn in demo.fns.values() if fn.api_name}
    targets = [(name, i) for name, inputs in endpoints.items() for i, c in enumerate(inputs)
               if "FileData" in json.dumps(c.api_info())]
    assert {"/render", "/restore_from_file", "/generate", "/extend"} <= {t[0] for t in targets}, targets
    for name, index in targets:
        for path in (str(outside["png"]), str(outside["video"]), "/etc/passwd", "/dev/zero"):
            data = [None if "FileData" in json.dumps(c.api_info()) else c.value for c in endpoints[name]]
            data[index] = {"path": path, "meta": {"_type": "gradio.FileData"}}
            last, text = call(url, name.lstrip("/"), data)
            _assert_nothing_of(outside, url, text)
            assert path not in text.replace('"path": ' + json.dumps(path), ""), (name, text[-300:])


def test_history_ids_are_looked_up_never_opened(app, outside):
    _, url, studio, _ = app
    for value in _hostile_paths(outside, studio).values():
        last, text = call(url, "history_details", [value])
        assert last == "complete", text[-300:]
        _assert_nothing_of(outside, url, text)


def test_space_mode_another_sessions_render_cannot_be_extended_or_opened(app, monkeypatch):
    _, url, studio, _ = app
    a, b = space.new_session_id(), space.new_session_id()
    req = RenderRequest(prompt="session a's render", steps=1, seed=1, model="t-far")
    result = [e for e in studio.engine.render(req, session=a) if e.kind == "result"][0]
    monkeypatch.setattr(studio, "settings", replace(studio.settings, space=True))  # the same studio, as a Space
    theirs = list(extend_action.run(studio, result.record_id, 4, "", {"sid": b}))
    assert theirs == [("failed", "Pick a finished render to extend.")]
    path_too = list(extend_action.run(studio, result.video_path, 4, "", {"sid": a}))
    assert path_too == [("failed", "Pick a finished render to extend.")], "no file paths in Space mode"
    assert not history_ui.mine(studio, result.record_id, {"sid": b})
    assert history_ui.mine(studio, result.record_id, {"sid": a})


# ---- 2. Host and Origin checks (DNS rebinding, foreign pages) ------------------------------------------------------
def _routes(routes, prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers too (a path parameter filled in)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if hasattr(inner, "routes") and not hasattr(route, "methods"):
            more = prefix + getattr(getattr(route, "include_context", None), "prefix", "") + getattr(route, "path", "")
            out += _routes(inner.routes, more if not hasattr(route, "original_router") else prefix)
            continue
        path = prefix + getattr(route, "path", "")
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            out.append((method, path.replace("{", "x").replace("}", "")))
    return out


def test_a_foreign_host_gets_403_on_every_route(app):
    demo, url, studio, token = app
    port = _port(url)
    routes = _routes(demo.app.routes)
    assert ("POST", "/studio/api/render") in routes and len(routes) > 30
    for method, path in routes:
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
            status, headers, body = _raw(url, method, path, host=host,
                                         headers={"X-Studio-Token": token, "Origin": f"http://{host}"})
            assert status == 403, (method, path, host, status, body[:200])
            assert "access-control-allow-origin" not in headers
    status, headers, _ = _raw(url, "OPTIONS", "/gradio_api/queue/join", host=f"evil.example:{port}",
                              headers={"Origin": f"http://evil.example:{port}",
                                       "Access-Control-Request-Method": "POST"})
    assert status == 403 and "access-control-allow-origin" not in headers
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert _raw(url, "GET", "/gradio_api/info", host=host)[0] == 200, host


def test_a_foreign_page_gets_403_even_with_a_good_host(app):
    _, url, _, _ = app
    port = _port(url)
    for origin in ("http://evil.example", "null", f"http://10.1.2.3:{port}"):
        status, headers, _ = _raw(url, "GET", "/gradio_api/info", headers={"Origin": origin})
        assert status == 403 and "access-control-allow-origin" not in headers, origin
    same = _raw(url, "GET", "/gradio_api/info", headers={"Origin": f"http://127.0.0.1:{port}"})
    assert same[0] == 200


def test_the_hosts_a_studio_serves(monkeypatch):
    monkeypatch.delenv("STUDIO_ALLOWED_HOSTS", raising=False)
    local = allowed_hosts("127.0.0.1", env={})
    assert all(local.allows(h) for h in ("127.0.0.1:7860", "localhost", "[::1]:7860", "LOCALHOST:1"))
    assert not any(local.allows(h) for h in ("evil.example", "10.0.0.2:7860", "", None, "localhost.evil.example"))
    lan = allowed_hosts("0.0.0.0", env={"STUDIO_ALLOWED_HOSTS": "studio.lan,*.corp.example"})
    assert all(lan.allows(h) for h in ("192.168.1.5:7860", "[fe80::1]:7860", "studio.lan", "a.corp.example"))
    assert not lan.allows("evil.example") and not lan.allows_origin("http://192.168.1.5:7860", "studio.lan")
    space_ = allowed_hosts("0.0.0.0", env={"SPACE_HOST": "me-studio.hf.space"})
    assert space_.allows("me-studio.hf.space") and not space_.allows("other.hf.space")
    assert allowed_hosts("127.0.0.1", share=True, env={}).allows("abc123.gradio.live")


# ---- 3. a hostile hub ------------------------------------------------------------------------------------------
REPO = "test-org/tiny-far"


@pytest.fixture()
def hostile_hub(tiny_dirs, monkeypatch, tmp_path):
    from huggingface_hub import constants

    fake = FakeHub(REPO, tiny_dirs["t-far"][1])
    fake.start()
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    cache = tmp_path / "deep" / "er" / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    models = tmp_path / "models.toml"
    models.write_text(f'[models."hub-far"]\nsource = "hub:{REPO}"\nfamily = "causal"\nheight = 32\nwidth = 32\n'
                      f'frames = 9\nfps = 8\nmemory_gb = 0.01\nlicense = "test"\n', encoding="utf-8")
    manager = DownloadManager(Settings(data_dir=tmp_path / "data", models_file=models, device="cpu"))
    yield fake, manager, cache, tmp_path
    fake.stop()


def _written_outside(root: Path, cache: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_relative_to(cache)
            and not p.is_relative_to(root / "data") and p.name != "models.toml"]


@pytest.mark.parametrize("entry", [
    {"oid": "../../../../../outside"}, {"path": "../../../../outside.json"}, {"path": "/tmp/outside.json"},
    {"path": "a/../../../../../outside.json"},
    {"lfs": {"oid": "../../../../../../outside", "size": 3, "pointerSize": 134}},
])
def test_a_traversal_in_the_hub_listing_writes_nothing_outside_the_cache(hostile_hub, entry):
    fake, manager, cache, root = hostile_hub
    fake.listing["model_index.json"] = entry
    with pytest.raises(DownloadFailed) as refused:
        manager.start("hub-far").wait(30)
    assert "refused, nothing was written" in str(refused.value) and "HF_ENDPOINT" in str(refused.value)
    assert _written_outside(root, cache) == [] and not Path("/tmp/outside.json").exists()
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_a_file_whose_sha256_is_wrong_is_refused_deleted_and_named(hostile_hub):
    fake, manager, cache, root = hostile_hub
    lfs = next(p for p in fake.files if fake.is_lfs(p))
    fake.tamper.add(lfs)
    status = manager.start("hub-far").wait(60)
    assert status.state == "failed" and lfs in status.message and "sha256" in status.message, status.message
    blobs = cache / ("models--" + REPO.replace("/", "--")) / "blobs"
    assert not (blobs / fake.etag(lfs)).exists() and not list(blobs.glob(f"{fake.etag(lfs)}*.incomplete"))
    assert not (cache / ("models--" + REPO.replace("/", "--")) / "snapshots").exists()
    assert _written_outside(root, cache) == []


def test_a_file_longer_than_listed_is_cut_off_and_named(hostile_hub):
    fake, manager, cache, root = hostile_hub
    big = fake.largest()
    listed = len(fake.files[big]) // 2
    lfs = {"lfs": {"oid": fake.etag(big), "size": listed, "pointerSize": 134}} if fake.is_lfs(big) else {}
    fake.listing[big] = {"size": listed, **lfs}
    status = manager.start("hub-far").wait(60)
    assert status.state == "failed" and big in status.message, status.message
    blobs = cache / ("models--" + REPO.replace("/", "--")) / "blobs"
    assert not (blobs / fake.etag(big)).exists()
    assert all(p.stat().st_size <= listed for p in blobs.glob("*.incomplete"))
    assert _written_outside(root, cache) == []


def test_a_commit_id_that_is_a_path_is_refused(hostile_hub):
    fake, manager, cache, root = hostile_hub
    fake.commit = "../../../../escaped"
    with pytest.raises(DownloadFailed, match="commit id that is not one"):
        manager.start("hub-far")
    assert _written_outside(root, cache) == []


# ---- 4. the CLI never goes through a proxy to its studio -------------------------------------------------------
def test_a_cli_render_through_the_studio_ignores_http_proxy(app):
    _, url, studio, _ = app
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(8)
    proxy.settimeout(0.2)
    heard: list[bytes] = []
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                conn, _ = proxy.accept()
            except OSError:
                continue
            conn.settimeout(1)
            try:
                heard.append(conn.recv(65536))
            except OSError:
                heard.append(b"(connected)")
            conn.close()

    threading.Thread(target=listen, daemon=True).start()
    address = f"http://127.0.0.1:{proxy.getsockname()[1]}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", http_proxy=address, HTTP_PROXY=address, https_proxy=address,
               HTTPS_PROXY=address, no_proxy="", NO_PROXY="")
    env.pop("STUDIO_MODEL", None)
    try:
        out = subprocess.run([sys.executable, "-m", "studio", "render", "--prompt", "past the proxy", "--steps", "1",
                              "--seed", "5", "--data-dir", str(studio.settings.data_dir)],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        stop.set()
        proxy.close()
    assert out.returncode == 0, out.stderr[-600:]
    assert out.stdout.strip().endswith(".mp4") and heard == []


def test_desktop_answers_ignores_http_proxy(app):
    """In a fresh process (urllib caches its default opener, proxies included, at the first call)."""
    _, url, _, _ = app
    env = dict(os.environ, http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", no_proxy="", NO_PROXY="")
    out = subprocess.run([sys.executable, "-c", f"from studio.app.desktop import answers; print(answers({url!r}))"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr[-400:]  # through the proxy (nothing listens on :9) it is False


# ---- 9. hostile bodies at the owner API ------------------------------------------------------------------------
def _post(url, token, route, body: bytes, headers=None):
    return _raw(url, "POST", f"/studio/api/{route}", headers={"X-Studio-Token": token,
                                                             "Content-Type": "application/json", **(headers or {})},
                body=body)


def test_the_owner_api_answers_hostile_bodies_with_400_or_413(app, outside):
    _, url, studio, token = app
    cases = {
        "deep": (b"[" * 100000 + b"]" * 100000, 400, "nests more than"),
        "deep dict": (json.dumps({"request": {"prompt": "x"}, "preview": None}).replace(
            '"x"', "[" * 200 + "1" + "]" * 200).encode(), 400, "nests more than"),
        "compare abc": (json.dumps({"request": {"prompt": "x"}, "compare": "abc"}).encode(), 400, "'compare' must be"),
        "compare list": (json.dumps({"request": {"prompt": "x"}, "compare": ["a"]}).encode(), 400, "whole numbers"),
        "preview str": (json.dumps({"request": {"prompt": "x"}, "preview": "4"}).encode(), 400, "'preview' must be"),
        "extend key": (json.dumps({"request": {"prompt": "x"}, "extend": {"source": str(outside["video"])}}).encode(),
                       400, "unknown key"),
        "board key": (json.dumps({"request": {"prompt": "x"}, "board": {"shot": "s"}}).encode(), 400, "unknown key"),
        "outside image": (json.dumps({"request": {"prompt": "x", "mode": "i2v",
                                                  "image": str(outside["png"])}}).encode(), 400, "was sent as a path"),
        "not json": (b"{nope", 400, "not JSON"),
        "a list": (b"[1, 2]", 400, "JSON object"),
    }
    for name, (body, code, words) in cases.items():
        for route in ("render", "queue-add"):
            status, _, answer = _post(url, token, route, body)
            assert (status, words in answer.decode()) == (code, True), (name, route, status, answer[:200])
            assert b"Traceback" not in answer and MARK not in answer
    board = json.dumps({"board": {"shots": [{"prompt": "x", "image": str(outside["png"])}]}, "stage": "preview"})
    status, _, answer = _post(url, token, "board-run", board.encode())
    assert status == 400 and b"shot 1: image" in answer


def test_the_owner_api_refuses_a_large_body_by_length_and_while_reading(app):
    _, url, studio, token = app
    limit = owner_api.body_limit(1)
    status, _, answer = _post(url, token, "render", b"{}", headers={"Content-Length": str(limit + 1)})
    assert status == 413 and b"larger than" in answer
    conn = http.client.HTTPConnection("127.0.0.1", _port(url), timeout=60)  # no Content-Length: chunked, endless
    conn.putrequest("POST", "/studio/api/render")
    conn.putheader("X-Studio-Token", token)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(limit // len(chunk) + 8):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        status = conn.getresponse().status
    except OSError:  # the studio answered 413 and closed while we still sent: refused either way
        status = 413
    conn.close()
    assert status == 413


def test_job_shape_depth_is_iterative():
    deep: list = []
    for _ in range(100000):
        deep = [deep]
    assert job_shape.depth(deep) > job_shape.MAX_DEPTH  # no RecursionError on a structure json could build
    assert job_shape.depth({"request": {"prompt": "x"}}) == 2
