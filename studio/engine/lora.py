"""LoRA adapters: the request field, the loras folder, checking a file against a model, applying it to a pipeline.

A request carries ``loras``: pairs (file, strength). ``file`` is a name in ``<data dir>/loras/`` or a path.
Before any render work the engine checks each file (``check``): a safetensors header is read (no tensor data),
its keys are converted the way diffusers' Wan loader converts them (on meta tensors) and compared with the
shapes of the model's transformer, built empty from its config. The GPU work then wraps its pipeline calls in
``applied(pipe, adapters)``: adapters are loaded once per pipeline and file version (name from path and
mtime), activated at their strengths for this render, and disabled afterwards, which leaves the pipeline
computing exactly what it computed before.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from ..errors import BadLora

MAX_LORAS = 4
MIN_STRENGTH, MAX_STRENGTH = -2.0, 2.0
MAX_CACHED = 8  # adapters kept loaded per pipeline (disabled when unused)
SUFFIX = ".safetensors"
_PARTS = (".lora_A.", ".lora_B.")


# ---- the request field (pure: no files, no torch) ------------------------------------------
def normalise(value, errors: dict) -> tuple[tuple[str, float], ...]:
    """The request's ``loras`` as ((file, strength), ...); problems go into ``errors["loras"]``."""
    items = [] if value in (None, "") else value
    if not isinstance(items, (list, tuple)) or len(items) > MAX_LORAS:
        errors["loras"] = f"give at most {MAX_LORAS} LoRAs as (file, strength) pairs"
        return ()
    out = []
    for item in items:
        pair = _pair(item)
        if pair is None:
            errors["loras"] = (f"each LoRA is (file, strength) with a strength from {MIN_STRENGTH:g} to "
                               f"{MAX_STRENGTH:g}; got {str(item)[:80]!r}")
            return ()
        out.append(pair)
    if len({f for f, _ in out}) != len(out):
        errors["loras"] = "the same LoRA file is listed twice"
    return tuple(out)


def _pair(item) -> tuple[str, float] | None:
    if isinstance(item, dict):
        item = (item.get("file"), item.get("strength", 1.0))
    if isinstance(item, str):
        item = (item, 1.0)
    if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str) or not item[0].strip():
        return None
    try:
        strength = float(item[1])
    except (TypeError, ValueError):
        return None
    if isinstance(item[1], bool) or not math.isfinite(strength) or not MIN_STRENGTH <= strength <= MAX_STRENGTH:
        return None
    return item[0].strip(), strength


def parse_cli(text: str) -> tuple[str, float]:
    """``FILE[:STRENGTH]`` -> (file, strength); a colon that is part of a path (C:\\...) stays in the file."""
    file, sep, tail = text.rpartition(":")
    if sep and file:
        try:
            return file, float(tail)
        except ValueError:
            pass
    return text, 1.0


def public(loras) -> list[list]:
    """The LoRAs as a file's metadata may show them: file names, never the server's paths."""
    return [[Path(f).name, s] for f, s in loras or ()]


# ---- the folder and the files ----------------------------------------------------------------
def listing(folder: Path) -> list[str]:
    """Names of the LoRA files in the loras folder, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix == SUFFIX)


def resolve(file: str, folder: Path, paths: bool = True) -> Path:
    """A name in the loras folder, or (with ``paths``; not on a Space) a path. Raises BadLora when there is no
    such file."""
    named = folder / file
    if Path(file).name == file and named.is_file():
        return named
    path = Path(file).expanduser()
    if paths and path.is_file():
        return path.resolve()
    have = listing(folder)
    hint = f" In {folder}: {', '.join(have)}." if have else f" Put LoRA files in {folder}, or give a path."
    raise BadLora(f"LoRA file not found: {file}.{hint}")


def header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{key: shape} from a safetensors header, without reading the tensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise BadLora(f"LoRA {path.name} is not a safetensors file ({str(exc)[:120]}). "
                      "LoRAs are .safetensors files in the Wan / diffusers format.") from None


def _as_diffusers(path: Path, shapes: dict) -> dict[str, tuple[int, ...]]:
    """The keys as diffusers' Wan loader will use them (it converts the original Wan and other formats)."""
    import torch
    from diffusers import AnyFlowPipeline

    meta = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    try:
        converted = AnyFlowPipeline.lora_state_dict(meta)
    except Exception as exc:  # the converter's own complaint about keys it does not know
        raise BadLora(f"LoRA {path.name} is not in a format the Wan LoRA loader reads ({str(exc)[:160]}).") from None
    converted = converted[0] if isinstance(converted, tuple) else converted
    return {k: tuple(v.shape) for k, v in converted.items()}


def check(path: Path, model_shapes: dict[str, tuple[int, ...]] | None, model_id: str) -> None:
    """Refuse a file that is not a safetensors LoRA this model's transformer can take. ``model_shapes``: the
    transformer's {parameter: shape} (None: unknown; only the format is checked)."""
    keys = _as_diffusers(path, header_shapes(path))
    lora = {k[len("transformer."):]: s for k, s in keys.items()
            if k.startswith("transformer.") and any(p in k for p in _PARTS)}
    if not lora:
        sample = ", ".join(sorted(keys)[:2]) or "none"
        raise BadLora(f"LoRA {path.name} has no LoRA weights for a Wan transformer (keys like {sample}): "
                      "it is for another kind of model.")
    if model_shapes is None:
        return
    layers = {m: model_shapes.get(f"{m}.weight") for m in {_module(k) for k in lora}}
    missing = sorted(m for m, shape in layers.items() if shape is None or len(shape) != 2)
    if missing:
        raise BadLora(f"LoRA {path.name} is for another architecture: {len(missing)} of its layers are not in "
                      f"{model_id} (e.g. {missing[0]}).")
    for key, shape in sorted(lora.items()):
        out_f, in_f = layers[_module(key)]
        a = ".lora_A." in key
        if (shape[1:2] if a else shape[:1]) != ((in_f,) if a else (out_f,)):
            raise BadLora(f"LoRA {path.name} does not fit {model_id}: {key} has shape {list(shape)}, the layer is "
                          f"{out_f}x{in_f} (out x in). It was trained for another model size.")


def _module(key: str) -> str:
    return key.split(".lora_A.")[0].split(".lora_B.")[0]


def transformer_shapes(config: dict, family: str) -> dict[str, tuple[int, ...]] | None:
    """{parameter: shape} of a transformer with this config, built on the meta device (no memory, no weights)."""
    if not config:
        return None
    return dict(_shapes(json.dumps(config, sort_keys=True, default=str), family))


@lru_cache(maxsize=16)
def _shapes(config_json: str, family: str) -> tuple:
    import diffusers
    from accelerate import init_empty_weights

    config = json.loads(config_json)
    cls = getattr(diffusers, str(config.get("_class_name")), None)
    if cls is None:  # an NVlabs-layout config names its own class: the diffusers class of its family
        cls = diffusers.AnyFlowFARTransformer3DModel if family == "causal" else diffusers.AnyFlowTransformer3DModel
    with init_empty_weights():
        model = cls.from_config(config)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


# ---- on a pipeline (in the GPU work) ---------------------------------------------------------
@dataclass(frozen=True)
class Adapter:
    """One LoRA file for one render, as the GPU work needs it: where, which version, how strong."""

    path: str
    mtime: float
    strength: float

    @property
    def name(self) -> str:
        """The adapter's name in the pipeline: one per file version, so an edited file loads anew."""
        digest = hashlib.sha1(f"{self.path}\0{self.mtime!r}".encode()).hexdigest()[:12]
        return f"studio_{Path(self.path).stem[:24]}_{digest}".replace(".", "_")


def adapters(loras, folder: Path, paths: bool = True) -> tuple[Adapter, ...]:
    """The request's (file, strength) pairs as Adapters (raises BadLora for a missing file)."""
    out = []
    for file, strength in loras or ():
        path = resolve(file, folder, paths)
        out.append(Adapter(str(path), path.stat().st_mtime, float(strength)))
    return tuple(out)


_loaded: "weakref.WeakKeyDictionary[object, OrderedDict[str, None]]" = weakref.WeakKeyDictionary()
_loaded_lock = threading.Lock()


def _recent(pipe) -> "OrderedDict[str, None]":
    with _loaded_lock:
        return _loaded.setdefault(pipe, OrderedDict())


@contextmanager
def applied(pipe, wanted: tuple[Adapter, ...]) -> Iterator[None]:
    """The pipeline with these adapters active at their strengths; afterwards, all adapters disabled, so the
    pipeline computes what it did before. Nothing to do (and nothing touched) without adapters."""
    if not wanted:
        yield
        return
    recent = _recent(pipe)
    try:
        for adapter in wanted:
            _load(pipe, adapter, recent)
        pipe.enable_lora()
        pipe.set_adapters([a.name for a in wanted], [a.strength for a in wanted])
        yield
    finally:
        if recent:
            pipe.disable_lora()
        _evict(pipe, recent, keep={a.name for a in wanted})


def _load(pipe, adapter: Adapter, recent: "OrderedDict[str, None]") -> None:
    if adapter.name in recent:
        recent.move_to_end(adapter.name)
        return
    try:
        pipe.load_lora_weights(adapter.path, adapter_name=adapter.name)
    except Exception:
        if adapter.name in _names(pipe):  # half loaded: take it out again
            pipe.delete_adapters(adapter.name)
        raise
    recent[adapter.name] = None


def _names(pipe) -> set[str]:
    return {n for names in pipe.get_list_adapters().values() for n in names}


def _evict(pipe, recent: "OrderedDict[str, None]", keep: set[str]) -> None:
    """Keep at most MAX_CACHED adapters loaded; with none left, the pipeline's layers are plain again."""
    while len(recent) > MAX_CACHED:
        name = next(n for n in recent if n not in keep)
        recent.pop(name)
        pipe.delete_adapters(name)
    if not recent and _names(pipe):
        pipe.unload_lora_weights()


def unload(pipe) -> None:
    """Take every studio adapter out of the pipeline (its layers are plain again)."""
    recent = _recent(pipe)
    if recent:
        recent.clear()
        pipe.unload_lora_weights()
