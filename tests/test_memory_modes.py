"""The memory pre-check counts what each memory mode keeps on the GPU, against a simulated GPU.

No GPU is needed: torch.cuda's figures (is_available, total and free memory) are patched, and the model is a
folder with real Wan 14B / 1.3B configs and sparse weight files of the real sizes (bf16 transformer and text
encoder, fp32 VAE), so nothing is allocated and nothing is loaded.
"""

import json
from types import SimpleNamespace

import pytest
import torch

from studio.config import Settings
from studio.errors import NotEnoughMemory
from studio.models.manager import GB, ModelManager
from studio.models.registry import ModelSpec
from studio.engine.render import RenderEngine, RenderRequest

WAN = {  # transformer dims, (transformer, text encoder, vae) bytes as loaded on a GPU
    "14b": ({"num_attention_heads": 40, "attention_head_dim": 128, "ffn_dim": 13824, "num_layers": 40},
            (28.6, 11.4, 0.5)),
    "1.3b": ({"num_attention_heads": 12, "attention_head_dim": 128, "ffn_dim": 8960, "num_layers": 30},
             (2.8, 11.4, 0.5)),
}
VAE = {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "scale_factor_spatial": 8}


def _wan_folder(root, size):
    """A diffusers-layout folder: configs of the real model, weight files of its size (sparse: no disk used)."""
    dims, sizes = WAN[size]
    folder = root / f"wan-{size}"
    parts = {"transformer": ("diffusion_pytorch_model.safetensors", dict(dims, patch_size=[1, 2, 2])),
             "text_encoder": ("model.safetensors", {}), "vae": ("diffusion_pytorch_model.safetensors", VAE)}
    for (name, (weights, config)), gb in zip(parts.items(), sizes):
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text(json.dumps(config))
        with open(folder / name / weights, "wb") as f:
            f.truncate(int(gb * GB))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "AnyFlowPipeline"}))
    return folder


@pytest.fixture()
def gpu(monkeypatch):
    """A simulated CUDA GPU: gpu(total_gb, free_gb) sets what torch.cuda reports."""
    def set_figures(total_gb, free_gb):
        total, free = int(total_gb * GB), int(free_gb * GB)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
        monkeypatch.setattr(torch.cuda, "get_device_properties",
                            lambda device=None: SimpleNamespace(total_memory=total))
    return set_figures


def _manager(tmp_path, size, offload):
    settings = Settings(data_dir=tmp_path / "data", device="cuda", offload=offload,
                        models_file=tmp_path / "models.toml")
    manager = ModelManager(settings)
    folder = _wan_folder(tmp_path, size)
    manager.registry.add(ModelSpec(id="wan", source=f"local:{folder}", family="bidirectional", modes=("t2v",),
                                   height=480, width=832, frames=81, fps=16))
    return manager


def _check(manager, frames=81):
    """The engine's pre-check, as a render runs it (the engine needs only its model manager for this)."""
    req = RenderRequest(prompt="a fox", model="wan", height=480, width=832, frames=frames, fps=16)
    RenderEngine._check_memory(SimpleNamespace(models=manager), req)


@pytest.mark.parametrize("mode, fits", [("none", False), ("model", False), ("group", True), ("sequential", True),
                                        ("auto", True)])
def test_14b_on_a_24gb_gpu(gpu, tmp_path, mode, fits):
    """A 14B transformer alone is 28.6 GB in bf16: only group or sequential offload fit it in 24 GB."""
    gpu(24, 23.5)
    manager = _manager(tmp_path, "14b", mode)
    if fits:
        _check(manager)
        return
    with pytest.raises(NotEnoughMemory) as err:
        _check(manager)
    assert "--offload group" in str(err.value)  # the advice names a mode that fits, not one that does not


@pytest.mark.parametrize("mode, fits", [("none", False), ("model", True), ("group", True), ("sequential", True)])
def test_14b_on_a_48gb_gpu(gpu, tmp_path, mode, fits):
    """With 48 GB the whole 14B pipeline (40.5 GB) plus its work still does not fit; one component at a time does."""
    gpu(48, 47)
    manager = _manager(tmp_path, "14b", mode)
    if fits:
        _check(manager)
    else:
        with pytest.raises(NotEnoughMemory, match="--offload model"):
            _check(manager)


@pytest.mark.parametrize("mode", ["none", "model", "group", "sequential"])
def test_1_3b_on_a_24gb_gpu_fits_every_mode(gpu, tmp_path, mode):
    gpu(24, 23.5)
    _check(_manager(tmp_path, "1.3b", mode))


def test_the_free_memory_is_checked_not_only_the_budget(gpu, tmp_path):
    """Another program holds most of an 80 GB GPU: even group offload's few GB of work do not fit in 2 GB."""
    gpu(80, 2)
    with pytest.raises(NotEnoughMemory, match="free on cuda"):
        _check(_manager(tmp_path, "14b", "group"))


def test_default_budget_on_cuda_is_90_percent_of_the_gpu(gpu, tmp_path):
    """As the README says, for every --offload setting: the budget is GPU memory, where the render runs."""
    gpu(24, 23.5)
    for offload in ("auto", "none", "model", "group", "sequential"):
        assert _manager(tmp_path / offload, "1.3b", offload).budget_bytes == int(0.9 * 24 * GB)


def test_a_smaller_budget_refuses_what_the_gpu_could_hold(gpu, tmp_path):
    gpu(80, 79)
    manager = _manager(tmp_path, "14b", "model")
    manager.settings = Settings(data_dir=tmp_path / "data", device="cuda", offload="model", memory_budget_gb=20,
                                models_file=tmp_path / "models.toml")
    with pytest.raises(NotEnoughMemory, match="memory budget is 20.0 GB"):
        _check(manager)
