"""Any model reference as --model: a catalogue id, a model folder (diffusers or NVlabs layout) or a hub repo id,
turned into a registry entry from the files and remembered in the user's models file (issue 15, item 1)."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from studio.cli import commands as cli
from studio.config import Settings
from studio.errors import NotAModel, UnknownModel, WeightsUnavailable
from studio.models.refs import open_registry, resolve_reference
from studio.models.registry import Registry
from studio.engine.request import RenderRequest
from studio.app.services import Studio

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--height", "32", "--width", "32", "--frames", "9", "--steps", "1", "--seed", "0"]


def _copy(tiny_dirs, model_id, dst) -> Path:
    """A copy of a tiny model in a folder of its own (not the one conftest's models file already names)."""
    shutil.copytree(tiny_dirs[model_id][1], dst)
    return dst


def _setup(tmp_path, **kw):
    settings = Settings(data_dir=tmp_path / "data", models_file=tmp_path / "user-models.toml", device="cpu", **kw)
    return settings, open_registry(settings)


def _saved(settings) -> dict:
    path = settings.user_models_file
    return tomllib.loads(path.read_text(encoding="utf-8"))["models"] if path.is_file() else {}


def _to_nvlabs(src, dst, causal):
    """A tiny model rewritten into NVIDIA's original layout (far.* classes, init_far_model flag)."""
    shutil.copytree(src, dst)
    index = json.loads((dst / "model_index.json").read_text())
    index.update(_class_name="FARWanAnyFlowPipeline" if causal else "WanAnyFlowPipeline",
                 transformer=["far.models.transformer_far_wan_model", "FAR_Wan_Transformer3DModel"],
                 scheduler=["far.schedulers.scheduling_flowmap_euler_discrete", "FlowMapDiscreteScheduler"])
    (dst / "model_index.json").write_text(json.dumps(index))
    tcfg = json.loads((dst / "transformer" / "config.json").read_text())
    tcfg.update(_class_name="FAR_Wan_Transformer3DModel", init_flowmap_model=True, init_far_model=causal)
    if not causal:
        tcfg.update(chunk_partition=None)
    (dst / "transformer" / "config.json").write_text(json.dumps(tcfg))
    return dst


def _fake_hub_cache(cache: Path, repo: str, src: Path) -> Path:
    """Lay out ``src`` as huggingface_hub caches a download: models--owner--name/{refs/main, snapshots/<rev>/}."""
    base = cache / f"models--{repo.replace('/', '--')}"
    snapshot = base / "snapshots" / "0123abcd"
    shutil.copytree(src, snapshot)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text("0123abcd")
    return snapshot


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))  # read at import: the running process needs this too
    return cache


# ---- folders -----------------------------------------------------------------------------------
def test_far_folder_renders_through_the_cli_and_is_then_listed(tmp_path, tiny_dirs):
    folder = _copy(tiny_dirs, "t-far", tmp_path / "My FAR model")
    models = tmp_path / "user-models.toml"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("STUDIO_MODEL", None)
    common = ["--data-dir", str(tmp_path / "data"), "--models-file", str(models)]

    def run(*args):
        return subprocess.run([sys.executable, "-m", "studio", *args, *common], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    out = run("render", "--model", str(folder), "--prompt", "a red circle", *SMALL)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_file() and "model my-far-model" in out.stderr
    out = run("models", "--json")
    listed = {row["id"]: row for row in json.loads(out.stdout)}
    row = listed["my-far-model"]
    assert row["source"] == f"local:{folder.resolve()}" and row["available"]
    assert row["family"] == "causal" and row["modes"] == ["t2v", "i2v", "v2v"]
    assert row["native"] == "64x64x17@8"  # a small transformer: the embedded tiny models' native size


def test_bidirectional_folder_renders_and_is_remembered(tmp_path, tiny_dirs, capsys):
    folder = _copy(tiny_dirs, "t-bidi", tmp_path / "bidi")
    models = tmp_path / "user-models.toml"
    args = ["--model", str(folder), "--data-dir", str(tmp_path / "data"), "--models-file", str(models)]
    assert cli.main(["render", "--prompt", "a blue square", *SMALL, "--quiet", *args]) == 0
    assert Path(capsys.readouterr().out.strip()).is_file()
    entry = tomllib.loads(models.read_text())["models"]["bidi"]
    assert entry["family"] == "bidirectional" and entry["modes"] == ["t2v"]
    assert entry["source"] == f"local:{folder.resolve()}"
    assert (entry["height"], entry["width"], entry["frames"], entry["fps"]) == (64, 64, 17, 8)
    assert entry["temporal_factor"] == 4  # the tiny VAE compresses time by 4
    on_disk = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    assert entry["memory_gb"] == pytest.approx(on_disk / 1024**3, abs=0.001)


def test_the_default_model_may_be_a_folder(tmp_path, tiny_dirs):
    folder = _copy(tiny_dirs, "t-far", tmp_path / "far")
    studio = Studio.open(Settings(data_dir=tmp_path / "data", models_file=tmp_path / "m.toml", device="cpu",
                                  default_model=str(folder)))
    try:
        assert studio.settings.default_model == "far"  # the picker's value is an id it lists
        assert "far" in studio.registry.ids()
    finally:
        studio.close()


@pytest.mark.parametrize("causal", [True, False])
def test_nvlabs_folder_is_recognised_and_renders(tmp_path, tiny_dirs, causal):
    src = tiny_dirs["t-far" if causal else "t-bidi"][1]
    folder = _to_nvlabs(src, tmp_path / "nv-ckpt", causal)
    settings, registry = _setup(tmp_path)
    spec = resolve_reference(str(folder), registry, settings)
    assert spec.id == "nv-ckpt" and spec.family == ("causal" if causal else "bidirectional")
    assert spec.modes == (("t2v", "i2v", "v2v") if causal else ("t2v",))
    studio = Studio.open(settings)
    try:
        result = studio.engine.run(RenderRequest(prompt="a red circle", model=str(folder), steps=1, seed=0,
                                                 height=32, width=32, frames=9))
        assert result[0].frames.shape[0] == 9 and studio.registry.ids().count("nv-ckpt") == 1
    finally:
        studio.close()


def test_wan_sized_transformer_gets_wan_defaults(tmp_path, tiny_dirs):
    folder = _copy(tiny_dirs, "t-far", tmp_path / "big")
    cfg_path = folder / "transformer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(num_attention_heads=12, attention_head_dim=128, num_layers=30)  # the 1.3B's shape (config only)
    cfg_path.write_text(json.dumps(cfg))
    settings, registry = _setup(tmp_path)
    spec = resolve_reference(str(folder), registry, settings)
    assert (spec.height, spec.width, spec.frames, spec.fps) == (480, 832, 81, 16)


def test_config_that_names_its_size_wins(tmp_path, tiny_dirs):
    folder = _copy(tiny_dirs, "t-bidi", tmp_path / "sized")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps(dict(index, height=48, width=80, num_frames=13, fps=12)))
    settings, registry = _setup(tmp_path)
    spec = resolve_reference(str(folder), registry, settings)
    assert (spec.height, spec.width, spec.frames, spec.fps) == (48, 80, 13, 12)


def test_existing_user_entries_survive_the_append(tmp_path, tiny_dirs):
    settings, _ = _setup(tmp_path)
    before = ('# my own models\n[models."mine"]\ntitle = "Mine"  # keep this comment\nsource = "hub:me/mine"\n'
              'family = "causal"\nmodes = ["t2v", "i2v"]')  # no newline at the end
    settings.user_models_file.write_text(before, encoding="utf-8")
    registry = open_registry(settings)
    folder = _copy(tiny_dirs, "t-far", tmp_path / 'odd "name" [x]')
    spec = resolve_reference(str(folder), registry, settings)
    text = settings.user_models_file.read_text(encoding="utf-8")
    assert text.startswith(before)
    again = Registry.load(settings.user_models_file)
    assert again.get("mine").modes == ("t2v", "i2v") and again.get("mine").title == "Mine"
    assert again.get(spec.id).source == f"local:{folder.resolve()}"


def test_the_same_folder_twice_gives_one_entry(tmp_path, tiny_dirs, monkeypatch):
    folder = _copy(tiny_dirs, "t-far", tmp_path / "twice")
    settings, registry = _setup(tmp_path)
    first = resolve_reference(str(folder), registry, settings)
    monkeypatch.chdir(tmp_path)
    fresh = open_registry(settings)  # next time: read back from the file
    second = resolve_reference("./twice/", fresh, settings)
    assert second.id == first.id == "twice"
    assert list(_saved(settings)) == ["twice"]


def test_a_folder_the_catalogue_names_reuses_its_id(studio, tiny_dirs):
    assert studio.registry.get(str(tiny_dirs["t-bidi"][1])).id == "t-bidi"  # conftest's models file has it
    assert studio.registry.get(str(ROOT / "assets" / "models" / "anyflow-tiny")).id == "anyflow-tiny"


def test_another_folder_with_a_taken_name_gets_a_unique_id(tmp_path, tiny_dirs):
    settings, registry = _setup(tmp_path)
    folder = _copy(tiny_dirs, "t-bidi", tmp_path / "anyflow-tiny")  # the name of a catalogue entry
    assert resolve_reference(str(folder), registry, settings).id == "anyflow-tiny-2"


# ---- hub ids -----------------------------------------------------------------------------------
def test_hub_id_in_the_local_cache_resolves_offline(tmp_path, tiny_dirs, hub_cache):
    snapshot = _fake_hub_cache(hub_cache, "someone/Tiny-FAR", tiny_dirs["t-far"][1])
    settings, registry = _setup(tmp_path)
    spec = resolve_reference("someone/Tiny-FAR", registry, settings)
    assert spec.id == "tiny-far" and spec.source == "hub:someone/Tiny-FAR" and spec.family == "causal"
    assert _saved(settings)["tiny-far"]["source"] == "hub:someone/Tiny-FAR"
    studio = Studio.open(settings)
    try:
        assert studio.models.cached_folder(studio.registry.get("tiny-far")) == snapshot
        assert studio.registry.get("someone/Tiny-FAR").id == "tiny-far"  # the same repo again: the same entry
    finally:
        studio.close()
    assert list(_saved(settings)) == ["tiny-far"]


def test_catalogue_repo_id_reuses_the_catalogue_entry(tmp_path, hub_cache):
    settings, registry = _setup(tmp_path)
    assert resolve_reference("nvidia/AnyFlow-FAR-Wan2.1-1.3B-Diffusers", registry, settings).id == "anyflow-far-1.3b"
    assert not settings.user_models_file.exists()


def test_uncached_hub_id_with_downloads_on_is_provisional(tmp_path, hub_cache):
    settings, registry = _setup(tmp_path, allow_download=True)
    spec = resolve_reference("nvidia/AnyFlow-FAR-Wan2.1-1.3B-Diffusers-v2", registry, settings)
    assert spec.source == "hub:nvidia/AnyFlow-FAR-Wan2.1-1.3B-Diffusers-v2" and spec.family == "causal"
    assert (spec.height, spec.width, spec.frames, spec.fps) == (480, 832, 81, 16)
    assert spec.is_noncommercial and spec.memory_gb == registry.get("anyflow-far-1.3b").memory_gb
    assert "provisional" in spec.notes.lower()
    assert not settings.user_models_file.exists()  # saved once its files are here, not from a guess


# ---- one clear message per bad reference -------------------------------------------------------
def _message(tmp_path, ref, error, **kw) -> str:
    settings, registry = _setup(tmp_path, **kw)
    with pytest.raises(error) as err:
        resolve_reference(ref, registry, settings)
    return str(err.value)


def test_unknown_id(tmp_path):
    msg = _message(tmp_path, "no-such-model", UnknownModel)
    assert "no-such-model" in msg and "anyflow-shapes" in msg and "python -m studio models" in msg
    assert "folder" in msg and "owner/name" in msg


def test_missing_folder(tmp_path):
    msg = _message(tmp_path, str(tmp_path / "not" / "there"), NotAModel)
    assert "no such folder" in msg.lower()


def test_a_file_is_not_a_model(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"x")
    assert "is a file" in _message(tmp_path, str(path), NotAModel)


def test_a_folder_without_model_index(tmp_path, tiny_dirs):
    folder = tmp_path / "outer"
    _copy(tiny_dirs, "t-bidi", folder / "inner")
    msg = _message(tmp_path, str(folder), NotAModel)
    assert "model_index.json" in msg and str((folder / "inner").resolve()) in msg  # says where the model may be


def test_an_invalid_config(tmp_path, tiny_dirs):
    folder = _copy(tiny_dirs, "t-bidi", tmp_path / "broken")
    (folder / "transformer" / "config.json").write_text("{not json")
    msg = _message(tmp_path, str(folder), NotAModel)
    assert "transformer/config.json" in msg and "JSON" in msg


def test_a_folder_without_weights(tmp_path, tiny_dirs):
    folder = _copy(tiny_dirs, "t-far", tmp_path / "configs-only")
    for weights in folder.rglob("*.safetensors"):
        weights.unlink()
    msg = _message(tmp_path, str(folder), WeightsUnavailable)
    assert "no weights" in msg and "transformer" in msg and ".safetensors" in msg


def test_hub_id_offline_and_not_cached(tmp_path, hub_cache):
    msg = _message(tmp_path, "someone/not-cached", WeightsUnavailable)
    assert "someone/not-cached" in msg and "--allow-download" in msg
    assert "python -m studio models download someone/not-cached" in msg and "hf download someone/not-cached" in msg


def test_cli_says_it_in_one_line(tmp_path, capsys):
    args = ["--data-dir", str(tmp_path / "d"), "--models-file", str(tmp_path / "m.toml")]
    assert cli.main(["render", "--prompt", "a cat", "--model", "no-such-model", *args]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: Unknown model 'no-such-model'")


def test_a_space_takes_catalogue_ids_only(tmp_path, tiny_dirs):
    folder = _copy(tiny_dirs, "t-bidi", tmp_path / "on-the-server")
    studio = Studio.open(Settings(data_dir=tmp_path / "data", models_file=tmp_path / "m.toml", device="cpu",
                                  space=True))
    try:
        with pytest.raises(UnknownModel):
            studio.registry.get(str(folder))  # a visitor never names a path on the server, nor a repo to fetch
        assert not (tmp_path / "m.toml").exists()
    finally:
        studio.close()


def test_resolving_reads_configs_only(tmp_path, tiny_dirs, hub_cache):
    """No torch, diffusers or gradio: the CLI's light commands go through here."""
    folder = _copy(tiny_dirs, "t-far", tmp_path / "light")
    _fake_hub_cache(hub_cache, "someone/light-hub", tiny_dirs["t-bidi"][1])
    code = ("import sys; from pathlib import Path; from studio.config import Settings; from studio.models.refs import "
            "open_registry\ns = Settings(data_dir=Path(sys.argv[1]), models_file=Path(sys.argv[1]) / 'm.toml')\n"
            "r = open_registry(s)\n"
            "print(r.get(sys.argv[2]).family, r.get('someone/light-hub').family)\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data"), str(folder)], cwd=ROOT,
                         env=dict(os.environ, HF_HUB_CACHE=str(hub_cache)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["causal bidirectional", "[]"]


def test_a_bad_default_model_is_told_where_it_is_used(tmp_path):
    studio = Studio.open(Settings(data_dir=tmp_path / "data", models_file=tmp_path / "m.toml", device="cpu",
                                  default_model="no-such-model"))
    try:
        assert studio.history.search  # the studio opens: history and stats need no model
        with pytest.raises(UnknownModel, match="no-such-model"):
            studio.engine.validate(RenderRequest(prompt="a cat"))
    finally:
        studio.close()


def test_a_models_file_that_no_longer_reads_is_left_alone(tmp_path, tiny_dirs, caplog):
    settings, registry = _setup(tmp_path)
    folder = _copy(tiny_dirs, "t-bidi", tmp_path / "fine")
    broken = '[models."x"]\nsource = "local:/x"\n[models."x"]\n'  # edited since it was read: now invalid
    settings.user_models_file.write_text(broken, encoding="utf-8")
    assert resolve_reference(str(folder), registry, settings).id == "fine"  # usable now
    assert settings.user_models_file.read_text(encoding="utf-8") == broken and "not saved" in caplog.text
