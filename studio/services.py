"""Wiring: the one place where settings, registry, model manager, history and engine meet."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

from .config import Settings
from .cleanup import remove_partial_files
from .history import HistoryStore
from .models import ModelManager
from .policy import Policies
from .registry import Registry
from .render import RenderEngine


def quiet_libraries() -> None:
    """Keep diffusers/transformers chatter (per-call warnings, progress bars) off the user's console."""
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    dlogging.set_verbosity_error()
    tlogging.set_verbosity_error()
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)  # "frame size differs": we scale on purpose
    # The FAR transformer runs flex_attention uncompiled on CPU; torch warns once per process.
    warnings.filterwarnings("ignore", message=".*flex_attention.*")


@dataclass
class Studio:
    settings: Settings
    registry: Registry
    models: ModelManager
    history: HistoryStore
    engine: RenderEngine
    policies: Policies

    @classmethod
    def open(cls, settings: Settings | None = None, **overrides) -> "Studio":
        settings = settings or Settings.from_env(**overrides)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        quiet_libraries()
        registry = Registry.load(settings.user_models_file)
        models = ModelManager(settings, registry)
        history = HistoryStore(settings.history_path)
        remove_partial_files(settings.renders_dir)  # writes a crash interrupted
        policies = Policies.load(settings.user_policies_file)
        engine = RenderEngine(models, history, settings, policies)
        return cls(settings, registry, models, history, engine, policies)

    def close(self) -> None:
        self.history.close()
