"""Write the embedded tiny models (random weights) as diffusers folders under assets/models/.

    python scripts/make_embedded_model.py

Deterministic (fixed seed). The trained default model replaces these in a later step;
these stay as the smallest possible real AnyFlow folders for both families.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.models.tiny import tiny_pipeline  # noqa: E402

TARGETS = {"anyflow-tiny": "bidirectional", "anyflow-tiny-far": "causal"}


def main() -> None:
    for name, family in TARGETS.items():
        out = ROOT / "assets" / "models" / name
        pipe = tiny_pipeline(family, seed=0)
        pipe.save_pretrained(out)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"{name}: {family}, {size / 1e6:.2f} MB -> {out}")


if __name__ == "__main__":
    main()
