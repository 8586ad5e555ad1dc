"""The model catalogue as a user sees it: which registered models are on this machine, from files alone.

No torch here: `python -m studio models` lists the catalogue without loading anything. What a running studio has
loaded comes in as ``loaded`` (ModelManager.loaded_state, or the owning studio's API).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .registry import ModelSpec, Registry


def cached_folder(spec: ModelSpec) -> Path | None:
    """The model's folder if its weights are already on this machine, else None (never downloads)."""
    folder = spec.local_folder()
    if folder is not None and (folder / "model_index.json").is_file():
        return folder
    if spec.hub_repo is None:
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(spec.hub_repo, local_files_only=True))
    except Exception:
        return None


def describe(registry: Registry, loaded: dict[str, dict] | None = None,
             folder_of: Callable[[ModelSpec], Path | None] = cached_folder) -> list[dict]:
    """One row per registered model: where its weights are, whether (and how) it is loaded, memory."""
    loaded = loaded or {}
    rows = []
    for spec in registry.specs.values():
        folder = folder_of(spec)
        state = loaded.get(spec.id) or {}
        rows.append(
            {
                "id": spec.id,
                "title": spec.title,
                "family": spec.family,
                "modes": list(spec.modes),
                "source": spec.source,
                "available": folder is not None,
                "folder": str(folder) if folder else None,
                "loaded": spec.id in loaded,
                "loaded_gb": state.get("loaded_gb"),
                "device": state.get("device"),
                "memory_mode": state.get("memory_mode"),
                "memory_reason": state.get("memory_reason"),
                "memory_gb": spec.memory_gb,
                "native": f"{spec.width}x{spec.height}x{spec.frames}@{spec.fps}",
                "license": spec.license,
            }
        )
    return rows
