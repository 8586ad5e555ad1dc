"""ModelManager: resolve weights offline-first, load each pipeline once, lend it, evict LRU.

Eviction policy (documented, tested): every loaded pipeline is charged the bytes of its parameters and
buffers that its memory mode keeps on the device (all of them on a CPU or with no offload; see
memory.resident_bytes), against the memory budget (90% of the GPU, or 60% of RAM on a CPU). On a GPU,
offloaded weights wait in RAM and are charged against 80% of it. Before a load, the new model's
estimated charge is reserved under the manager's lock, so two loads at once cannot both take the same
room; least-recently-*lent* models that are not in use are unloaded until it fits. A model bigger than
the whole budget is refused with a message, never half-loaded. Only this module calls ``from_pretrained``.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import torch

from . import catalogue, memory, nvlabs
from ..config import Settings
from ..errors import NotEnoughMemory, StudioError, WeightsUnavailable
from .memory import MEMORY_MODES, MODE_LABELS, Placement, choose_memory_mode, resident_bytes  # noqa: F401
from .refs import open_registry
from .registry import ModelSpec, Registry, limits_from_config

log = logging.getLogger(__name__)
GB = 1024**3
ProgressFn = Callable[[str], None]


def apply_memory_mode(pipe, mode: str, device: str, vae_tiling: bool = False) -> None:
    """Place a freshly loaded (CPU) pipeline according to ``mode``."""
    if mode not in MEMORY_MODES:
        raise StudioError(f"Unknown memory mode '{mode}'. Use one of: auto, {', '.join(MEMORY_MODES)}.")
    if mode == "none" or not device.startswith("cuda"):
        pipe.to(device)
    elif mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "group":
        pipe.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                  offload_type="block_level", num_blocks_per_group=1, use_stream=True)
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    if vae_tiling:
        pipe.vae.enable_tiling()


def _file_bytes(folder: Path) -> dict[str, int]:
    """Bytes of weight files per component (the first folder level: transformer, text_encoder, vae)."""
    exts = (".safetensors", ".bin", ".pt", ".pth")
    sizes: Counter[str] = Counter()
    for p in folder.rglob("*"):
        if p.is_file() and p.name.endswith(exts):
            sizes[p.relative_to(folder).parts[0]] += p.stat().st_size
    return dict(sizes)


def _component_bytes(pipe) -> list[int]:
    """Bytes of parameters and buffers of each torch component of a pipeline."""
    sizes = []
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            tensors = list(component.parameters()) + list(component.buffers())
            sizes.append(sum(t.numel() * t.element_size() for t in tensors))
    return sizes or [0]


@dataclass
class LoadedModel:
    spec: ModelSpec
    pipe: object
    folder: Path
    device: str
    dtype: str
    nbytes: int
    load_seconds: float
    render_lock: threading.Lock = field(default_factory=threading.Lock)
    in_use: int = 0
    last_used: float = field(default_factory=time.monotonic)
    memory_mode: str = "none"
    vae_tiling: bool = False
    memory_reason: str = ""
    compiled: bool = False
    largest_bytes: int = 0  # the largest component: what model offload keeps on the device
    projection: tuple | None = None  # the latent->RGB preview projection, fitted on first use (denoise.py)
    notices: list[str] = field(default_factory=list)  # what the user should know about these weights


class ModelManager:
    def __init__(self, settings: Settings, registry: Registry | None = None):
        self.settings = settings
        self.registry = registry or open_registry(settings)
        self.device = self._pick_device(settings.device)
        self.load_counts: Counter[str] = Counter()  # how many times each model was really loaded
        self._loaded: dict[str, LoadedModel] = {}
        self._reserved: dict[str, tuple[int, int]] = {}  # loads in progress: (device, host) bytes
        self._lock = threading.RLock()
        self._load_locks: dict[str, threading.Lock] = {}

    # ---- device, dtype, budget -------------------------------------------------
    @staticmethod
    def _pick_device(wanted: str) -> str:
        if wanted in ("auto", "", None):
            return "cuda" if torch.cuda.is_available() else "cpu"
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise StudioError(f"Device '{wanted}' was asked for, but no CUDA GPU is available. Use --device cpu.")
        return wanted

    def dtype_for(self, component: str | None = None) -> torch.dtype:
        names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if self.settings.dtype != "auto":
            return names[self.settings.dtype]
        if self.device.startswith("cuda"):
            # The Wan VAE is kept in fp32 for quality (as diffusers' Wan examples do).
            return torch.float32 if component == "vae" else torch.bfloat16
        return torch.float32

    @property
    def budget_bytes(self) -> int:
        """Memory the renders may fill on the device: 90% of the GPU, or 60% of RAM on a CPU (where the
        work shares RAM with the weights). Each model is charged what its memory mode keeps on the device."""
        if self.settings.memory_budget_gb is not None:
            return int(self.settings.memory_budget_gb * GB)
        if self.device.startswith("cuda"):
            return int(memory.device_memory(self.device)[1] * 0.9)
        return int(memory.host_memory_bytes() * 0.6)

    @property
    def host_budget_bytes(self) -> int:
        """On a GPU, the RAM where offloaded weights wait: 80% of it (the work runs on the GPU)."""
        return int(memory.host_memory_bytes() * 0.8)

    def _charges(self, mode: str, weights: int, largest: int) -> tuple[int, int]:
        """(device, host) bytes a model holds between renders: on a CPU all in the one budget."""
        if not self.device.startswith("cuda"):
            return weights, 0
        return resident_bytes(mode, weights, largest), (0 if mode == "none" else weights)

    def _choose(self, weights: int, largest: int, activations: int, decode: int) -> tuple[str, bool, str]:
        """The memory mode and VAE tiling for these sizes on this device now: the user's choice, or chosen."""
        tiling_setting = self.settings.vae_tiling
        if not self.device.startswith("cuda"):
            return "none", tiling_setting == "on", "CPU: everything stays in RAM"
        free = memory.available_bytes(self.device)
        mode, tiling, reason = choose_memory_mode(free, weights, largest, activations, decode)
        if self.settings.offload != "auto":
            mode, reason = self.settings.offload, f"set by the user (auto would pick {mode}: {reason})"
        if tiling_setting != "auto":
            tiling = tiling_setting == "on"
        return mode, tiling, reason

    def plan_memory(self, spec: ModelSpec, pipe) -> tuple[str, bool, str]:
        """The memory mode and VAE tiling for a loaded (still on CPU) pipeline, at the model's native size."""
        sizes = _component_bytes(pipe)
        est = memory.estimate_render_bytes(
            frames=spec.frames, height=spec.height, width=spec.width, temporal_factor=spec.temporal_factor,
            family=spec.family, transformer=dict(pipe.transformer.config), vae=dict(pipe.vae.config),
            guidance=False, dtype_bytes=self.dtype_for().itemsize, device=self.device)
        return self._choose(sum(sizes), max(sizes), est["activations"], est["decode"] + est["output"])

    def placement(self, model_id: str, activations: int, decode: int) -> Placement:
        """Where the model's weights will be during a render: as loaded, or as a load would place them now."""
        with self._lock:
            entry = self._loaded.get(model_id)
            if entry is not None:
                return Placement(entry.memory_mode, entry.vae_tiling, entry.nbytes, entry.largest_bytes, True)
        spec = self.registry.get(model_id)
        weights, largest = self.estimate_sizes(spec, self.cached_folder(spec))
        mode, tiling, _reason = self._choose(weights, largest, activations, decode)
        return Placement(mode, tiling, weights, largest, False)

    def loaded_bytes(self) -> int:
        with self._lock:
            return sum(m.nbytes for m in self._loaded.values())

    # ---- resolving weights -------------------------------------------------------
    def resolve(self, spec: ModelSpec, progress: ProgressFn | None = None) -> Path:
        """The folder holding the model's weights, offline first. Raises WeightsUnavailable."""
        folder = spec.local_folder()
        if folder is not None and (folder / "model_index.json").is_file():
            return folder
        if spec.source_kind in ("embedded", "local"):
            hint = (
                "Run `python scripts/make_embedded_model.py` to rebuild the embedded models."
                if spec.source_kind == "embedded"
                else f"Check the path in {spec.origin}."
            )
            raise WeightsUnavailable(f"Model '{spec.id}': no diffusers folder at {folder} (no model_index.json). {hint}")
        return self._resolve_hub(spec, progress)

    def cached_folder(self, spec: ModelSpec) -> Path | None:
        """The model's folder if its weights are already on this machine, else None (never downloads)."""
        return catalogue.cached_folder(spec)

    def _resolve_hub(self, spec: ModelSpec, progress: ProgressFn | None) -> Path:
        cached = self.cached_folder(spec)
        if cached is not None:
            return cached
        if not self.settings.allow_download:
            raise WeightsUnavailable(
                f"Model '{spec.id}' ({spec.hub_repo}) is not on this machine. Download it with the Download "
                f"button under the model picker, or `python -m studio models download {spec.id}` (about "
                f"{spec.memory_gb:g} GB), or `hf download {spec.hub_repo}`; or run with --allow-download to fetch "
                f"it on first use, "
                f"or put the files in a folder and add `path = \"/that/folder\"` under [models.\"{spec.id}\"] "
                f"in {self.settings.user_models_file}."
            )
        from huggingface_hub import snapshot_download

        if progress:
            progress(f"Downloading {spec.hub_repo} (progress on the console)...")
        try:
            return Path(snapshot_download(spec.hub_repo))
        except Exception as exc:  # network errors, auth, disk full
            raise WeightsUnavailable(f"Model '{spec.id}': download of {spec.hub_repo} failed: {exc}") from None

    # ---- loading and caching ----------------------------------------------------
    def is_loaded(self, model_id: str) -> bool:
        with self._lock:
            return model_id in self._loaded

    def get(self, model_id: str, progress: ProgressFn | None = None) -> LoadedModel:
        """The loaded model, loading it first if needed. Concurrent callers share one load."""
        return self._get(model_id, progress, claim=False)

    def _get(self, model_id: str, progress: ProgressFn | None, claim: bool) -> LoadedModel:
        """get(); with ``claim``, the model is marked in use in the same lock hold that finds or adds it,
        so no eviction can come between (lend)."""
        spec = self.registry.get(model_id)
        entry = self._cached(model_id, claim)
        if entry is not None:
            return entry
        with self._lock:
            load_lock = self._load_locks.setdefault(model_id, threading.Lock())
        with load_lock:
            entry = self._cached(model_id, claim)  # loaded by another thread while we waited
            if entry is not None:
                return entry
            folder = self.resolve(spec, progress)
            self._make_room(spec, folder)
            entry = None
            try:
                if progress:
                    progress(f"Loading {spec.id} onto {self.device}...")
                entry = self._load(spec, folder)
                self._tell_notices(entry, progress)
            finally:
                with self._lock:
                    self._reserved.pop(model_id, None)
                    if entry is not None:
                        self._loaded[model_id] = entry
                        self.load_counts[model_id] += 1
                        entry.in_use += int(claim)
            return entry

    @staticmethod
    def _tell_notices(entry: LoadedModel, progress: ProgressFn | None) -> None:
        for note in entry.notices:
            log.warning("%s: %s", entry.spec.id, note)
            if progress:
                progress(note)

    def _cached(self, model_id: str, claim: bool) -> LoadedModel | None:
        with self._lock:
            entry = self._loaded.get(model_id)
            if entry is not None:
                entry.last_used = time.monotonic()
                entry.in_use += int(claim)
            return entry

    @contextmanager
    def lend(self, model_id: str, progress: ProgressFn | None = None) -> Iterator[LoadedModel]:
        """Borrow a loaded model for one render. One render at a time per pipeline; never evicted while lent."""
        entry = self._get(model_id, progress, claim=True)
        try:
            with entry.render_lock:
                entry.last_used = time.monotonic()
                yield entry
        finally:
            with self._lock:
                entry.in_use -= 1
                entry.last_used = time.monotonic()

    def estimate_bytes(self, spec: ModelSpec, folder: Path | None) -> int:
        return self.estimate_sizes(spec, folder)[0]

    def estimate_sizes(self, spec: ModelSpec, folder: Path | None) -> tuple[int, int]:
        """(weights, largest component) in bytes as loaded, from the files, else the registry's figure."""
        parts = _file_bytes(folder) if folder is not None else {}
        on_disk = sum(parts.values())
        if not on_disk:
            return int(spec.memory_gb * GB), int(spec.memory_gb * GB)
        # Files are usually stored in fp32 or bf16; on CPU we load fp32.
        factor = 2 if self.dtype_for() == torch.float32 and on_disk > GB else 1
        return on_disk * factor, max(parts.values()) * factor

    def _make_room(self, spec: ModelSpec, folder: Path) -> None:
        """Reserve the new model's charge, first unloading least recently lent idle models until it fits.

        The mode is planned as a load would pick it on a GPU holding just the budget (or --offload): a load
        that finds less free memory only offloads more, so the reservation is an upper bound."""
        weights, largest = self.estimate_sizes(spec, folder)
        mode = self.settings.offload
        if mode == "auto":
            mode = choose_memory_mode(int(self.budget_bytes / 0.9), weights, largest, 0, 0)[0]
        need = self._charges(mode, weights, largest)
        budgets = (self.budget_bytes, self.host_budget_bytes)
        self._refuse_oversized(spec, need, budgets)
        with self._lock:
            while any(used + n > b for used, n, b in zip(self._charged(), need, budgets)):
                idle = [m for m in self._loaded.values() if m.in_use == 0]
                if not idle:
                    raise NotEnoughMemory(
                        f"Model '{spec.id}' needs about {max(need) / GB:.1f} GB; the loaded models in use or "
                        f"loading leave too little of the {budgets[0] / GB:.1f} GB budget. Wait for the current "
                        "render to finish.")
                victim = min(idle, key=lambda m: m.last_used)
                self._evict(victim.spec.id)
            self._reserved[spec.id] = need

    def _charged(self) -> tuple[int, int]:
        """(device, host) bytes charged now: loaded models plus loads in progress. Call under the lock."""
        charges = [self._charges(m.memory_mode, m.nbytes, m.largest_bytes) for m in self._loaded.values()]
        charges += list(self._reserved.values())
        return sum(c[0] for c in charges), sum(c[1] for c in charges)

    @staticmethod
    def _refuse_oversized(spec: ModelSpec, need: tuple[int, int], budgets: tuple[int, int]) -> None:
        if need[0] > budgets[0]:
            raise NotEnoughMemory(
                f"Model '{spec.id}' needs about {need[0] / GB:.1f} GB but the memory budget is "
                f"{budgets[0] / GB:.1f} GB. Try --offload model (keeps only the active part on the GPU), "
                "a larger --memory-budget, or a smaller model.")
        if need[1] > budgets[1]:
            raise NotEnoughMemory(
                f"Model '{spec.id}' keeps about {need[1] / GB:.1f} GB of offloaded weights in RAM, more than "
                f"the {budgets[1] / GB:.1f} GB allowed (80% of RAM). Use a smaller model or a larger machine.")

    def _load(self, spec: ModelSpec, folder: Path) -> LoadedModel:
        from diffusers import AnyFlowFARPipeline, AnyFlowPipeline, DiffusionPipeline
        from diffusers.utils import logging as dlogging
        from transformers.utils import logging as tlogging

        started = time.perf_counter()
        load_from, notices = folder, []
        if nvlabs.is_nvlabs_layout(folder):
            load_from = nvlabs.diffusers_view(folder, self.settings.data_dir / "cache" / "nvlabs-views")
            notices = nvlabs.notices(folder)
        dtype = {"default": self.dtype_for(), "vae": self.dtype_for("vae")}
        previous = dlogging.get_verbosity()
        dlogging.set_verbosity_error()  # no per-component progress bars or warnings on the console
        dlogging.disable_progress_bar()
        tlogging.disable_progress_bar()
        try:
            pipe = DiffusionPipeline.from_pretrained(str(load_from), dtype=dtype)
        except torch.OutOfMemoryError:
            raise NotEnoughMemory(
                f"Out of memory while loading '{spec.id}'. Try --offload model or close other GPU programs."
            ) from None
        except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
            raise WeightsUnavailable(f"Model '{spec.id}': the folder {folder} could not be loaded: {exc}") from None
        finally:
            dlogging.enable_progress_bar()
            tlogging.enable_progress_bar()
            dlogging.set_verbosity(previous)
        expected = AnyFlowFARPipeline if spec.family == "causal" else AnyFlowPipeline
        if not isinstance(pipe, expected):
            raise StudioError(
                f"Model '{spec.id}' is registered as {spec.family} ({expected.__name__}) but {folder} "
                f"holds a {type(pipe).__name__}. Fix 'family' in {spec.origin}."
            )
        mode, tiling, reason = self.plan_memory(spec, pipe)
        try:
            apply_memory_mode(pipe, mode, self.device, tiling)
            compiled = False
            if self.settings.compile and self.device.startswith("cuda"):
                pipe.transformer.compile_repeated_blocks(fullgraph=True)  # regional: compiles one block, reuses it
                compiled = True
        except torch.OutOfMemoryError:
            self._free_device_memory()
            raise NotEnoughMemory(
                f"Out of memory moving '{spec.id}' to {self.device} ({MODE_LABELS[mode]}). "
                "Try --offload group or --offload sequential, or a smaller model."
            ) from None
        pipe.set_progress_bar_config(disable=True)
        if isinstance(pipe, AnyFlowFARPipeline):
            from . import far_attention

            far_attention.install(pipe)  # no zero keys in FAR attention (a diffusers 0.42.1 defect, see the module)
        return LoadedModel(
            spec=spec,
            pipe=pipe,
            folder=folder,
            device=self.device,
            dtype=str(self.dtype_for()).replace("torch.", ""),
            nbytes=sum(_component_bytes(pipe)),
            largest_bytes=max(_component_bytes(pipe)),
            load_seconds=time.perf_counter() - started,
            memory_mode=mode,
            vae_tiling=tiling,
            memory_reason=reason,
            compiled=compiled,
            notices=notices,
        )

    def _evict(self, model_id: str) -> None:
        with self._lock:
            entry = self._loaded.pop(model_id, None)
        if entry is not None:
            entry.pipe = None
            del entry
            self._free_device_memory()

    def _free_device_memory(self) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def unload(self, model_id: str) -> bool:
        with self._lock:
            entry = self._loaded.get(model_id)
            if entry is None:
                return False
            if entry.in_use:
                raise StudioError(f"Model '{model_id}' is rendering; unload it when the render is done.")
            self._evict(model_id)
            return True

    def component_config(self, model_id: str, component: str = "transformer") -> dict:
        """A component's config, from the loaded model or from disk (no load). Empty if unknown."""
        import json

        with self._lock:  # under the lock: an eviction sets entry.pipe to None
            entry = self._loaded.get(model_id)
            if entry is not None:
                return dict(getattr(entry.pipe, component).config)
        folder = self.cached_folder(self.registry.get(model_id))
        path = folder / component / "config.json" if folder else None
        if path is None or not path.is_file():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def transformer_config(self, model_id: str) -> dict:
        return self.component_config(model_id, "transformer")

    def with_limits(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` with the frames and sides its configs allow (registry.limits_from_config) where the entry does
        not set them; unchanged when its configs are not on disk (the pipeline says so when it loads)."""
        if spec.max_frames is not None and spec.max_side is not None:
            return spec
        found = limits_from_config(self.transformer_config(spec.id), self.component_config(spec.id, "vae"),
                                   spec.temporal_factor)
        given = {k: v for k, v in found.items() if getattr(spec, k) is None}
        return replace(spec, **given) if given else spec

    @staticmethod
    def mode_label(entry: LoadedModel) -> str:
        label = MODE_LABELS[entry.memory_mode] if entry.device.startswith("cuda") else "CPU (all in RAM)"
        return label + (" + VAE tiling" if entry.vae_tiling else "")

    # ---- reporting ------------------------------------------------------------------
    def loaded_state(self) -> dict[str, dict]:
        """{model id: how it is loaded (GB, device, memory mode and why)} for the loaded models."""
        with self._lock:
            entries = dict(self._loaded)
        return {mid: {"loaded_gb": round(e.nbytes / GB, 3), "device": e.device, "memory_mode": self.mode_label(e),
                      "memory_reason": e.memory_reason} for mid, e in entries.items()}

    def describe(self) -> list[dict]:
        """One row per registered model: where its weights are, whether it is loaded, memory."""
        return catalogue.describe(self.registry, self.loaded_state(), folder_of=self.cached_folder)
