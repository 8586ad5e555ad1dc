"""The catalogue of models: what each is, where its weights come from, what it serves.

Built-in entries live in ``presets/models.toml``; users add or override entries in
``<data dir>/models.toml`` without touching code.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..config import ASSETS_DIR, PRESETS_DIR
from ..errors import StudioError, UnknownModel

MODES = ("t2v", "i2v", "v2v")
FAMILIES = ("bidirectional", "causal")
SOURCE_KINDS = ("embedded", "local", "hub")
T2V_STRATEGIES = ("direct", "keyframe")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    source: str  # "embedded:<rel>" | "local:<path>" | "hub:<repo>"
    family: str = "bidirectional"
    modes: tuple[str, ...] = ("t2v",)
    title: str = ""
    height: int = 480
    width: int = 832
    frames: int = 81
    fps: int = 16
    temporal_factor: int = 4  # frames per latent frame: valid frame counts are temporal_factor*n + 1
    memory_gb: float = 0.0
    # How text-to-video runs: "direct" (one pipeline call from noise) or "keyframe" (the first frame alone, then the
    # clip continued from it as image-to-video, in the same model; for models without an absolute frame anchor)
    t2v: str = "direct"
    # The last step never starts below this noise level (0: the scheduler's own grid); see studio/engine/schedule.py
    last_jump_sigma: float = 0.0
    teacher: str = ""  # the model this one was distilled from: Compare can show the same budgets "before distillation"
    license: str = ""
    notes: str = ""
    path: str | None = None  # optional local folder holding a hub model's files
    # The longest clip and largest side the model's position table covers (None: derived from its configs by
    # ``limits_from_config`` when they are on disk; a catalogue entry may set them)
    max_frames: int | None = None
    max_side: int | None = None
    origin: str = "built-in"  # which file the entry came from

    @property
    def source_kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def source_ref(self) -> str:
        return self.source.split(":", 1)[1]

    @property
    def hub_repo(self) -> str | None:
        return self.source_ref if self.source_kind == "hub" else None

    @property
    def is_noncommercial(self) -> bool:
        return "non-commercial" in self.license.lower()

    def local_folder(self) -> Path | None:
        """The folder on disk the weights are expected in, if the entry names one."""
        if self.source_kind == "embedded":
            return ASSETS_DIR / self.source_ref
        if self.source_kind == "local":
            return Path(self.source_ref).expanduser()
        if self.path:
            return Path(self.path).expanduser()
        return None

    def serves(self, mode: str) -> bool:
        return mode in self.modes

    def valid_frame_counts(self, up_to: int | None = None) -> list[int]:
        limit = up_to or max(self.frames, 1)
        return [n for n in range(1, limit + 1) if (n - 1) % self.temporal_factor == 0]

    def to_dict(self) -> dict:
        return asdict(self)


def limits_from_config(transformer: dict, vae: dict, temporal_factor: int) -> dict:
    """{"max_frames", "max_side"} that the transformer's rotary position table covers: ``rope_max_seq_len``
    positions per axis, each a patch of ``patch_size`` latent cells, each latent cell ``temporal_factor`` frames
    (the VAE's temporal compression) and ``scale_factor_spatial`` pixels. Empty when the config does not say."""
    rope = transformer.get("rope_max_seq_len")
    if isinstance(rope, bool) or not isinstance(rope, int) or rope < 1:
        return {}
    patch = transformer.get("patch_size") or (1, 2, 2)
    p_t, p_s = (int(patch[0]), int(patch[1])) if isinstance(patch, (list, tuple)) and len(patch) == 3 else (1, 2)
    spatial = vae.get("scale_factor_spatial")
    if not isinstance(spatial, int) or isinstance(spatial, bool) or spatial < 1:
        down = vae.get("temperal_downsample")
        spatial = 2 ** len(down) if isinstance(down, list) else 8
    return {"max_frames": (rope * p_t - 1) * temporal_factor + 1, "max_side": rope * p_s * spatial}


def _spec_from_table(model_id: str, table: dict, origin: str) -> ModelSpec:
    known = set(ModelSpec.__dataclass_fields__) - {"id", "origin"}
    unknown = set(table) - known
    if unknown:
        raise StudioError(f"{origin}: model '{model_id}' has unknown keys: {', '.join(sorted(unknown))}")
    if "source" not in table:
        raise StudioError(f"{origin}: model '{model_id}' needs a 'source' (embedded:, local: or hub:)")
    kind = str(table["source"]).split(":", 1)[0]
    if kind not in SOURCE_KINDS or ":" not in str(table["source"]):
        raise StudioError(f"{origin}: model '{model_id}' source must start with embedded:, local: or hub:")
    family = table.get("family", "bidirectional")
    if family not in FAMILIES:
        raise StudioError(f"{origin}: model '{model_id}' family must be one of {', '.join(FAMILIES)}")
    modes = tuple(table.get("modes", ["t2v"]))
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise StudioError(f"{origin}: model '{model_id}' has unknown modes {bad}; use {', '.join(MODES)}")
    if table.get("t2v", "direct") not in T2V_STRATEGIES:
        raise StudioError(f"{origin}: model '{model_id}' t2v must be one of {', '.join(T2V_STRATEGIES)}")
    if table.get("t2v") == "keyframe" and (family != "bidirectional" or "i2v" not in modes):
        raise StudioError(f"{origin}: model '{model_id}' t2v = \"keyframe\" needs a bidirectional model that serves i2v")
    jump = table.get("last_jump_sigma", 0.0)
    if isinstance(jump, bool) or not isinstance(jump, (int, float)) or not 0.0 <= jump < 1.0:
        raise StudioError(f"{origin}: model '{model_id}' last_jump_sigma must be a number from 0 (off) up to, not "
                          f"including, 1")
    values = dict(table, modes=modes)
    return ModelSpec(id=model_id, origin=origin, **values)


def _read_file(path: Path) -> dict[str, ModelSpec]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise StudioError(f"{path}: not valid TOML ({exc})") from None
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise StudioError(f"{path}: expected [models.<id>] tables")
    return {mid: _spec_from_table(mid, table, str(path)) for mid, table in models.items()}


def unknown_model_message(ref: str, ids: list[str], user_file: Path | None = None) -> str:
    """The one message for a model reference that names nothing: a few known ids, and how to add one."""
    shown = sorted(ids)[:6]
    more = f" (and {len(ids) - len(shown)} more; `python -m studio models` lists them)" if len(ids) > len(shown) \
        else " (`python -m studio models` lists them)"
    where = f", or add a [models.\"<id>\"] table to {user_file}" if user_file else ""
    return (f"Unknown model '{ref}'. Known models: {', '.join(shown)}{more}. To use another model, pass its folder "
            f"(--model /path/to/folder, with model_index.json) or a hub repo id (--model owner/name){where}.")


@dataclass
class Registry:
    specs: dict[str, ModelSpec] = field(default_factory=dict)
    # With a resolver (model_refs.open_registry gives one), ``get`` also takes a model folder or a hub repo id,
    # adds its entry and saves it in the user's models file; without one, only ids.
    resolver: Callable[[str, "Registry"], ModelSpec] | None = None

    @classmethod
    def load(cls, user_file: Path | None = None, builtin_file: Path = PRESETS_DIR / "models.toml", *,
             resolver: Callable[[str, "Registry"], ModelSpec] | None = None) -> "Registry":
        specs = _read_file(builtin_file)
        if user_file is not None and user_file.is_file():
            specs.update(_read_file(user_file))
        return cls(specs, resolver)

    def get(self, model_id: str) -> ModelSpec:
        """The entry for an id; with a resolver, also for a model folder or hub repo id (see model_refs.py)."""
        spec = self.specs.get(model_id)
        if spec is not None:
            return spec
        if self.resolver is not None and isinstance(model_id, str) and model_id.strip():
            return self.resolver(model_id, self)
        raise UnknownModel(unknown_model_message(str(model_id), list(self.specs)))

    def add(self, spec: ModelSpec) -> None:
        self.specs[spec.id] = spec

    def ids(self) -> list[str]:
        return list(self.specs)

    def serving(self, mode: str) -> list[ModelSpec]:
        return [s for s in self.specs.values() if s.serves(mode)]
