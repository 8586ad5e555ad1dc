"""The kinds of queued jobs (job_kind.py says what a kind is): render, shot, extension, sweep; ``KINDS`` maps names.

    render     {"request": RenderRequest dict, "preview": STEPS | None, "compare": [B1, ...] | None,
                "policy": NAME | None, "gif": bool, "previews": bool}
               owns: its request, seed included (pinned when queued); each budget: a history row (and a GIF)
    shot       a render job plus {"board": {"board", "name", "shot", "stage", "batch", "revision"}}
               owns: the shot's revision; key ``shot:ID:STAGE:REVISION``; stale when the shot was edited or deleted:
               refused before it runs, and a render that finished anyway stays in History with a note, not placed
    extension  a render job (the V2V continuation) plus {"extend": {"source", "origin", "fps", "plan"}}
               owns: a copy of the source clip under the inputs folder (pinned when queued); each budget: the joined
               clip replaces the continuation's files, or the row is marked failed
    sweep      a render job of one budget plus {"sweep": {"id", "item"}} (sweep_jobs.py)
               owns: its request, seed pinned; key ``sweep:ITEM``; each budget: measured for its sweep

A new kind: subclass JobKind (or RenderJob), give it a ``name``, decorate it with ``@register``.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import replace
from pathlib import Path

from . import continuity, extend, sweep_jobs
from ..engine import media
from ..store.boards import job_key
from .shot_rules import board_store
from ..errors import InvalidRequest, StudioError
from ..engine.events import Result
from .kind import JobKind
from ..engine.request import Plan, RenderRequest

KINDS: dict[str, type[JobKind]] = {}


def register(cls: type[JobKind]) -> type[JobKind]:
    """Add a kind to ``KINDS`` under its ``name`` (the queue's ``kind`` column)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    KINDS[cls.name] = cls
    return cls


def inputs_dir(studio, session: str | None) -> Path:
    """Where a job's own copies of its inputs go (History's re-run and Space mode's janitor know this folder)."""
    return studio.settings.renders_dir / (session or "") / "inputs"


def copy_input(path: str | Path, folder: Path) -> Path:
    """A copy of the file at ``path`` in ``folder``, named by its content (the same file twice is one copy)."""
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    suffix = "".join(ch for ch in path.suffix if ch.isalnum() or ch == ".")[:10].lower()
    copy = folder / f"{digest.hexdigest()[:20]}{suffix}"
    if not copy.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_name(f".{copy.name}.{threading.get_ident()}.part")
        shutil.copyfile(path, tmp)
        tmp.replace(copy)
    return copy



def preview_steps(preview, steps: int) -> int:
    """A refine plan's preview budget: a whole number of steps, fewer than the final budget (else the "preview"
    would cost as much as the render it previews)."""
    if isinstance(preview, bool) or not isinstance(preview, int) or not 1 <= preview < steps:
        hint = (f"1 to {steps - 1} (fewer than --steps, {steps})" if steps > 1 else
                "fewer steps than --steps, which is 1 here: raise --steps or leave out --preview")
        raise InvalidRequest({"preview": f"must be {hint}; got {str(preview)[:20]}"})
    return preview


def check_budgets(job: dict) -> None:
    """A job's ``preview`` (a step count) and ``compare`` (a list of them) are whole numbers: bad input is one
    clear message here, never a TypeError from deep inside (which would be a bug's)."""
    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if job.get("preview") is not None and not whole(job["preview"]):
        raise InvalidRequest({"preview": f"a preview is a step count, not {job['preview']!r}"})
    compare = job.get("compare")
    if compare is not None and not (isinstance(compare, list) and all(whole(b) for b in compare)):
        raise InvalidRequest({"compare": f"compare takes a list of step budgets, not {compare!r}"})


@register
class RenderJob(JobKind):
    """A request and a plan of budgets (single, preview-then-refine, compare)."""

    name = "render"

    def request(self, studio, row: dict, store) -> dict:
        """The request as it runs (a shot that continues another adds its context here)."""
        req = self.data.get("request")
        if not isinstance(req, dict):
            raise StudioError("a render job needs a \"request\" object")
        return req

    def plan(self, studio, row: dict | None = None, store=None):
        """(validated request, plan, notes): the policy first, then the plan's budgets."""
        req = RenderRequest.from_dict(self.request(studio, row or {}, store))
        if self.policy:
            req = studio.policies.get(self.policy).apply(req)
        resolved, notes = studio.engine.validate(req)
        check_budgets(self.data)
        if self.data.get("compare"):
            plan = Plan.compare(self.data["compare"])
        elif self.data.get("preview") is not None:
            plan = Plan.refine(preview_steps(self.data["preview"], resolved.steps), resolved.steps)
        else:
            plan = Plan.single(resolved.steps)
        return resolved, plan, notes

    def pin_seed(self, seed: int) -> None:
        self.data["request"] = dict(self.data["request"], seed=seed)

    def on_result(self, studio, row: dict, event: Result) -> Result:
        if self.data.get("gif"):
            media.write_gif(event.frames, Path(event.video_path).with_suffix(".gif"), event.request.get("fps") or 16)
        return event


@register
class ShotJob(RenderJob):
    """One storyboard shot at one stage, at the revision it was queued for."""

    name = "shot"

    @property
    def info(self) -> dict:
        info = self.data.get("board")
        if not isinstance(info, dict) or not info.get("shot") or info.get("stage") not in ("preview", "final"):
            raise StudioError("a shot job needs a \"board\" object with its shot and stage")
        return info

    @property
    def key(self) -> str:
        return job_key(self.info["shot"], self.info["stage"], self.info.get("revision"))

    @property
    def batch(self) -> str | None:
        return self.info.get("batch")

    def request(self, studio, row: dict, store) -> dict:
        """The shot's request as queued; a shot that continues another takes that shot's render at this stage
        (finished by now: its job, ``row["after"]``, ran first) as context, or fails saying why not."""
        info, boards = self.info, board_store(studio.history)
        board = boards.get(info["board"])  # StudioError if the board was deleted since
        shot = next((s for s in board.shots if s.id == info["shot"]), None)
        if shot is None:
            raise StudioError(f"A shot of board '{board.name}' was deleted while its render waited: not rendered.")
        if shot.revision != int(info.get("revision") or 0):
            raise StudioError(f"Shot {shot.position + 1} was edited while its render waited: not rendered (run the "
                              "stage again for the shot as it is now).")
        req = super().request(studio, row, store)
        prev = continuity.previous(board, shot)
        if not shot.continues or prev is None:
            return req
        after = store.get(row["after"]) if row.get("after") else None
        failed = {prev.id: after.get("error") or after["state"]} if after and after["state"] != "done" else {}
        return continuity.continuing_request(studio.engine, board, shot, info["stage"], RenderRequest.from_dict(req),
                                             inputs_dir(studio, row.get("session")), failed).to_dict()

    def _place(self, studio, rid: str) -> str | None:
        info = self.info
        return board_store(studio.history).place_render(info["shot"], info["stage"], rid, info.get("revision") or 0)

    def on_result(self, studio, row: dict, event: Result) -> Result:
        event = super().on_result(studio, row, event)
        why = self._place(studio, event.record_id)
        if why is None:
            return event
        note = f"Not placed on the storyboard: {why}."
        studio.history.set_note(event.record_id, note)
        return replace(event, notes=list(event.notes) + [note])

    def on_kept(self, studio, row: dict, budget_row: dict) -> None:
        """A render an earlier run finished: placed on the shot if it has none at this stage (a crash between the
        row and the placing)."""
        info = self.info
        try:
            shot = board_store(studio.history).get_shot(info["shot"])
        except StudioError:
            return
        if getattr(shot, f"{info['stage']}_id") is None:
            self._place(studio, budget_row["id"])


@register
class ExtensionJob(RenderJob):
    """A clip continued by N frames and joined: its request is the V2V continuation of its own copy of the clip."""

    name = "extension"

    @property
    def info(self) -> dict:
        info = self.data.get("extend")
        if not isinstance(info, dict) or not isinstance(info.get("plan"), dict):
            raise StudioError("an extension job needs an \"extend\" object with its plan")
        return info

    def pin(self, studio, session: str | None) -> None:
        """The source clip is copied into this job's inputs: deleting or changing the original changes nothing."""
        info = self.info
        if info.get("owned"):
            return
        path = info.get("path") or (self.data.get("request") or {}).get("video")
        if not path or not Path(path).is_file():
            raise StudioError(f"Nothing to extend: the clip {info.get('source')!r} is gone.")
        copy = str(copy_input(path, inputs_dir(studio, session)))
        self.data["extend"] = dict(info, origin=info.get("source"), source=copy, path=copy, owned=True)
        self.data["request"] = dict(self.data.get("request") or {}, video=copy)

    def on_result(self, studio, row: dict, event: Result) -> Result:
        """The continuation becomes the joined clip (StudioError: its row failed, and the job)."""
        return super().on_result(studio, row, extend.finish_queued(studio, self.info, event))

    def on_kept(self, studio, row: dict, budget_row: dict) -> None:
        extend.rejoin_row(studio, self.info, budget_row)


@register
class SweepJob(RenderJob):
    """One render of a sweep (a prompt, seed, model and budget; sweep_jobs.render_job), measured for its sweep
    as it finishes. Its sweep is its batch: the queue caps do not count a sweep's own renders."""

    name = "sweep"

    @property
    def key(self) -> str | None:  # one queued or running job per sweep item
        item = (self.data.get("sweep") or {}).get("item")
        return f"sweep:{item}" if item else None

    @property
    def batch(self) -> str | None:
        return (self.data.get("sweep") or {}).get("id")

    def on_result(self, studio, row: dict, event: Result) -> Result:
        event = super().on_result(studio, row, event)
        sweep_jobs.on_result(studio, self.data, event)
        return event
