"""Checkpoint folders in the original NVlabs AnyFlow layout, read as diffusers folders.

NVlabs' conversion script saves pipelines whose ``model_index.json`` names
``far.models.transformer_far_wan_model.FAR_Wan_Transformer3DModel`` and
``far.schedulers.scheduling_flowmap_euler_discrete.FlowMapDiscreteScheduler``; the
transformer config carries ``init_flowmap_model`` / ``init_far_model`` flags.
Loading such a folder directly fails on ``import far``. The weights themselves use
the same parameter names as diffusers' AnyFlow classes, so we build a *view*: a
folder of symlinks to the original files with only the three JSON configs
rewritten to name ``AnyFlowTransformer3DModel`` / ``AnyFlowFARTransformer3DModel``,
``FlowMapEulerDiscreteScheduler`` and ``AnyFlowPipeline`` / ``AnyFlowFARPipeline``.
The view is then loaded by the same ``from_pretrained`` call as any other folder.

A folder whose transformer config says ``init_flowmap_model: false`` is a *teacher* (plain flow matching),
not a flow map: NVIDIA's model then has no delta embedder, but diffusers' AnyFlow transformers always build
one, and from_pretrained would leave its 4 weights on the meta device (the load then fails). The view of a
teacher sets the delta gate to 0 (the embedding no longer counts, as in NVIDIA's teacher) and supplies zeros
for those weights as one more shard; ``notices`` says so, for the user.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

NVLABS_PREFIX = "far."
_REWRITTEN = {"model_index.json", "transformer/config.json", "scheduler/scheduler_config.json"}
_WEIGHTS = "diffusion_pytorch_model.safetensors"
_INDEX = _WEIGHTS + ".index.json"
_ZEROS = "delta_embedder_zeros.safetensors"
_TIME, _DELTA = "condition_embedder.time_embedder.", "condition_embedder.delta_embedder."
TEACHER_NOTICE = (
    "{name} is an AnyFlow teacher (init_flowmap_model: false), not a flow map: its checkpoint has no "
    "delta_embedder (4 weights), so it runs as plain flow matching with that embedding switched off. "
    "It was not distilled for few steps: expect poor renders at low step counts."
)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def is_nvlabs_layout(folder: Path) -> bool:
    index = Path(folder) / "model_index.json"
    if not index.is_file():
        return False
    data = _read_json(index)
    for value in data.values():
        if isinstance(value, list) and value and isinstance(value[0], str) and value[0].startswith(NVLABS_PREFIX):
            return True
    return str(data.get("_class_name", "")).startswith(("FARWan", "WanAnyFlow"))


def _is_causal(index: dict, transformer_cfg: dict) -> bool:
    if "init_far_model" in transformer_cfg:
        return bool(transformer_cfg["init_far_model"])
    return "FAR" in str(index.get("_class_name", "")) or "chunk_partition" in transformer_cfg


def is_teacher(transformer_cfg: dict) -> bool:
    """An NVlabs transformer config that says it is not a flow map (a flag absent means a flow map)."""
    return transformer_cfg.get("init_flowmap_model") is False


def notices(folder: Path) -> list[str]:
    """What the user should be told when an NVlabs folder loads (empty for a flow map)."""
    folder = Path(folder)
    if is_teacher(_read_json(folder / "transformer" / "config.json")):
        return [TEACHER_NOTICE.format(name=f"The NVlabs folder '{folder.name}'")]
    return []


def _keep_accepted(cfg: dict, cls) -> dict:
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return {k: v for k, v in cfg.items() if k in accepted or k in {"_diffusers_version"}}


def mapped_configs(folder: Path) -> dict[str, dict]:
    """The three rewritten configs, keyed by their path inside the folder."""
    from diffusers import (
        AnyFlowFARPipeline,
        AnyFlowFARTransformer3DModel,
        AnyFlowPipeline,
        AnyFlowTransformer3DModel,
        FlowMapEulerDiscreteScheduler,
    )

    folder = Path(folder)
    index = _read_json(folder / "model_index.json")
    tcfg = _read_json(folder / "transformer" / "config.json")
    causal = _is_causal(index, tcfg)
    tcls = AnyFlowFARTransformer3DModel if causal else AnyFlowTransformer3DModel
    pcls = AnyFlowFARPipeline if causal else AnyFlowPipeline

    new_t = _keep_accepted(tcfg, tcls)
    new_t["_class_name"] = tcls.__name__
    if is_teacher(tcfg):
        new_t["gate_value"] = 0.0  # rt_emb = temb exactly: no delta embedding, as in NVIDIA's teacher

    sched_path = folder / "scheduler" / "scheduler_config.json"
    scfg = _read_json(sched_path) if sched_path.is_file() else {"num_train_timesteps": 1000, "shift": 5.0}
    new_s = _keep_accepted(scfg, FlowMapEulerDiscreteScheduler)
    new_s["_class_name"] = FlowMapEulerDiscreteScheduler.__name__

    new_index = dict(index)
    new_index["_class_name"] = pcls.__name__
    new_index["transformer"] = ["diffusers", tcls.__name__]
    new_index["scheduler"] = ["diffusers", FlowMapEulerDiscreteScheduler.__name__]
    return {
        "model_index.json": new_index,
        "transformer/config.json": new_t,
        "scheduler/scheduler_config.json": new_s,
    }


def diffusers_view(folder: Path, views_dir: Path) -> Path:
    """Build (or rebuild) the diffusers view of an NVlabs folder; return its path."""
    folder = Path(folder).resolve()
    key = hashlib.sha1(str(folder).encode()).hexdigest()[:16]
    view = Path(views_dir) / f"{folder.name}-{key}"
    if view.exists():
        shutil.rmtree(view)
    configs = mapped_configs(folder)
    for src in folder.rglob("*"):
        rel = src.relative_to(folder)
        dst = view / rel
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
            continue
        if rel.as_posix() in _REWRITTEN:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(src, dst)
        except OSError:  # filesystems without symlinks: copy instead
            shutil.copy2(src, dst)
    for rel, data in configs.items():
        dst = view / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(json.dumps(data, indent=2), encoding="utf-8")
    if is_teacher(_read_json(folder / "transformer" / "config.json")):
        _add_zero_delta_embedder(folder / "transformer", view / "transformer")
    return view


def _weight_map(transformer_dir: Path) -> dict[str, str]:
    """Parameter name -> file, for a single or sharded safetensors checkpoint ({} for neither)."""
    from safetensors import safe_open

    if (transformer_dir / _INDEX).is_file():
        return dict(_read_json(transformer_dir / _INDEX)["weight_map"])
    if not (transformer_dir / _WEIGHTS).is_file():
        return {}
    with safe_open(transformer_dir / _WEIGHTS, "pt") as f:
        return {key: _WEIGHTS for key in f.keys()}


def _add_zero_delta_embedder(src: Path, view: Path) -> None:
    """Give a teacher's view the delta_embedder weights it lacks: zeros shaped like the time embedder's (the
    two are the same module), in their own shard, listed with the original shards in a new index."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    weight_map = _weight_map(src)
    if not weight_map or any(key.startswith(_DELTA) for key in weight_map):
        return
    zeros = {}
    for key in (k for k in weight_map if k.startswith(_TIME)):
        with safe_open(src / weight_map[key], "pt") as f:
            zeros[_DELTA + key[len(_TIME):]] = torch.zeros_like(f.get_tensor(key))
    save_file(zeros, view / _ZEROS)
    weight_map.update(dict.fromkeys(zeros, _ZEROS))
    index = view / _INDEX
    index.unlink(missing_ok=True)  # a symlink to the original index: never write through it
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2), encoding="utf-8")
