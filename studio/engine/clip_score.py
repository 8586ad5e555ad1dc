"""A CLIP text-video score for sweeps, from a CLIP model already in the Hugging Face hub cache (never downloaded).

    scorer = clip_score.cached_scorer()        # None when no CLIP model is cached (``why_off()`` says why)
    scorer(frames, prompt) -> float            # 100 x the mean cosine of the prompt's and each sampled frame's
                                               # CLIP embeddings, floored at 0 (the usual CLIPScore scale)

The model is found by its folder in the hub cache (``models--ORG--NAME`` whose name holds "clip" and whose
snapshot has a CLIP ``config.json``, a tokenizer and an image processor), loaded once per process with
``local_files_only`` on the CPU, and used on at most SAMPLE_FRAMES frames per clip.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
SAMPLE_FRAMES = 8
_lock = threading.Lock()
_loaded: dict[str, "ClipScorer"] = {}
_failed: dict[str, str] = {}


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def find_cached(cache: Path | None = None) -> tuple[str, Path] | None:
    """(repo id, snapshot folder) of the first CLIP model in the hub cache with everything a scorer needs."""
    cache = hub_cache() if cache is None else cache
    if not cache.is_dir():
        return None
    for repo in sorted(cache.glob("models--*")):
        if "clip" not in repo.name.lower():
            continue
        for snapshot in sorted((repo / "snapshots").glob("*")):
            if _is_clip(snapshot):
                return repo.name.removeprefix("models--").replace("--", "/"), snapshot
    return None


def _is_clip(snapshot: Path) -> bool:
    try:
        config = json.loads((snapshot / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    has_weights = any((snapshot / f).is_file() for f in ("model.safetensors", "pytorch_model.bin"))
    has_tokenizer = (snapshot / "tokenizer.json").is_file() or (snapshot / "vocab.json").is_file()
    return (isinstance(config, dict) and config.get("model_type") == "clip" and has_weights and has_tokenizer
            and any((snapshot / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")))


class ClipScorer:
    def __init__(self, repo_id: str, model, processor):
        self.repo_id, self.model, self.processor = repo_id, model, processor

    @classmethod
    def load(cls, repo_id: str, snapshot: Path) -> "ClipScorer":
        from transformers import CLIPModel, CLIPProcessor

        model = CLIPModel.from_pretrained(snapshot, local_files_only=True).eval()
        return cls(repo_id, model, CLIPProcessor.from_pretrained(snapshot, local_files_only=True))

    def __call__(self, frames: np.ndarray, prompt: str) -> float:
        import torch

        frames = np.asarray(frames)
        idx = np.unique(np.linspace(0, len(frames) - 1, min(SAMPLE_FRAMES, len(frames))).round().astype(int))
        inputs = self.processor(text=[prompt or ""], images=list(frames[idx]), return_tensors="pt", padding=True,
                                truncation=True)
        with torch.inference_mode():
            out = self.model(**inputs)
        text = torch.nn.functional.normalize(out.text_embeds, dim=-1)
        images = torch.nn.functional.normalize(out.image_embeds, dim=-1)
        return round(float((images @ text.T).clamp(min=0).mean()) * 100.0, 3)


def cached_scorer(cache: Path | None = None) -> ClipScorer | None:
    """The scorer of the CLIP model in the hub cache, loaded once; None when there is none or it cannot load."""
    found = find_cached(cache)
    if found is None:
        return None
    repo_id, snapshot = found
    with _lock:
        if str(snapshot) not in _loaded and str(snapshot) not in _failed:
            try:
                _loaded[str(snapshot)] = ClipScorer.load(repo_id, snapshot)
            except Exception as exc:  # noqa: BLE001 - a partial or foreign snapshot: the score is off, said why
                log.warning("CLIP score: %s in the hub cache does not load: %s", repo_id, exc)
                _failed[str(snapshot)] = f"{type(exc).__name__}: {exc}"[:200]
        return _loaded.get(str(snapshot))


def why_off(cache: Path | None = None) -> str | None:
    """None when the score is on; else why it is off (for a sweep report's ``off``)."""
    cache = hub_cache() if cache is None else cache
    found = find_cached(cache)
    if found is None:
        return f"off: no CLIP model in the hub cache ({cache}); nothing is downloaded for it"
    failed = _failed.get(str(found[1]))
    return f"off: {found[0]} in the hub cache does not load ({failed})" if failed else None
