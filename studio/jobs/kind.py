"""What a queued job is: a kind (a small class, like an InvokeAI invocation) and its data, stored as versioned JSON.

The queue stores a job's kind in the ``jobs.kind`` column and its data (``JobKind.to_json()``, with ``"v"``) in
``jobs.job``; the dispatcher rebuilds it with ``load(row, kinds)`` and sees only this interface:

    pin(studio, session)              when queued: copy or fix what the job owns (an extension's source frames)
    key                               one queued or running job per key (None: no such rule)
    plan(studio, row, store)          when claimed: (validated RenderRequest, Plan, notes); StudioError says why not
    policy, previews, batch           how the engine runs it (budget policy, per-step previews, the batch it is of)
    on_result(studio, row, Result)    what a finished budget brings besides its row; returns the Result to report
    on_kept(studio, row, history_row) a budget a previous run of this job finished (a re-run keeps it, never redoes it)

A re-run (after a crash, a stop or a restart) renders only the budgets without an ``ok`` row, with the job's pinned
seed; rows left unfinished by the job are taken back (``HistoryStore.start``). A kind says when it is stale (its
shot changed or vanished) in ``plan`` (refuse) and ``on_result`` (keep the render, do not place it).
Register a kind with ``@register`` in job_kinds.py (name -> class); standard library only here.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import StudioError

VERSION = 1  # of a job's JSON


class JobKind:
    """A job of one kind: its data (a dict, JSON-ready) and what it does at each point of its life."""

    name: ClassVar[str] = ""

    def __init__(self, data: dict):
        if not isinstance(data, dict):
            raise StudioError(f"a {self.name or 'queued'} job is a JSON object, not {type(data).__name__}")
        self.data = dict(data)

    def to_json(self) -> dict:
        return dict(self.data, v=VERSION)

    # ---- when queued ---------------------------------------------------------------------
    def pin(self, studio, session: str | None) -> None:
        """Copy or fix what the job owns, so that later changes elsewhere change nothing (default: nothing)."""

    @property
    def key(self) -> str | None:
        return None

    # ---- how it runs ------------------------------------------------------------------------
    @property
    def policy(self) -> str | None:
        return self.data.get("policy")

    @property
    def previews(self) -> bool:
        return bool(self.data.get("previews"))

    @property
    def batch(self) -> str | None:
        return None

    def plan(self, studio, row: dict, store):
        raise NotImplementedError

    # ---- what it does with each budget ----------------------------------------------------------
    def on_result(self, studio, row: dict, event):
        return event

    def on_kept(self, studio, row: dict, budget_row: dict) -> None:
        """A budget an earlier run finished ``ok`` (its row, file and star stay as they are)."""


def upgrade(data: dict) -> dict:
    """A job's JSON as this version reads it (an untyped dict queued before kinds existed reads as version 1)."""
    if not isinstance(data, dict):
        raise StudioError("a queued job is a JSON object")
    version = data.get("v", 1)
    if version != VERSION:
        raise StudioError(f"this studio reads job version {VERSION}, not {version!r}: update the studio")
    return data


def guess_kind(data: dict) -> str:
    """The kind of an untyped job dict (sent by an older client, or queued before kinds existed)."""
    if isinstance(data, dict) and data.get("board"):
        return "shot"
    if isinstance(data, dict) and data.get("extend"):
        return "extension"
    if isinstance(data, dict) and data.get("sweep"):
        return "sweep"
    return "render"


def load(row: dict, kinds: dict[str, type[JobKind]]) -> JobKind:
    """The typed job of a queue row (``kind`` column, ``job`` JSON)."""
    name = row.get("kind") or guess_kind(row.get("job"))
    cls = kinds.get(name)
    if cls is None:
        raise StudioError(f"job {row.get('id')}: unknown kind {name!r} (this studio runs {', '.join(sorted(kinds))})")
    return cls(upgrade(row.get("job")))


def typed(job, kinds: dict[str, type[JobKind]]) -> JobKind:
    """A job as given to the queue: a JobKind already, or an untyped dict whose keys say its kind."""
    if isinstance(job, JobKind):
        return job
    if not isinstance(job, dict):
        raise StudioError(f"a job is a JSON object, not {type(job).__name__}")
    name = job.get("kind") if isinstance(job.get("kind"), str) else guess_kind(job)
    if name not in kinds:
        raise StudioError(f"unknown job kind {name!r} (one of {', '.join(sorted(kinds))})")
    return kinds[name](upgrade({k: v for k, v in job.items() if k != "kind"}))
