"""The studio's rules for what a storyboard shot may hold, given to every ``BoardStore``.

The store keeps shots but knows nothing of models or the engine (its layer contract); the modes come from the
model registry, the seed range and the LoRA checks from the engine. ``board_store(history)`` is the one way the
studio makes a ``BoardStore``.
"""

from __future__ import annotations

import random

from ..engine import lora
from ..engine.request import MAX_SEED
from ..errors import InvalidRequest, StudioError
from ..models.registry import MODES
from ..store.boards import BoardStore
from ..store.history import HistoryStore


class StudioShotRules:
    def mode(self, value) -> str:
        if value not in MODES:
            raise StudioError(f"Shot mode must be one of {', '.join(MODES)}, not {value!r}.")
        return value

    def new_seed(self) -> int:
        return random.randint(0, MAX_SEED)

    def loras(self, value) -> list[list]:
        return shot_loras(value)


SHOT_RULES = StudioShotRules()


def shot_loras(value) -> list[list]:
    """A shot's LoRAs as stored and compared: [[file, strength], ...]; InvalidRequest for a bad list."""
    errors: dict = {}
    pairs = lora.normalise(value, errors)
    if errors:
        raise InvalidRequest(errors)
    return [[f, s] for f, s in pairs]


def board_store(history: HistoryStore) -> BoardStore:
    """A ``BoardStore`` on ``history``'s database with the studio's shot rules."""
    return BoardStore(history, SHOT_RULES)
