"""Settings: one named place for every knob, from flags and the environment.

Precedence: explicit argument (CLI flag) > environment variable > default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
PRESETS_DIR = REPO_ROOT / "presets"
DEFAULT_MODEL = "anyflow-shapes"


def default_data_dir() -> Path:
    """A per-user data folder (XDG on Linux, Application Support on macOS, LOCALAPPDATA on Windows)."""
    env = os.environ.get("STUDIO_DATA_DIR")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
    elif (home / "Library" / "Application Support").is_dir():
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share"))
    return base / "anyflow-studio"


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else None


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    default_model: str = DEFAULT_MODEL
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    memory_budget_gb: float | None = None  # None: derived from the device (see models.py)
    offload: str = "auto"  # auto | none | model | group | sequential  (see models.MEMORY_MODES)
    vae_tiling: str = "auto"  # auto | on | off: tile the VAE decode (where artists run out of memory most)
    compile: bool = False  # regional torch.compile of the transformer blocks (GPU; off on Spaces)
    allow_download: bool = False  # hub downloads only when the user says so
    models_file: Path | None = None  # extra registry entries; default <data_dir>/models.toml
    space: bool = False  # Hugging Face Space mode: per-session history, file clean-up, capped budgets
    space_ttl_hours: float = 24.0  # Space mode: renders older than this are deleted
    farm: str = "local"  # local (GPU work in this process) | ray (workers as Ray actors: farm.py)
    workers: int | None = None  # farm: workers per GPU-less node (required on a CPU); GPU nodes get one per GPU
    ray_address: str | None = None  # farm: None starts a local Ray instance; "auto" or HOST:PORT joins a cluster
    max_upload_mb: float = 200.0  # the largest input file (upload, --image/--video, a file sent with a job)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        if self.models_file is not None:
            object.__setattr__(self, "models_file", Path(self.models_file).expanduser())

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Settings from STUDIO_* environment variables, then explicit overrides (None = not given)."""
        base = cls(
            default_model=os.environ.get("STUDIO_MODEL", DEFAULT_MODEL),
            device=os.environ.get("STUDIO_DEVICE", "auto"),
            dtype=os.environ.get("STUDIO_DTYPE", "auto"),
            memory_budget_gb=_env_float("STUDIO_MEMORY_BUDGET_GB"),
            offload=os.environ.get("STUDIO_OFFLOAD", "auto"),
            vae_tiling=os.environ.get("STUDIO_VAE_TILING", "auto"),
            compile=_env_bool("STUDIO_COMPILE", False),
            allow_download=_env_bool("STUDIO_ALLOW_DOWNLOAD", False) and not _env_bool("HF_HUB_OFFLINE", False),
            models_file=Path(os.environ["STUDIO_MODELS_FILE"]) if os.environ.get("STUDIO_MODELS_FILE") else None,
            space=bool(os.environ.get("SPACE_ID")) or _env_bool("STUDIO_SPACE", False),
            space_ttl_hours=_env_float("STUDIO_SPACE_TTL_HOURS") or 24.0,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def user_models_file(self) -> Path:
        return self.models_file or (self.data_dir / "models.toml")

    @property
    def user_policies_file(self) -> Path:
        return self.data_dir / "policies.toml"

    @property
    def renders_dir(self) -> Path:
        return self.data_dir / "renders"

    @property
    def loras_dir(self) -> Path:
        return self.data_dir / "loras"

    @property
    def history_path(self) -> Path:
        return self.data_dir / "history.db"
