"""Model references: what ``--model`` takes besides a catalogue id.

- a folder holding a model: the diffusers layout (``model_index.json`` next to ``transformer/``, ``vae/``, ...)
  or NVIDIA's original NVlabs layout (see nvlabs.py);
- a hub repo id, ``owner/name``: read from the local Hugging Face cache when it is there.

A reference that an entry already names (the same folder, the same repo) gives that entry. Any other becomes an
entry derived from its files: the family from the pipeline or transformer class, the modes from the family, the
native size, frames and fps from the configs where they say them (else the defaults of its kind), the temporal
factor from the VAE config, memory from the weights' bytes. It is added to the registry and appended to the
user's models file, so the UI's picker and ``python -m studio models`` list it next time.

A hub repo that is not cached yet gets a provisional entry guessed from its id (the catalogue's figures for
``nvidia/AnyFlow-*``), kept in memory only, when downloads are allowed; after the download, the next reference
reads its files and saves it. Offline, it is refused with what to run.

Reads JSON configs and file sizes only: no torch, diffusers or gradio here (the CLI's light commands use it).
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import threading
import tomllib
from pathlib import Path

from . import nvlabs
from ..config import Settings
from ..errors import NotAModel, UnknownModel, WeightsUnavailable
from .registry import ModelSpec, Registry, unknown_model_message

log = logging.getLogger(__name__)
GB = 1024**3
WEIGHT_EXTS = (".safetensors", ".bin", ".pt", ".pth")
WEIGHT_COMPONENTS = ("transformer", "vae", "text_encoder")  # the components that must carry weights
CAUSAL_MODES, BIDIRECTIONAL_MODES = ("t2v", "i2v", "v2v"), ("t2v",)
WAN_NATIVE = {"height": 480, "width": 832, "frames": 81, "fps": 16}  # the published AnyFlow (Wan2.1) checkpoints
SMALL_NATIVE = {"height": 64, "width": 64, "frames": 17, "fps": 8}  # the embedded tiny models (presets/models.toml)
WAN_INNER_DIM = 1024  # heads x head dim from which a transformer is Wan-sized (1.3B: 1536, 14B: 5120; tiny: 24)
CONFIG_KEYS = {"height": ("height", "sample_height"), "width": ("width", "sample_width"),
               "frames": ("num_frames", "frames"), "fps": ("fps", "frame_rate")}
PROVISIONAL = "provisional: guessed from the repo id, not saved"  # origin of an entry for a repo not cached yet
SAVED_FIELDS = ("title", "source", "family", "modes", "height", "width", "frames", "fps", "temporal_factor",
                "memory_gb", "license", "notes")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_LOCK = threading.Lock()  # one resolution at a time: two UI sessions must not both append the same folder


def open_registry(settings: Settings) -> Registry:
    """The catalogue and the user's models file, whose ``get`` also takes a model folder or a hub repo id."""
    return Registry.load(settings.user_models_file, resolver=lambda ref, registry: resolve_reference(ref, registry,
                                                                                                       settings))


def resolve_reference(ref: str, registry: Registry, settings: Settings) -> ModelSpec:
    """The registry entry for a catalogue id, a model folder or a hub repo id; adds (and saves) a new one.

    Raises UnknownModel, NotAModel or WeightsUnavailable with one message that says what to do."""
    ref = ref.strip()
    with _LOCK:
        if ref in registry.specs:
            return registry.specs[ref]
        path = Path(ref).expanduser()
        origin = str(settings.user_models_file)
        if path.exists() or _looks_like_path(ref):
            spec = _from_folder(path, registry, origin)
        elif _HUB_ID.match(ref):
            spec = _from_hub(ref, registry, settings)
        else:
            raise UnknownModel(unknown_model_message(ref, list(registry.specs), settings.user_models_file))
        return _register(spec, registry, settings)


def _looks_like_path(ref: str) -> bool:
    """A reference meant as a folder even though none is there (a hub id is exactly ``owner/name``)."""
    return (ref.startswith(("/", "./", "../", "~", ".\\", "..\\")) or ref.endswith(("/", "\\")) or ref.count("/") > 1
            or "\\" in ref or bool(re.match(r"^[A-Za-z]:", ref)))


def _register(spec: ModelSpec, registry: Registry, settings: Settings) -> ModelSpec:
    if registry.specs.get(spec.id) is spec:  # an entry the registry already had
        return spec
    registry.add(spec)
    if spec.origin != PROVISIONAL:
        remember(spec, settings.user_models_file)
    return spec


# ---- folders ----------------------------------------------------------------------------------
def _from_folder(path: Path, registry: Registry, origin: str) -> ModelSpec:
    folder = model_folder(path)
    for spec in registry.specs.values():
        if _same_folder(spec.local_folder(), folder):
            return spec
    return derive_spec(folder, unique_id(folder.name, registry), f"local:{folder}", origin, label=str(folder))


def model_folder(path: Path) -> Path:
    """The absolute folder, if it can hold a model (it has model_index.json); else NotAModel saying why."""
    if not path.exists():
        raise NotAModel(f"No such folder: {path}. --model takes a catalogue id (`python -m studio models`), a "
                        f"model folder, or a hub repo id (owner/name).")
    if not path.is_dir():
        raise NotAModel(f"{path} is a file, not a model folder: give the folder that holds model_index.json.")
    folder = path.resolve()
    if not (folder / "model_index.json").is_file():
        inner = sorted(str(p.parent) for p in folder.glob("*/model_index.json"))[:3]
        hint = (f" Model folders inside it: {', '.join(inner)}." if inner else
                " A model folder has model_index.json next to transformer/, vae/, text_encoder/ ..., as "
                "`hf download <owner/name> --local-dir <folder>` leaves it.")
        raise NotAModel(f"{folder} is not a model folder: it has no model_index.json.{hint}")
    return folder


def _same_folder(a: Path | None, b: Path) -> bool:
    try:
        return a is not None and a.expanduser().resolve() == b
    except OSError:
        return False


def unique_id(name: str, registry: Registry) -> str:
    """A readable id from a folder or repo name, not yet taken: "My FAR model" -> "my-far-model"(-2, -3...)."""
    base = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "model"
    candidate, n = base, 2
    while candidate in registry.specs:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


# ---- deriving an entry from a model's files ---------------------------------------------------------
def derive_spec(folder: Path, model_id: str, source: str, origin: str, label: str, license: str = "") -> ModelSpec:
    """An entry for the model in ``folder`` from its configs and weight files (see the module's docstring).
    ``label`` names where it came from (the folder or repo); ``license`` is used if the model card names none."""
    index = read_config(folder, "model_index.json")
    transformer = read_config(folder, "transformer/config.json")
    vae = read_config(folder, "vae/config.json", required=False)
    layout = "NVlabs layout" if nvlabs.is_nvlabs_layout(folder) else "diffusers layout"
    _check_pipeline(folder, index, layout)
    _check_weights(folder, index)
    causal, family_from = _family(index, transformer)
    native, native_from = _native(index, transformer)
    factor = _temporal_factor(vae)
    native["frames"] = (native["frames"] - 1) // factor * factor + 1  # a valid count: factor * n + 1
    size = weights_bytes(folder)
    family = "causal" if causal else "bidirectional"
    notes = (f"Added {datetime.date.today().isoformat()} from {label} ({layout}): {family} from {family_from}; "
             f"native size, frames and fps {native_from}; memory from {size / GB:.3g} GB of weights. "
             f"Edit this entry to change any of it.")
    return ModelSpec(id=model_id, source=source, family=family,
                     modes=CAUSAL_MODES if causal else BIDIRECTIONAL_MODES,
                     title=folder.name if source.startswith("local:") else label, temporal_factor=factor,
                     memory_gb=round(max(size / GB, 0.001), 3), license=_card_license(folder) or license,
                     notes=notes, origin=origin, **native)


def read_config(folder: Path, rel: str, required: bool = True) -> dict:
    """A JSON config of the model as a dict ({} if absent and not required); NotAModel if unreadable."""
    path = folder / rel
    if not path.is_file():
        if not required:
            return {}
        raise NotAModel(f"{folder} is not a model folder the studio can run: it has no {rel}.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise NotAModel(f"{folder}: {rel} is not valid JSON ({exc}). Fetch the file again.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotAModel(f"{folder}: {rel} cannot be read ({exc}).") from None
    if not isinstance(data, dict):
        raise NotAModel(f"{folder}: {rel} is not a JSON object.")
    return data


def _check_pipeline(folder: Path, index: dict, layout: str) -> None:
    pipeline = str(index.get("_class_name", ""))
    if "AnyFlow" not in pipeline and layout == "diffusers layout":
        raise NotAModel(f"{folder} holds a {pipeline or 'pipeline of no class'} (model_index.json), not an AnyFlow "
                        f"model: the studio runs AnyFlowPipeline and AnyFlowFARPipeline folders.")


def _check_weights(folder: Path, index: dict) -> None:
    missing = [c for c in WEIGHT_COMPONENTS if c in index and not _has_weights(folder / c)]
    if missing:
        raise WeightsUnavailable(
            f"{folder} has no weights for {', '.join(missing)}: its configs are there but no .safetensors or .bin "
            f"files in {', '.join(m + '/' for m in missing)}. A download that stopped early leaves this; fetch the "
            f"files again (e.g. `hf download <owner/name> --local-dir {folder}`).")


def _has_weights(component: Path) -> bool:
    return component.is_dir() and any(p.name.endswith(WEIGHT_EXTS) and p.is_file() for p in component.rglob("*"))


def weights_bytes(folder: Path) -> int:
    """Bytes of the weight files under ``folder`` (through the hub cache's symlinks)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.name.endswith(WEIGHT_EXTS) and p.is_file())


def _family(index: dict, transformer: dict) -> tuple[bool, str]:
    """(causal?, what said so). NVlabs folders use one transformer class for both: their init_far_model flag tells."""
    if "init_far_model" in transformer:
        return bool(transformer["init_far_model"]), f"init_far_model: {transformer['init_far_model']}"
    pipeline, tclass = str(index.get("_class_name", "")), str(transformer.get("_class_name", ""))
    if "FAR" in pipeline or tclass == "AnyFlowFARTransformer3DModel":
        return True, pipeline or tclass
    if transformer.get("chunk_partition"):
        return True, "the transformer's chunk_partition"
    return False, pipeline or tclass or "no causal class"


def _native(index: dict, transformer: dict) -> tuple[dict, str]:
    said = {key: _config_int(names, index, transformer) for key, names in CONFIG_KEYS.items()}
    wan = _wan_sized(transformer)
    defaults = WAN_NATIVE if wan else SMALL_NATIVE
    native = {key: said[key] or defaults[key] for key in defaults}
    told = [key for key in said if said[key]]
    kind = "a Wan-sized transformer's defaults" if wan else "a small transformer's defaults (as the embedded models)"
    where = f"from the configs ({', '.join(told)}), else {kind}" if told else f"are {kind}"
    return native, where


def _config_int(names: tuple[str, ...], *configs: dict) -> int | None:
    for config in configs:
        for name in names:
            value = config.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def _wan_sized(transformer: dict) -> bool:
    heads, dim = transformer.get("num_attention_heads"), transformer.get("attention_head_dim")
    if not (isinstance(heads, int) and isinstance(dim, int)):
        return True  # a real checkpoint's config says both; assume the published size
    return heads * dim >= WAN_INNER_DIM


def _temporal_factor(vae: dict) -> int:
    """Frames per latent frame: the VAE's scale_factor_temporal, else 2 per temporal downsampling, else Wan's 4."""
    factor = vae.get("scale_factor_temporal")
    if isinstance(factor, int) and not isinstance(factor, bool) and factor >= 1:
        return factor
    down = vae.get("temperal_downsample", vae.get("temporal_downsample"))
    if isinstance(down, list):
        return 2 ** sum(bool(step) for step in down)
    return 4


def _card_license(folder: Path) -> str:
    """The licence the model card (README.md front matter) names: license_name, else license; "" if none."""
    try:
        text = (folder / "README.md").read_text(encoding="utf-8", errors="replace")[:8192]
    except OSError:
        return ""
    if not text.startswith("---"):
        return ""
    found = {}
    for line in text.split("\n")[1:]:
        if line.strip() == "---":
            break
        key, _, value = line.partition(":")
        if key.strip() in ("license", "license_name") and value.strip():
            found[key.strip()] = value.strip().strip("'\"")
    return found.get("license_name") or found.get("license", "")


# ---- hub repo ids -----------------------------------------------------------------------------
def _from_hub(repo: str, registry: Registry, settings: Settings) -> ModelSpec:
    existing = next((s for s in registry.specs.values() if (s.hub_repo or "").lower() == repo.lower()), None)
    if existing is not None and existing.origin != PROVISIONAL:
        return existing
    snapshot = cached_snapshot(repo)
    if snapshot is not None:
        model_id = existing.id if existing is not None else unique_id(repo.split("/", 1)[1], registry)
        template = _catalogue_template(repo, registry)
        return derive_spec(model_folder(snapshot), model_id, f"hub:{repo}", str(settings.user_models_file), repo,
                           license=template.license if template is not None else "")
    if existing is not None:
        return existing
    if not settings.allow_download:
        raise WeightsUnavailable(
            f"'{repo}' is not on this machine (not in the Hugging Face cache) and downloads are off. Run again with "
            f"--allow-download, or fetch it first: `python -m studio models download {repo}` or `hf download {repo}`.")
    return provisional_spec(repo, registry)


def cached_snapshot(repo: str) -> Path | None:
    """The repo's snapshot folder in the local Hugging Face cache (HF_HUB_CACHE), or None; never downloads."""
    from huggingface_hub import snapshot_download  # light (no torch); only hub references need it

    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not cached, or a cache entry huggingface_hub cannot read: both mean "not here"
        return None


def provisional_spec(repo: str, registry: Registry) -> ModelSpec:
    """An entry for a repo not on this machine yet, guessed from its id (the catalogue's figures for
    nvidia/AnyFlow-*; else the Wan defaults, causal if its name says FAR). Not saved: after the download, the
    next reference derives the entry from the files."""
    name = repo.split("/", 1)[1]
    template = _catalogue_template(repo, registry)
    if template is not None:
        guess = {k: getattr(template, k) for k in ("family", "modes", "height", "width", "frames", "fps",
                                                   "temporal_factor", "memory_gb", "license")}
        source = f"the catalogue's {template.id}"
    else:
        causal = "far" in re.split(r"[-_.]", name.lower())
        guess = dict(WAN_NATIVE, family="causal" if causal else "bidirectional",
                     modes=CAUSAL_MODES if causal else BIDIRECTIONAL_MODES)
        source = "the published AnyFlow checkpoints' defaults"
    notes = (f"Provisional: {repo} is not on this machine yet, so this entry is guessed from its id ({source}). "
             f"Once downloaded, it is read from its files and saved.")
    return ModelSpec(id=unique_id(name, registry), source=f"hub:{repo}", title=repo, notes=notes, origin=PROVISIONAL,
                     **guess)


def _catalogue_template(repo: str, registry: Registry) -> ModelSpec | None:
    """For nvidia/AnyFlow-* ids: the catalogue entry of the same family (FAR or not) and size (14B or not)."""
    low = repo.lower()
    if not low.startswith("nvidia/anyflow"):
        return None
    far, big = "-far-" in low, "14b" in low
    for spec in registry.specs.values():
        other = (spec.hub_repo or "").lower()
        if other.startswith("nvidia/anyflow") and ("-far-" in other) == far and ("14b" in other) == big:
            return spec
    return None


# ---- the user's models file ----------------------------------------------------------------------
_HEADER = "# Your models: entries here add to, or replace, those in presets/models.toml (same form).\n"


def remember(spec: ModelSpec, path: Path) -> bool:
    """Append the entry to the user's models file as a [models."<id>"] table. The file's text is never
    rewritten: the new table is appended only if the whole file still reads as TOML with it. False (and a
    warning) if it cannot be saved: the entry still works in this process."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+", encoding="utf-8") as f:  # appends only; read, checked and written under one lock
            _lock(f)
            f.seek(0)
            old = f.read()
            table = ("" if not old or old.endswith("\n") else "\n") + ("\n" if old else _HEADER + "\n")
            table += _toml_table(spec)
            if spec.id not in tomllib.loads(old + table).get("models", {}):
                raise ValueError(f"the entry would not read back as [models.\"{spec.id}\"]")
            f.write(table)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        log.warning("Model '%s' is usable now but was not saved in %s (%s); add it there by hand to keep it.",
                    spec.id, path, exc)
        return False
    log.warning("Added model '%s' (%s) to %s.", spec.id, spec.source, path)
    return True


def _lock(f) -> None:
    """Hold the file against another process appending at the same moment (released when it closes)."""
    try:
        import fcntl
    except ImportError:  # Windows: appends are rare and small; go without
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)


def _toml_table(spec: ModelSpec) -> str:
    lines = [f"[models.{_toml_str(spec.id)}]"]
    for key in SAVED_FIELDS:
        value = getattr(spec, key)
        if value not in ("", None):
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _toml_str(str(value))


def _toml_str(text: str) -> str:
    """A TOML basic string: JSON's escaping is TOML's, but for DEL, which TOML also wants escaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
