"""LoRA files travel with a farm job (issue 14, item 4: nothing assumes a shared file system).

The studio sends a LoRA's bytes (a Ray object ref, put once per file version), never its path; the worker writes
them into its own cache folder, named by content hash. Here the studio's file is moved away while the job runs
on the worker, as if the worker were on a machine without it: the render still applies the LoRA."""

import dataclasses
import hashlib
import os

import numpy as np
import pytest

pytest.importorskip("ray")

from lora_files import make_lora  # noqa: E402

from studio.farm import loras as farm_loras  # noqa: E402
from studio.engine.request import RenderRequest  # noqa: E402
from studio.app.services import Studio  # noqa: E402

TINY_INNER = 24  # the tests' tiny models: 2 heads x 12


@pytest.fixture()
def lora_studio(settings, shared_farm):
    studio = Studio.open(settings)
    yield studio, shared_farm
    studio.engine.executor = None
    studio.close()


def test_a_farm_render_with_a_lora_gets_its_bytes_never_its_path(lora_studio, monkeypatch, tmp_path):
    studio, farm = lora_studio
    path = make_lora(studio.settings.loras_dir / "ink.safetensors", TINY_INNER, scale=1.0, seed=3)
    req = RenderRequest(prompt="ink", seed=4, steps=2, loras=(("ink.safetensors", 2.0),))
    sent, attempt = [], farm._attempt

    def on_a_machine_without_the_file(work, *rest):
        sent.append((work, rest))
        hidden = path.rename(tmp_path / "hidden.safetensors")  # the worker's machine has no such file
        try:
            yield from attempt(work, *rest)
        finally:
            hidden.rename(path)

    monkeypatch.setattr(farm, "_attempt", on_a_machine_without_the_file)
    studio.engine.executor = farm
    on_farm = studio.engine.run(req)[0].frames
    studio.engine.executor = None
    monkeypatch.undo()
    local = studio.engine.run(req)[0].frames
    base = studio.engine.run(dataclasses.replace(req, loras=()))[0].frames
    assert np.abs(on_farm.astype(int) - local).max() <= 2  # the same LoRA applied as in this process
    assert np.abs(local.astype(int) - base).mean() > 0.5  # and it is applied: the LoRA changes the frames
    work, rest = sent[0]
    assert work.loras == () and str(studio.settings.loras_dir) not in repr(sent)  # no studio path travels
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (farm_loras.cache_dir() / digest / "ink.safetensors").read_bytes() == path.read_bytes()


def test_each_file_version_is_put_once(tmp_path, ray_instance):
    from studio.engine.lora import adapters

    make_lora(tmp_path / "a.safetensors", TINY_INNER)
    packer = farm_loras.Packer()
    first = packer.pack(adapters((("a.safetensors", 1.0),), tmp_path))
    again = packer.pack(adapters((("a.safetensors", 0.5),), tmp_path))
    assert first[0].data is again[0].data and again[0].strength == 0.5  # one put for both renders
    later = (tmp_path / "a.safetensors").stat().st_mtime + 10
    make_lora(tmp_path / "a.safetensors", TINY_INNER, seed=9)  # the file changed: a new version travels
    os.utime(tmp_path / "a.safetensors", (later, later))
    changed = packer.pack(adapters((("a.safetensors", 1.0),), tmp_path))
    assert changed[0].digest != first[0].digest
    unpacked = farm_loras.unpack(changed, tmp_path / "worker")
    assert unpacked[0].path.startswith(str(tmp_path / "worker")) and unpacked[0].strength == 1.0
