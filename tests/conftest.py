"""Shared fixtures: tiny AnyFlow models built from config (never the hub), a Studio per test."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.pop("STUDIO_DATA_DIR", None)

import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# under CI a skip fails, except GPU-only tests (@pytest.mark.gpu), which are listed: see ci_skips.py
from ci_skips import (  # noqa: E402,F401
    pytest_runtest_makereport, pytest_runtest_setup, pytest_sessionfinish,
    pytest_terminal_summary,
)
from studio.config import Settings  # noqa: E402
from studio.app.services import Studio  # noqa: E402
from studio.models.tiny import tiny_pipeline  # noqa: E402

# Small enough that a render takes a fraction of a second on 2 cores.
NATIVE = dict(height=32, width=32, frames=9, fps=8)


def _models_toml(folders: dict[str, Path]) -> str:
    lines = []
    # the tiny bidirectional weights once more, as a keyframe-first T2V model (like the embedded shapes model)
    folders = dict(folders, **{"t-bidi-kf": (folders["t-bidi"][0], folders["t-bidi"][1], ("t2v", "i2v", "v2v"))})
    for model_id, (family, folder, modes) in folders.items():
        lines += [
            f'[models."{model_id}"]',
            *(['t2v = "keyframe"', 'teacher = "t-bidi"'] if model_id.endswith("-kf") else []),
            f'source = "local:{folder.as_posix()}"',
            f'family = "{family}"',
            f"modes = {list(modes)!r}".replace("'", '"'),
            *(f"{k} = {v}" for k, v in NATIVE.items()),
            "memory_gb = 0.01",
            'license = "test"',
            "",
        ]
    return "\n".join(lines)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict:
    """Save one tiny pipeline per family; return {model id: (family, folder, modes)}."""
    root = tmp_path_factory.mktemp("tiny-models")
    out = {}
    for model_id, family, modes in (("t-far", "causal", ("t2v", "i2v", "v2v")), ("t-bidi", "bidirectional", ("t2v",))):
        folder = root / model_id
        tiny_pipeline(family, seed=0).save_pretrained(folder)
        out[model_id] = (family, folder, modes)
    return out


@pytest.fixture()
def models_file(tmp_path, tiny_dirs) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(_models_toml(tiny_dirs), encoding="utf-8")
    return path


@pytest.fixture()
def settings(tmp_path, models_file) -> Settings:
    return Settings(data_dir=tmp_path / "data", default_model="t-far", models_file=models_file, device="cpu")


@pytest.fixture()
def studio(settings):
    s = Studio.open(settings)
    yield s
    s.close()


# ---- the farm (Ray): one instance and two workers for the session; Ray is imported only by farm tests
@pytest.fixture(scope="session")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False)
    yield
    ray.shutdown()


_GONE = ('\n[models."t-gone"]\nsource = "local:{root}/gone"\nfamily = "causal"\nmodes = ["t2v"]\nheight = 32\n'
         'width = 32\nframes = 9\nfps = 8\nmemory_gb = 0.01\nlicense = "test"\n')  # weights no node has


@pytest.fixture(scope="session")
def shared_farm(ray_instance, tiny_dirs, tmp_path_factory):
    """Two CPU workers for every farm test (test_farm*.py): they load the tiny model once, not once per test."""
    from studio.farm.ray_farm import RayFarm

    root = tmp_path_factory.mktemp("farm")
    (root / "models.toml").write_text(_models_toml(tiny_dirs) + _GONE.format(root=root.as_posix()), encoding="utf-8")
    farm_settings = Settings(data_dir=root / "data", default_model="t-far", models_file=root / "models.toml",
                             device="cpu")
    farm = RayFarm(farm_settings, workers=2).start()
    yield farm
    farm.close()


@pytest.fixture()
def farm_studio(settings, shared_farm):
    """(a Studio on ``settings`` whose executor is the shared farm, the farm); the workers stay for the next test."""
    from studio.farm.ray_farm import RETRIES

    studio = Studio.open(settings)
    shared_farm.retries = RETRIES
    studio.engine.executor = shared_farm
    yield studio, shared_farm
    studio.engine.executor = None
    studio.close()


class Hold:
    """Where a held render stands: ``reached`` is set when the held step starts waiting; it waits until
    ``release`` is set (at most ``timeout`` seconds, then it fails the render)."""

    def __init__(self, at: int, release: threading.Event | None, timeout: float):
        self.at, self.timeout, self.calls = at, timeout, 0
        self.reached, self.release = threading.Event(), release or threading.Event()
        self._lock = threading.Lock()

    def arrive(self) -> None:
        with self._lock:
            self.calls += 1
            mine = self.calls == self.at
        if mine:
            self.reached.set()
            if not self.release.wait(self.timeout):
                raise TimeoutError(f"a render held at scheduler step {self.at} was never released")


@pytest.fixture()
def hold_step(monkeypatch):
    """``hold_step(owner, at=1, release=None)``: the ``at``-th call of ``owner.step`` (a diffusers scheduler, or
    its class for models not loaded yet) waits until ``hold.release`` is set. Pipelines call ``scheduler.step``
    once per denoising step, just before the step's callback, so a render held at step 2 has reported step 1
    and has not finished step 2: a test orders itself against a render with events, not sleeps.
    Every hold is released when the test ends."""
    holds = []

    def make(owner, at: int = 1, release: threading.Event | None = None, timeout: float = 60) -> Hold:
        hold = Hold(at, release, timeout)
        original = owner.step

        def step(*args, **kwargs):
            hold.arrive()
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, "step", step)
        holds.append(hold)
        return hold

    yield make
    for hold in holds:
        hold.release.set()


@pytest.fixture(scope="session")
def sample_media(tmp_path_factory):
    """A PNG image and a 20-frame mp4 at 8 fps, made here."""
    import numpy as np
    from PIL import Image

    from studio.engine import media

    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    image = root / "first.png"
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(image)
    clip = np.zeros((20, 48, 64, 3), dtype=np.uint8)
    for t in range(20):
        clip[t, 10:30, 2 * t : 2 * t + 16] = (255, 0, 0)
    video = media.write_video(clip, root / "clip.mp4", fps=8)
    return {"image": image, "video": video}


def wait_for_query(query: str, db_path: Path, timeout: float = 120) -> None:
    """Poll another process's database until ``query`` gives a true first column (a deadline, not a sleep)."""
    import sqlite3
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db_path.exists():
            try:
                with sqlite3.connect(db_path, timeout=5) as conn:
                    if conn.execute(query).fetchone()[0]:
                        return
            except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
                pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {query}")


def page_client(url: str, **kwargs):
    """A gradio_client.Client that drives the page's own handlers, as the browser does. They are hidden from the API
    page (studio/ui/public_api.hide_ui_handlers), so a plain Client knows neither their parameters nor their
    defaults; this one reads the info of every endpoint. Strangers use the public API (tests/test_public_api.py)."""
    from gradio_client import Client
    from gradio_client import utils as client_utils

    plain = client_utils.RAW_API_INFO_URL
    client_utils.RAW_API_INFO_URL = plain + "&all_endpoints=True"
    try:
        return Client(url, **{"verbose": False, **kwargs})
    finally:
        client_utils.RAW_API_INFO_URL = plain


def launch_app(root: Path, tiny_dirs: dict | None = None, *, concurrency: int | None = None,
               max_upload_mb: float = 200, policies: str | None = None, space: bool = False):
    """Open a Studio under ``root`` (on the tiny test models when given), build the UI and launch it in-process
    on 127.0.0.1. Returns (demo, url, studio); the caller closes both."""
    from studio.ui import build_app, launch_options
    from studio.ui.serving import FOLLOWERS, set_concurrency

    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    settings = {"data_dir": data, "device": "cpu", "space": space, "max_upload_mb": max_upload_mb}
    if tiny_dirs is not None:
        models = root / "models.toml"
        models.write_text(_models_toml(tiny_dirs), encoding="utf-8")
        settings.update(default_model="t-far", models_file=models)
    if policies:
        (data / "policies.toml").write_text(policies, encoding="utf-8")
    studio = Studio.open(Settings(**settings))
    demo = build_app(studio)
    demo = set_concurrency(demo, FOLLOWERS)  # as app.py: Gradio hands renders to the studio's queue
    studio.start_dispatcher(slots=concurrency or 1)  # which runs them, ``concurrency`` at once
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                            **launch_options(studio, max_upload_mb=max_upload_mb))
    assert url.startswith("http://127.0.0.1:")
    return demo, url, studio
