"""The shape of a job sent to the owner API (ui/owner_api.py), checked before anything reads or queues it.

A job is JSON from another process: a wrong type (``"compare": "abc"``), a key the studio keeps for itself
(``"extend"``, ``"board"`` in a render job: what the dispatcher adds to queued jobs), a structure nested hundreds
deep or a path outside the studio's folders gets one message (a StudioError) here, not a traceback later.

    job_shape.check(route, job)                     # a route of SHAPES ("render", "queue-add", "sweep-run", ...)
    job_shape.check_inputs(route, job, roots)       # after files sent with it are stored: paths stay inside
"""

from __future__ import annotations

from pathlib import Path

from ..engine import confine
from ..errors import StudioError

MAX_DEPTH = 32  # a render job is 3 levels deep, a board job 5: anything far deeper is not a job
RENDER_KEYS = {"request": dict, "preview": int, "compare": list, "policy": str, "gif": bool}
BOARD_KEYS = {"board": dict, "source": str, "stage": str, "export_dir": str}
CANCEL_KEYS = {"id": str}
SWEEP_KEYS = {"name": str, "prompts": list, "mode": str, "budgets": list, "seeds": object, "models": list,
              "frames": int, "height": int, "width": int, "negative_prompt": str}  # sweep_run.checked_spec says more
SWEEP_ID_KEYS = {"id": str, "write": bool}
EXTEND_KEYS = {"source": object, "frames": int, "prompt": str, "negative_prompt": str, "seed": int, "steps": int,
               "model": str, "context_frames": int, "guidance_scale": float, "queue": bool}
SHAPES = {"render": RENDER_KEYS, "queue-add": RENDER_KEYS, "board-run": BOARD_KEYS, "queue-cancel": CANCEL_KEYS,
          "sweep-run": SWEEP_KEYS, "sweep-resume": SWEEP_ID_KEYS, "sweep-report": SWEEP_ID_KEYS,
          "sweep-policies": SWEEP_ID_KEYS, "extend": EXTEND_KEYS}
STAGES = ("preview", "final")
PATH_FIELDS = ("image", "video")


def depth(value) -> int:
    """How deeply lists and dicts nest in ``value`` (iterative: no recursion limit to hit)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:  # past the limit the answer is already known
                todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _type_name(kind: type) -> str:
    return {dict: "an object", list: "a list", int: "a whole number", str: "a string", bool: "true or false",
            float: "a number", object: "a value"}[kind]


def _is(value, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def check(route: str, job) -> None:
    """StudioError naming the first thing wrong with ``job``'s shape for ``route``."""
    if not isinstance(job, dict):
        raise StudioError("the job is a JSON object")
    if depth(job) > MAX_DEPTH:
        raise StudioError(f"the job nests more than {MAX_DEPTH} levels deep")
    keys = SHAPES[route]
    unknown = sorted(set(job) - set(keys))
    if unknown:
        raise StudioError(f"unknown key{'s' if len(unknown) > 1 else ''} in the job: {', '.join(map(repr, unknown))} "
                          f"(a {route} job has {', '.join(keys)})")
    for key, kind in keys.items():
        if job.get(key) is not None and not _is(job[key], kind):
            raise StudioError(f"{key!r} must be {_type_name(kind)}, not {type(job[key]).__name__} "
                              f"{str(job[key])[:40]!r}")
    if isinstance(job.get("compare"), list) and not all(_is(b, int) for b in job["compare"]):
        raise StudioError("'compare' must be a list of whole numbers (step budgets)")
    if job.get("stage") is not None and job["stage"] not in STAGES:
        raise StudioError(f"'stage' must be one of {', '.join(STAGES)}")
    if route in ("render", "queue-add") and not isinstance(job.get("request"), dict):
        raise StudioError("a render job needs a \"request\" object")
    if route == "board-run" and not isinstance(job.get("board"), dict):
        raise StudioError("a board job needs a \"board\" object")
    if route == "extend" and not (isinstance(job.get("source"), (str, dict)) and _is(job.get("frames"), int)):
        raise StudioError("an extend job needs a \"source\" (a history id, or the clip sent as a file) and "
                          "\"frames\" (how many new frames)")


def _inputs(route: str, job: dict):
    """(where, path) for each input file the job names."""
    if route in ("render", "queue-add"):
        yield from (("request", job["request"].get(f), f) for f in PATH_FIELDS)
    elif route == "sweep-run":
        prompts = job.get("prompts")
        for i, prompt in enumerate(prompts if isinstance(prompts, list) else []):
            if isinstance(prompt, dict):
                yield from ((f"prompt {i + 1}", prompt.get(f), f) for f in PATH_FIELDS)
    elif route == "extend":  # a history id, or the clip sent with the job: extend.load_source confines both
        yield from ()
    elif route == "board-run":
        shots = job["board"].get("shots")
        for i, shot in enumerate(shots if isinstance(shots, list) else []):
            if isinstance(shot, dict):
                yield from ((f"shot {i + 1}", shot.get(f), f) for f in PATH_FIELDS)


def check_inputs(route: str, job: dict, roots: list[Path]) -> None:
    """Every input a job names must be a file sent with it (stored under renders/inputs) or one inside the studio's
    folders: a path is never read outside them (the same message whether or not it exists)."""
    for where, value, field in _inputs(route, job):
        if value in (None, ""):
            continue
        if confine.inside(value, roots) is None:
            raise StudioError(f"{where}: {field} {str(value)[:200]!r} was sent as a path, not as the file; the studio "
                              f"reads only files sent with a job or inside its own folders. Check that the file exists "
                              f"and is readable where you ran the command.")
