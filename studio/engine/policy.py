"""Budget policies (named step budgets, optional size and length) and queue-aware caps.

Policies live in ``presets/policies.toml``; users add or override them in
``<data dir>/policies.toml``. A cap applies when more renders are waiting than a
threshold: every budget of a plan is capped to ``max_steps``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import PRESETS_DIR
from ..errors import StudioError


@dataclass(frozen=True)
class Policy:
    name: str
    steps: int
    height: int | None = None
    width: int | None = None
    frames: int | None = None
    description: str = ""

    def apply(self, request):
        """The request with this policy's budget (and size/length, where the policy sets them)."""
        changes = {"steps": self.steps}
        for key in ("height", "width", "frames"):
            if getattr(self, key) is not None:
                changes[key] = getattr(self, key)
        return replace(request, **changes)


@dataclass(frozen=True)
class QueueCaps:
    threshold: int = 4  # more waiting renders than this ...
    max_steps: int = 8  # ... cap every budget at this


def cap_budgets(budgets: tuple[int, ...], max_steps: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(capped budgets, the budget each was asked as). Budgets that cap to the same value merge; order is kept."""
    capped: list[int] = []
    asked: list[int] = []
    for b in budgets:
        value = min(b, max_steps)
        if value not in capped:
            capped.append(value)
            asked.append(b)
    return tuple(capped), tuple(asked)


def _int_or_none(table: dict, key: str, origin: str, name: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise StudioError(f"{origin}: policy '{name}' {key} must be a positive whole number")
    return value


@dataclass
class Policies:
    policies: dict[str, Policy] = field(default_factory=dict)
    caps: QueueCaps = field(default_factory=QueueCaps)
    space_max_steps: int = 16  # Space mode: no budget above this

    def limit(self, waiting: int, space: bool = False) -> tuple[int | None, str | None]:
        """The strictest step cap in force now, and why (None, None when there is none)."""
        limits = []
        if space:
            limits.append((self.space_max_steps, f"This shared Space caps step budgets at {self.space_max_steps}"))
        if waiting > self.caps.threshold:
            limits.append((self.caps.max_steps, f"Busy: {waiting} renders waiting (more than {self.caps.threshold}), "
                                                f"so step budgets are capped at {self.caps.max_steps}"))
        return min(limits) if limits else (None, None)

    @classmethod
    def load(cls, user_file: Path | None = None, builtin_file: Path = PRESETS_DIR / "policies.toml") -> "Policies":
        result = cls()
        for path in (builtin_file, user_file):
            if path is None or not Path(path).is_file():
                continue
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise StudioError(f"{path}: not valid TOML ({exc})") from None
            for name, table in data.get("policies", {}).items():
                steps = _int_or_none(table, "steps", str(path), name)
                if steps is None:
                    raise StudioError(f"{path}: policy '{name}' needs steps")
                result.policies[name] = Policy(
                    name=name, steps=steps, height=_int_or_none(table, "height", str(path), name),
                    width=_int_or_none(table, "width", str(path), name),
                    frames=_int_or_none(table, "frames", str(path), name),
                    description=str(table.get("description", "")),
                )
            if "space" in data:
                result.space_max_steps = int(data["space"].get("max_steps", result.space_max_steps))
            if "queue" in data:
                q = data["queue"]
                result.caps = QueueCaps(
                    threshold=int(q.get("threshold", result.caps.threshold)),
                    max_steps=int(q.get("max_steps", result.caps.max_steps)),
                )
        return result

    def get(self, name: str) -> Policy:
        try:
            return self.policies[name]
        except KeyError:
            raise StudioError(f"Unknown policy '{name}'. Policies: {', '.join(self.policies)}.") from None

    def names(self) -> list[str]:
        return list(self.policies)
