"""A sweep at work: check its spec, make its record, queue and follow its renders (through sweep_jobs.py, the only
module that knows their job shape), then its report and exports. Yields JSON-ready dicts like jobs.py, so the CLI
prints the same whether the owning studio or this process runs it:

    sweep (id, items, done, todo) -> render (done, total, item, prompt_index, seed, model, steps, seconds) |
    render_failed (item, steps, message) ... -> report (the whole report: sweep_report + exports) | error (message)

A spec (what the CLI and the tab send): {"prompts": [text | {"prompt", "image"?, "video"?}], "mode", "budgets",
"seeds": N | [seed, ...], "models": [id, ...], "name"?, "frames"?, "height"?, "width"?, "negative_prompt"?}.
"""

from __future__ import annotations

import threading
from typing import Iterator

from . import sweep_export, sweep_jobs, sweep_policies, sweep_report
from ..errors import InvalidRequest, StudioError
from ..models.registry import MODES
from ..engine import clip_score
from ..engine.request import MAX_STEPS, MIN_STEPS
from ..store.sweeps import SweepStore

DEFAULT_BUDGETS = (1, 2, 4, 8, 12, 16, 32)
MAX_PROMPTS, MAX_SEEDS, MAX_BUDGETS, MAX_MODELS, MAX_ITEMS = 200, 16, 16, 4, 4000


def _int_list(value, name: str, lo: int, hi: int) -> list[int]:
    values = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise InvalidRequest({name: f"each must be a whole number {lo}-{hi}, got {str(v)[:20]!r}"})
        out.append(v)
    return out


def _prompts(raw, mode: str) -> list[dict]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PROMPTS:
        raise InvalidRequest({"prompts": f"give 1 to {MAX_PROMPTS} prompts"})
    prompts = []
    for n, p in enumerate(raw, 1):
        p = {"prompt": p} if isinstance(p, str) else p
        if not isinstance(p, dict) or not isinstance(p.get("prompt"), str) or not p["prompt"].strip():
            raise InvalidRequest({"prompts": f"prompt {n} is empty or not text"})
        entry = {"prompt": p["prompt"].strip()}
        need = {"i2v": "image", "v2v": "video"}.get(mode)
        if need and not p.get(need):
            raise InvalidRequest({"prompts": f"prompt {n} needs an {need} for {mode}"})
        if need:
            entry[need] = str(p[need])
        prompts.append(entry)
    return prompts


def _seeds(raw) -> list[int]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 1 <= raw <= MAX_SEEDS:
            raise InvalidRequest({"seeds": f"seeds per prompt: 1-{MAX_SEEDS}, got {raw}"})
        return list(range(raw))
    seeds = _int_list(raw, "seeds", 0, 2**32 - 1)
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise InvalidRequest({"seeds": f"give 1-{MAX_SEEDS} seeds"})
    return list(dict.fromkeys(seeds))


def check_spec(studio, raw: dict) -> dict:
    """The spec, checked: every field, every model (it serves the mode), and one request per prompt and model
    validated as a render would be (inputs exist, sizes fit). InvalidRequest / StudioError before anything runs."""
    if studio.settings.space:
        raise StudioError("sweeps are not offered on a shared Space: run one on your own machine")
    if not isinstance(raw, dict):
        raise InvalidRequest({"sweep": "a sweep is a JSON object"})
    mode = raw.get("mode") or "t2v"
    if mode not in MODES:
        raise InvalidRequest({"mode": f"must be one of {', '.join(MODES)}"})
    budgets = sorted(set(_int_list(raw.get("budgets") or list(DEFAULT_BUDGETS), "budgets", MIN_STEPS, MAX_STEPS)))
    if len(budgets) > MAX_BUDGETS:
        raise InvalidRequest({"budgets": f"at most {MAX_BUDGETS} budgets"})
    models = raw.get("models") or [studio.settings.default_model]
    if not isinstance(models, list) or len(models) > MAX_MODELS or not all(isinstance(m, str) for m in models):
        raise InvalidRequest({"models": f"give 1-{MAX_MODELS} model ids"})
    spec = {"name": str(raw.get("name") or "")[:120], "mode": mode, "prompts": _prompts(raw.get("prompts"), mode),
            "budgets": budgets, "seeds": _seeds(raw.get("seeds", 2)), "models": []}
    for key in ("frames", "height", "width", "negative_prompt"):
        if raw.get(key) is not None:
            spec[key] = raw[key]
    if len(spec["prompts"]) * len(spec["seeds"]) * len(models) * len(budgets) > MAX_ITEMS:
        raise InvalidRequest({"sweep": f"more than {MAX_ITEMS} renders: fewer prompts, seeds, models or budgets"})
    for model in models:
        spec["models"].append(_check_model(studio, spec, model))
    return spec


def _check_model(studio, spec: dict, model: str) -> str:
    from ..engine.request import RenderRequest

    for n, prompt in enumerate(spec["prompts"]):
        job = sweep_jobs.render_job(spec, {"prompt_index": n, "seed": 0, "steps": spec["budgets"][-1],
                                           "model": model, "sweep_id": "", "id": ""})
        req, _ = studio.engine.validate(RenderRequest.from_dict(job["request"]))
    return req.model


# ---- running --------------------------------------------------------------------------------------------------
def run_events(studio, raw: dict, cancel: threading.Event | None = None, source: str = "cli") -> Iterator[dict]:
    """Check and record a new sweep, render it, report it. Bad input is one ``error`` event."""
    try:
        spec = check_spec(studio, raw)
        sid = SweepStore(studio.history).create(spec, source=source)
    except (StudioError, TypeError) as exc:
        yield {"type": "error", "message": str(exc)}
        return
    yield from _follow(studio, sid, cancel)


def resume_events(studio, sid: str, cancel: threading.Event | None = None) -> Iterator[dict]:
    """Render what a sweep still lacks (what finished is kept), then report it."""
    try:
        SweepStore(studio.history).get(sid)
    except StudioError as exc:
        yield {"type": "error", "message": str(exc)}
        return
    yield from _follow(studio, sid, cancel)


def _follow(studio, sid: str, cancel) -> Iterator[dict]:
    from .dispatcher import JobStream
    from ..engine.events import Cancelled, Failed, Result

    store = SweepStore(studio.history)
    store.set_status(sid, "running")
    stream = JobStream(studio.dispatcher(), cancel, cancel_on_close=True)
    try:
        followed = sweep_jobs.queue(studio, sid, stream)
    except BaseException:
        stream.abandon()
        raise
    total = len(store.items(sid))
    done = total - len(followed)
    yield {"type": "sweep", "id": sid, "items": total, "done": done, "todo": len(followed)}
    for jid, event in stream:
        item = followed.get(jid) or {}
        if isinstance(event, Result):
            done += 1
            yield {"type": "render", "done": done, "total": total, "item": item.get("id"),
                   "prompt_index": item.get("prompt_index"), "seed": item.get("seed"), "model": item.get("model"),
                   "steps": event.steps, "seconds": event.timings.get("total")}
        elif isinstance(event, (Failed, Cancelled)):
            yield {"type": "render_failed", "item": item.get("id"), "steps": item.get("steps"),
                   "message": event.message}
    rendered = sum(1 for i in store.items(sid) if i.get("render_id"))
    cancelled = cancel is not None and cancel.is_set()
    store.set_status(sid, "done" if rendered == total else "cancelled" if cancelled else "incomplete")
    yield {"type": "report", **report(studio, sid)}


# ---- the report -----------------------------------------------------------------------------------------------
def _off(studio, spec: dict, items: list[dict]) -> dict:
    off = {}
    if not any("clip_score" in (i.get("metrics") or {}) for i in items):
        off["clip_score"] = clip_score.why_off() or ("off: a CLIP model is in the hub cache now, but no render of "
                                                     "this sweep was measured with it")
    if not any(k.startswith("judge_") for i in items for k in (i.get("metrics") or {})):
        off["judge"] = ("off: the judge knows only the embedded shapes models and prompts of the form 'a red "
                        "circle moving right on a black background'")
    if not any((i.get("timings") or {}).get("peak_memory_bytes") for i in items):
        off["peak_memory"] = "not measured: the renders ran on a CPU (measured on CUDA only)"
    return off


def report(studio, sid: str, export: bool = True) -> dict:
    """The sweep's report (sweep_report.py), its policy proposal and, with ``export``, its exports' paths."""
    store = SweepStore(studio.history)
    sweep = store.get(sid)
    if hasattr(studio, "engine"):  # a studio, not the history alone (`sweep report` beside no studio)
        sweep_jobs.measure_missing(studio, sid)
    items = store.items(sid)
    sweep_report.add_convergence(items)
    summary = sweep_report.summarise(items)
    counts = {"items": len(items), "rendered": sum(1 for i in items if i.get("render_status") == "ok"),
              "waiting": sum(1 for i in items if not i.get("render_id") and i.get("job_state") in ("queued", "running")),
              "reviewed": sum(1 for i in items if i.get("review") is not None)}
    status = sweep["status"]
    if status == "running" and not counts["waiting"]:  # its follower went away: say what it came to
        status = "done" if counts["rendered"] == counts["items"] else "incomplete"
    out = {"id": sid, "name": sweep["name"], "status": status, "created_at": sweep["created_at"],
           "spec": sweep["spec"], "counts": counts, "summary": summary,
           "cliffs": sweep_report.cliffs(items, summary), "off": _off(studio, sweep["spec"], items),
           "policies": sweep_policies.propose(summary)}
    if export:
        out["exports"] = sweep_export.write_exports(sweep_jobs.sweep_folder(studio, sid), out, items)
    return out


def policies(studio, sid: str, write: bool = False, model: str | None = None) -> dict:
    """{"id", "proposal", "written"}: the policies a sweep proposes; written to the user's policies.toml (and in
    force in this studio at once) only with ``write``."""
    summary = report(studio, sid, export=False)["summary"]
    proposal = sweep_policies.propose(summary, model)
    written = None
    if write:
        written = str(sweep_policies.write(studio.settings.user_policies_file, proposal, sid))
        if hasattr(studio, "policies"):
            from ..engine.policy import Policies

            studio.policies = Policies.load(studio.settings.user_policies_file)
            studio.engine.policies = studio.policies
    return {"id": sid, "proposal": proposal, "written": written}
