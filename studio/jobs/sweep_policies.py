"""Budget policies proposed from a sweep's summary, and written to the user's policies.toml only when accepted.

The quality a budget buys is read from the blind review's accepted rate when every budget of the model has at
least MIN_REVIEWS reviews, else from convergence (SSIM to the same seed's highest-budget render), in points
(0-100). Then, for the model:

- final:   the smallest budget within 5 points of the best; nothing beyond it buys more than that.
- preview: the smallest budget within 15 points of the best.
- draft:   the smallest budget within 30 points of the best (the cheapest look that still resembles it).

Each proposal carries its reason (the figures it rests on). ``write`` updates (or adds) the draft, preview and
final policies in the user's file with ``source = "sweep:<id>"``, keeping everything else in it (tomlkit).
"""

from __future__ import annotations

from pathlib import Path

import tomlkit

from ..errors import StudioError

MIN_REVIEWS = 3
MARGINS = {"draft": 30.0, "preview": 15.0, "final": 5.0}


def _quality(groups: list[dict]) -> tuple[str, dict[int, float]] | None:
    """(signal name, {steps: points}) for one model's summary entries, or None when nothing measures quality."""
    if groups and all(g["accepted"]["reviewed"] >= MIN_REVIEWS for g in groups):
        return "accepted rate", {g["steps"]: 100.0 * g["accepted"]["rate"] for g in groups}
    conv = {g["steps"]: g["metrics"]["convergence_ssim"]["mean"] for g in groups
            if g["metrics"].get("convergence_ssim", {}).get("mean") is not None}
    if len(conv) >= 2:
        return "convergence (SSIM to the top budget)", {s: 100.0 * v for s, v in conv.items()}
    return None


def propose(summary: list[dict], model: str | None = None) -> dict:
    """{"model", "signal", "policies": [{"name", "steps", "reason"}], "note"}; no policies when the sweep cannot
    tell (a single budget, or nothing rendered)."""
    models = list(dict.fromkeys(g["model"] for g in summary))
    model = model if model in models else (models[0] if models else None)
    groups = [g for g in summary if g["model"] == model and g["renders"]]
    found = _quality(groups)
    if found is None:
        return {"model": model, "signal": None, "policies": [],
                "note": "nothing to propose: render at least two budgets (and review, for the accepted rate)"}
    signal, quality = found
    best_steps = max(quality, key=lambda s: (quality[s], -s))
    best = quality[best_steps]
    secs = {g["steps"]: g["seconds"].get("median") for g in groups}
    proposals = []
    for name, margin in MARGINS.items():
        steps = min(s for s, q in quality.items() if q >= best - margin)
        bigger = [s for s in quality if s > steps]
        gain = max((quality[s] - quality[steps] for s in bigger), default=0.0)
        reason = (f"{signal} {quality[steps]:.0f} at {steps} steps, within {margin:g} points of the best "
                  f"({best:.0f} at {best_steps} steps); a larger budget adds at most {max(gain, 0):.0f} points")
        if secs.get(steps) is not None:
            reason += f"; median {secs[steps]:.2f} s"
            if secs.get(best_steps):
                reason += f" ({secs[steps] / secs[best_steps]:.0%} of the best's time)"
        proposals.append({"name": name, "steps": steps, "reason": reason})
    note = "" if signal == "accepted rate" else (
        f"from convergence: review at least {MIN_REVIEWS} clips per budget (Review) to base this on what you accept")
    return {"model": model, "signal": signal, "policies": proposals, "note": note}


def write(path: Path, proposal: dict, sweep_id: str) -> Path:
    """Write the proposed policies into the user's policies file (created if missing), keeping the rest of it."""
    path = Path(path)
    if not proposal.get("policies"):
        raise StudioError("this sweep proposes no policies to write (see its note)")
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.is_file() else tomlkit.document()
    except (tomlkit.exceptions.ParseError, UnicodeDecodeError, OSError) as exc:
        raise StudioError(f"{path}: cannot read it to update the policies ({exc}); fix or move it first") from None
    if "policies" not in doc:
        doc["policies"] = tomlkit.table(is_super_table=True)
    for p in proposal["policies"]:
        table = doc["policies"].get(p["name"]) or tomlkit.table()
        table["steps"] = int(p["steps"])
        table["description"] = f"From sweep {sweep_id}: {p['reason']}"
        table["source"] = f"sweep:{sweep_id}"
        doc["policies"][p["name"]] = table
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    tmp.replace(path)
    return path
