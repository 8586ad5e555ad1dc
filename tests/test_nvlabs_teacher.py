"""An NVlabs-layout teacher (``init_flowmap_model: false``: no delta_embedder weights) loads, renders as the
plain flow-matching model it is, and the user is told so (issue 18)."""

import json
import logging
import shutil

import pytest
from safetensors.torch import load_file, save_file

from studio.models.registry import ModelSpec
from studio.engine.request import RenderRequest


def _nvlabs_folder(src, dst, flowmap: bool):
    """The tiny FAR rewritten into NVIDIA's layout; a teacher's checkpoint has no delta_embedder at all."""
    shutil.copytree(src, dst)
    index = json.loads((dst / "model_index.json").read_text())
    index.update(_class_name="FARWanAnyFlowPipeline",
                 transformer=["far.models.transformer_far_wan_model", "FAR_Wan_Transformer3DModel"],
                 scheduler=["far.schedulers.scheduling_flowmap_euler_discrete", "FlowMapDiscreteScheduler"])
    (dst / "model_index.json").write_text(json.dumps(index))
    tcfg = json.loads((dst / "transformer" / "config.json").read_text())
    tcfg.update(_class_name="FAR_Wan_Transformer3DModel", init_flowmap_model=flowmap, init_far_model=True)
    (dst / "transformer" / "config.json").write_text(json.dumps(tcfg))
    if not flowmap:
        weights = dst / "transformer" / "diffusion_pytorch_model.safetensors"
        state = load_file(weights)
        dropped = [k for k in state if ".delta_embedder." in k]
        assert len(dropped) == 4
        save_file({k: v for k, v in state.items() if k not in dropped}, weights)
    return dst


def _add(studio, model_id, folder):
    studio.registry.add(ModelSpec(id=model_id, source=f"local:{folder}", family="causal", modes=("t2v",),
                                  height=32, width=32, frames=9, fps=8))


def test_teacher_loads_with_a_notice(studio, tiny_dirs, tmp_path, caplog):
    folder = _nvlabs_folder(tiny_dirs["t-far"][1], tmp_path / "teacher", flowmap=False)
    before = sorted(p.name for p in (folder / "transformer").iterdir())
    _add(studio, "nv-teacher", folder)
    said = []
    with caplog.at_level(logging.WARNING, logger="studio"):
        loaded = studio.models.get("nv-teacher", progress=said.append)
    assert len(loaded.notices) == 1
    notice = loaded.notices[0]
    assert "teacher" in notice and "init_flowmap_model" in notice and "delta_embedder" in notice
    assert notice in said  # the render's status line shows it
    assert notice in caplog.text  # and the log
    assert sorted(p.name for p in (folder / "transformer").iterdir()) == before  # the user's folder is untouched


def test_teacher_renders_as_plain_flow_matching(studio, tiny_dirs, tmp_path):
    """No delta embedding at all: the same render as the flow map's weights with the delta gate at 0."""
    _add(studio, "nv-teacher", _nvlabs_folder(tiny_dirs["t-far"][1], tmp_path / "teacher", flowmap=False))
    _add(studio, "no-delta", tiny_dirs["t-far"][1])
    studio.models.get("no-delta").pipe.transformer.condition_embedder.delta_emb_gate.zero_()
    req = dict(prompt="a red circle", steps=2, seed=5)
    teacher = studio.engine.run(RenderRequest(model="nv-teacher", **req))[0].frames
    plain = studio.engine.run(RenderRequest(model="no-delta", **req))[0].frames
    assert teacher.shape == plain.shape and (teacher == plain).all()


def test_flow_map_loads_without_notice(studio, tiny_dirs, tmp_path):
    _add(studio, "nv-flowmap", _nvlabs_folder(tiny_dirs["t-far"][1], tmp_path / "flowmap", flowmap=True))
    said = []
    assert studio.models.get("nv-flowmap", progress=said.append).notices == []
    assert not [s for s in said if "teacher" in s]
