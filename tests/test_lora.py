"""LoRA adapters (issue 17, item 4): on the embedded model's transformer, a LoRA made here changes the render at
strength 1, not at 0, and leaves the cached pipeline computing exactly what it did before; bad files are refused
before any work, with one message and no history row."""

import numpy as np
import pytest
from lora_files import make_lora
from safetensors.torch import save_file

from studio.engine import lora
from studio.errors import BadLora, InvalidRequest
from studio.engine.render import RenderRequest

SHAPES_INNER = 128  # anyflow-shapes: 4 heads x 32
TINY_INNER = 24  # the tests' tiny models: 2 heads x 12


@pytest.fixture(scope="module")
def shapes_studio(tmp_path_factory):
    from studio.config import Settings
    from studio.app.services import Studio

    studio = Studio.open(Settings(data_dir=tmp_path_factory.mktemp("lora-shapes"), device="cpu"))
    make_lora(studio.settings.loras_dir / "style.safetensors", SHAPES_INNER, layers=4)
    make_lora(studio.settings.loras_dir / "other.safetensors", SHAPES_INNER, layers=2, seed=1)
    yield studio
    studio.close()


def frames(studio, **loras_and_more):
    req = RenderRequest(prompt="a red circle moving left on a black background", seed=5, steps=1, frames=5, height=32, width=32,
                        **loras_and_more)
    return studio.engine.run(req)[0].frames


def test_strength_zero_is_the_base_one_differs_and_the_base_is_unchanged_after(shapes_studio):
    base = frames(shapes_studio)
    assert np.array_equal(frames(shapes_studio, loras=(("style.safetensors", 0.0),)), base)
    styled = frames(shapes_studio, loras=(("style.safetensors", 1.0),))
    assert np.abs(styled.astype(int) - base).mean() > 0.5
    assert np.array_equal(frames(shapes_studio), base)  # the cached pipeline is the base again, bit for bit


def test_a_warm_switch_to_another_lora_and_two_at_once(shapes_studio):
    style = frames(shapes_studio, loras=(("style.safetensors", 1.0),))
    other = frames(shapes_studio, loras=(("other.safetensors", 1.0),))  # style stays loaded, disabled
    assert not np.array_equal(other, style)
    both = frames(shapes_studio, loras=(("style.safetensors", 1.0), ("other.safetensors", 1.0)))
    assert not np.array_equal(both, style) and not np.array_equal(both, other)
    assert np.array_equal(frames(shapes_studio, loras=(("style.safetensors", 1.0),)), style)


def test_the_request_records_the_lora_in_history_and_the_file(shapes_studio):
    from studio.engine import media

    req = RenderRequest(prompt="a green square", seed=1, steps=1, frames=9, loras=(("style.safetensors", 0.5),))
    result = shapes_studio.engine.run(req)[0]
    row = shapes_studio.history.get(result.record_id)
    assert row["request"]["loras"] == [["style.safetensors", 0.5]]
    assert media.read_metadata(result.video_path)["loras"] == [["style.safetensors", 0.5]]


@pytest.mark.parametrize("kind, message", [
    ("shapes", "does not fit t-far: blocks.0.attn1.to_q.lora_A.weight has shape [4, 40]"),
    ("architecture", "is for another architecture: 2 of its layers are not in t-far"),
    ("foreign", "has no LoRA weights for a Wan transformer"),
    ("not safetensors", "is not a safetensors file"),
    ("missing", "LoRA file not found: nowhere.safetensors"),
])
def test_a_bad_lora_is_refused_before_any_work(studio, kind, message):
    folder = studio.settings.loras_dir
    path = folder / "bad.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "shapes":  # a LoRA for a bigger model of the same architecture
        make_lora(path, 40)
    elif kind == "architecture":  # Flux-style block names under transformer.
        make_lora(path, TINY_INNER, prefix="transformer.transformer_blocks")
    elif kind == "foreign":  # an SD UNet LoRA
        import torch
        save_file({"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(4, 8)}, str(path))
    elif kind == "not safetensors":
        path.write_bytes(b"PK\x03\x04 a zip, say")
    name = "nowhere.safetensors" if kind == "missing" else "bad.safetensors"
    req = RenderRequest(prompt="a fox", steps=1, loras=((name, 1.0),))
    with pytest.raises(BadLora) as err:
        list(studio.engine.render(req))
    assert message in str(err.value)
    assert studio.history.count() == 0  # no row: the render was never attempted
    assert not studio.models.is_loaded("t-far")  # nor the model loaded


def test_a_lora_that_fits_the_tiny_model_renders_by_path(studio, tmp_path):
    path = make_lora(tmp_path / "elsewhere" / "fits.safetensors", TINY_INNER)
    result = studio.engine.run(RenderRequest(prompt="a fox", steps=1, seed=0, loras=((str(path), 1.5),)))[0]
    assert result.request["loras"] == ((str(path), 1.5),)


@pytest.mark.parametrize("loras, complaint", [
    ((("a.safetensors", 2.5),), "strength from -2 to 2"),
    ((("a.safetensors", float("nan")),), "strength from -2 to 2"),
    (tuple((f"{i}.safetensors", 1.0) for i in range(5)), "at most 4 LoRAs"),
    ((("a.safetensors", 1.0), ("a.safetensors", 0.5)), "listed twice"),
])
def test_the_loras_field_is_validated(studio, loras, complaint):
    with pytest.raises(InvalidRequest, match=complaint):
        studio.engine.validate(RenderRequest(prompt="a fox", loras=loras))


def test_cli_lora_flag_parses_file_and_strength():
    assert lora.parse_cli("style.safetensors") == ("style.safetensors", 1.0)
    assert lora.parse_cli("style.safetensors:0.6") == ("style.safetensors", 0.6)
    assert lora.parse_cli("C:\\loras\\a.safetensors:-1") == ("C:\\loras\\a.safetensors", -1.0)
    assert lora.parse_cli("C:\\loras\\a.safetensors") == ("C:\\loras\\a.safetensors", 1.0)


def test_the_folder_lists_safetensors_files(tmp_path):
    make_lora(tmp_path / "b.safetensors", 8)
    make_lora(tmp_path / "a.safetensors", 8)
    (tmp_path / "notes.txt").write_text("x")
    assert lora.listing(tmp_path) == ["a.safetensors", "b.safetensors"]
    assert lora.listing(tmp_path / "none") == []


def test_cli_lora_flags_reach_the_render_and_a_bad_one_is_one_line(settings, tmp_path, capsys):
    import json

    from studio.cli import commands as cli

    make_lora(settings.loras_dir / "ink.safetensors", TINY_INNER)
    make_lora(settings.loras_dir / "big.safetensors", 40)
    base = ["render", "--prompt", "a fox", "--steps", "1", "--quiet", "--model", "t-far", "--data-dir", str(settings.data_dir),
            "--models-file", str(settings.models_file), "--device", "cpu"]
    assert cli.main(base + ["--lora", "ink.safetensors:0.4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["request"]["loras"] == [["ink.safetensors", 0.4]]
    assert cli.main(base + ["--lora", "big.safetensors"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: LoRA big.safetensors does not fit t-far")
