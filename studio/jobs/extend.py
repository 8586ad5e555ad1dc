"""Extend a finished render by N frames: one joined clip, recorded as a child of the original.

An extension is a V2V render whose context is the original's LAST frames (``context_from="end"``): the model
renders context + N new frames, and the joined clip is the original's frames (as decoded from its mp4, untouched)
followed by the N new ones. The context frames the model re-renders are dropped, so no frame repeats at the join.

Frame arithmetic (``plan_extension``): a model makes tf*n + 1 frames (tf: its VAE's temporal factor) and its
context is tf*m + 1 frames, so the new part is a multiple of tf; N is snapped to the nearest one. For a causal
(FAR) model the context must also fill whole chunks (``chunks.fit_context``).

The engine's row for the V2V render becomes the extension's row: its ``parent_id`` (from ``extends``) names the
original, its file is replaced by the joined clip and its frame count is the joined length.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from ..engine import chunks, confine, media, restore
from ..errors import InvalidRequest, OutsideFolders, RenderCancelled, StudioError
from ..engine.events import Cancelled, Failed, Result
from ..engine.request import MAX_FRAMES, RenderRequest


@dataclass(frozen=True)
class ExtensionPlan:
    source_frames: int  # frames in the original clip
    asked: int  # new frames asked for
    new_frames: int  # new frames the model will make (``asked`` snapped)
    context: int  # the original's last frames given to the model as context

    @property
    def render_frames(self) -> int:
        return self.context + self.new_frames

    @property
    def joined_frames(self) -> int:
        return self.source_frames + self.new_frames

    @property
    def snapped(self) -> bool:
        return self.asked != self.new_frames

    def note(self, temporal_factor: int) -> str | None:
        if not self.snapped:
            return None
        return (f"frames {self.asked} -> {self.new_frames}: this model adds frames in steps of {temporal_factor}")


def snap_new_frames(asked: int, temporal_factor: int) -> int:
    """The multiple of ``temporal_factor`` nearest ``asked`` (at least one), within the engine's frame limit."""
    steps = max(1, round(int(asked) / temporal_factor))
    return min(steps * temporal_factor, (MAX_FRAMES - 1) // temporal_factor * temporal_factor)


def plan_extension(source_frames: int, asked: int, temporal_factor: int = 4,
                   template: list[int] | None = None, max_context: int | None = None) -> ExtensionPlan:
    """Which frames are context and how many to generate. The context is the longest valid one up to
    ``max_context`` (default: the whole clip) that the clip has; ``template`` is a causal model's chunk template."""
    if asked < 1:
        raise InvalidRequest({"frames": f"extend by at least 1 frame, got {asked}"})
    new = snap_new_frames(asked, temporal_factor)
    limit = source_frames if max_context is None else min(source_frames, max_context)
    for context in range(min(limit, MAX_FRAMES - new), 0, -1):
        if (context - 1) % temporal_factor:
            continue
        total = context + new
        if chunks.fit_context(context, total, temporal_factor, template, wanted=context) == context:
            return ExtensionPlan(source_frames, int(asked), new, context)
    raise InvalidRequest({"extend": f"a {source_frames}-frame clip gives this model no context it can use"})


INHERITED = ("prompt", "negative_prompt", "model", "steps")  # what an extension takes from an unknown file's metadata


@dataclass
class Source:
    """The clip to extend: its file, its frames decoded once, and what it was rendered with when known."""

    path: Path
    frames: np.ndarray  # uint8 (T, H, W, 3), the reference the joined clip keeps unchanged
    fps: int
    row: dict | None  # its history row (None for a file the history does not know)
    meta: dict = field(default_factory=dict)  # the file's studio metadata (a file from another data folder)

    @property
    def request(self) -> dict:
        """What the original was rendered with: its history row's request, else what its file's metadata says."""
        recorded = (self.row or {}).get("request")
        return recorded or {k: self.meta[k] for k in INHERITED if self.meta.get(k) not in (None, "")}


def load_source(history, ref: str, allowed: list[Path] | None = None) -> Source:
    """``ref``: a history id of a finished render, or an mp4 path (linked to its row when its metadata names one).
    ``allowed``: the folders a file may come from when ``ref`` comes from outside (the UI, the owner API:
    ``confine.input_roots``); a refusal then says nothing about whether the file exists. None: the CLI's own user."""
    ref = str(ref).strip()
    row = history.get(ref) if ref else None
    meta: dict = {}
    if row is not None:
        path = _row_video(row, ref, allowed)
    elif allowed is not None:
        path = confine.inside(ref, allowed)
        if path is None:
            raise OutsideFolders(f"Nothing to extend: {ref[:200]!r} is not a finished render in History or a video "
                                 f"in the studio's folders.")
    elif ref and Path(ref).is_file():
        path = Path(ref)
    else:
        raise StudioError(f"Nothing to extend: {ref!r} is neither a history id nor a video file.")
    if row is None:
        meta = media.read_metadata(path)
        rid = meta.get("id")
        row = history.get(rid) if isinstance(rid, str) else None
    frames, fps = media.read_video(path)
    meta = meta if row is None and meta.get("studio") == restore.MARK else {}
    return Source(path, frames, int((row or {}).get("fps") or round(fps)), row, meta)


def _row_video(row: dict, ref: str, allowed: list[Path] | None) -> Path:
    """A finished row's video (inside ``allowed`` when given: a row's path is data, not a promise)."""
    video = row.get("video_path")
    path = (confine.inside(video, allowed) if allowed is not None else
            (Path(video) if video and Path(video).is_file() else None))
    if row["status"] != "ok" or path is None:
        raise StudioError(f"Render {ref} has no finished video to extend.")
    return path


def extension_request(engine, source: Source, new_frames: int, *, prompt: str | None = None,
                      negative_prompt: str | None = None, seed: int | None = None, steps: int | None = None,
                      model: str | None = None, max_context: int | None = None, loras=None,
                      guidance_scale: float | None = None) -> tuple[RenderRequest, ExtensionPlan]:
    """The V2V request that continues ``source`` and its plan. Unset fields (None) default to the original's."""
    old = source.request
    _, height, width, _ = source.frames.shape
    if height % 16 or width % 16:
        raise InvalidRequest({"extend": f"the clip is {width}x{height}; extending needs sides that are multiples of 16"})
    probe = RenderRequest(prompt="-", mode="v2v", model=model or old.get("model"))
    spec = engine.spec_for(probe)  # a clear error when the model does not do V2V
    default_context = spec.frames // 2 + 1
    plan = plan_extension(len(source.frames), int(new_frames), spec.temporal_factor, engine.chunk_template(spec),
                          max_context or default_context)
    req = RenderRequest(
        prompt=prompt if prompt and prompt.strip() else old.get("prompt", ""),
        negative_prompt=negative_prompt if negative_prompt is not None else old.get("negative_prompt", ""),
        mode="v2v", video=str(source.path), seed=seed, steps=steps or old.get("steps") or 4, height=height,
        width=width, frames=plan.render_frames, fps=source.fps, model=spec.id, context_frames=plan.context,
        context_from="end", extends=source.row["id"] if source.row else None,
        loras=tuple((str(f), float(w)) for f, w in (old.get("loras") or () if loras is None else loras)),
        guidance_scale=float(guidance_scale if guidance_scale is not None else old.get("guidance_scale") or 1.0))
    return req, plan


def join(source: Source, rendered: np.ndarray, plan: ExtensionPlan) -> np.ndarray:
    """The original frames, then the rendered frames after the context (which re-render the original's last ones)."""
    if len(rendered) != plan.render_frames:
        raise StudioError(f"The continuation has {len(rendered)} frames; {plan.render_frames} were planned.")
    return np.concatenate([source.frames, media.to_uint8(rendered)[plan.context:]])


def _rewrite(engine, result: Result, source: Source, plan: ExtensionPlan) -> Result:
    """Replace the V2V render's files by the joined clip's, and its row's frame count by the joined length."""
    started = time.perf_counter()
    joined = join(source, result.frames, plan)
    metadata = media.read_metadata(result.video_path)
    metadata.update(joined_frames=plan.joined_frames, source_frames=plan.source_frames, new_frames=plan.new_frames)
    media.write_video(joined, result.video_path, source.fps, metadata)
    media.write_thumbnail(joined, result.thumb_path, metadata=metadata)  # restore reads the PNG's metadata too
    engine.history.set_frames(result.record_id, plan.joined_frames)
    timings = dict(result.timings, join=round(time.perf_counter() - started, 4))
    return replace(result, frames=joined, timings=timings)


def finish(engine, result: Result, source: Source, plan: ExtensionPlan) -> Result:
    """The continuation's Result with the joined clip's files and frames; its row is marked failed (and
    StudioError raised) if joining fails."""
    try:
        return _rewrite(engine, result, source, plan)
    except StudioError as exc:
        engine.history.finish(result.record_id, "failed", error=f"Joining the extension failed: {exc}")
        raise
    except Exception as exc:  # the disk, a codec: the row must not stay "ok" with the un-joined file
        why = f"Joining the extension failed: {type(exc).__name__}: {exc}"
        engine.history.finish(result.record_id, "failed", error=why)
        raise StudioError(why) from exc


def extend(engine, source: Source, req: RenderRequest, plan: ExtensionPlan, cancel=None, **render_kwargs) -> Iterator:
    """Render the continuation here, outside the queue; yield the engine's events, with the Result's files and
    frames the joined clip's."""
    for event in engine.render(req, cancel=cancel, **render_kwargs):
        yield finish(engine, event, source, plan) if isinstance(event, Result) else event


def job(source: Source, req: RenderRequest, plan: ExtensionPlan) -> dict:
    """The extension as an ``extension`` job for the studio's queue (job_kinds.ExtensionJob): when queued it copies
    the clip into its own inputs; the dispatcher joins the clip when it finishes, so an extension queued before a
    restart still ends as one joined clip, whatever happened to the original meanwhile."""
    ref = source.row["id"] if source.row else str(source.path)
    return {"kind": "extension", "request": req.to_dict(),
            "extend": {"source": ref, "path": str(source.path), "fps": source.fps, "plan": asdict(plan)}}


def queued_source(history, info: dict) -> Source:
    """The clip a queued extension continues: its own copy (``owned``), else (a job queued before copies were
    made) the original, looked up again."""
    if not info.get("owned"):
        return load_source(history, info["source"])
    path = Path(info["source"])
    frames, fps = media.read_video(path)
    return Source(path, frames, int(info.get("fps") or round(fps)), None)


def finish_queued(studio, info: dict, result: Result) -> Result:
    """``finish`` for a queued extension job's Result (``info``: the job's "extend" entry); any failure, reading the
    source included, marks its row failed (StudioError)."""
    try:
        source, plan = queued_source(studio.history, info), ExtensionPlan(**info["plan"])
    except Exception as exc:  # the copy unreadable, an old job's original deleted, a bad plan
        why = f"Joining the extension failed: {exc if isinstance(exc, StudioError) else f'{type(exc).__name__}: {exc}'}"
        studio.history.finish(result.record_id, "failed", error=why)
        raise StudioError(why) from exc
    return finish(studio.engine, result, source, plan)


def rejoin_row(studio, info: dict, row: dict) -> None:
    """A continuation an earlier run of the job left ``ok`` but not joined (it stopped between the row and the
    join): join it now. Its file says which: the continuation's length, or already the joined one."""
    plan = ExtensionPlan(**info["plan"])
    frames, _ = media.read_video(row["video_path"])
    if len(frames) == plan.joined_frames:
        if row.get("frames") != plan.joined_frames:
            studio.history.set_frames(row["id"], plan.joined_frames)
        return
    result = Result(row.get("budget_index") or 0, row["steps"], "single", row["id"], row["video_path"],
                    row["thumb_path"], row.get("timings") or {}, row.get("request") or {}, frames)
    finish_queued(studio, info, result)


def is_extension(row: dict) -> bool:
    """True for a history row that is an extension: a continuation of the end of a clip, joined to it (its file is
    longer than what the model rendered; a storyboard shot that continues another is not joined)."""
    req = row.get("request") or {}
    if not isinstance(req, dict) or req.get("context_from") != "end" or not (req.get("extends") or row.get("parent_id")):
        return False
    return int(row.get("frames") or 0) > int(req.get("frames") or 0)


def rerun(history, row: dict) -> tuple[Source, RenderRequest, ExtensionPlan]:
    """Re-do the extension recorded as ``row``: the same source (the job's copy, else the original render), new
    frames, prompt, seed and steps. StudioError when the row is not an extension or its source is gone."""
    req = row.get("request") or {}
    if not is_extension(row):
        raise StudioError(f"Render {row.get('id')} is not an extension.")
    video = req.get("video")
    source = load_source(history, video if video and Path(video).is_file() else req.get("extends") or row["parent_id"])
    context = int(req["context_frames"])
    new = int(req["frames"]) - context
    again = replace(RenderRequest.from_dict(req), video=str(source.path), steps=int(row.get("steps") or req["steps"]))
    return source, again, ExtensionPlan(len(source.frames), new, new, context)


def extend_once(engine, ref: str, new_frames: int, **fields) -> tuple[Result, ExtensionPlan]:
    """Extend the render ``ref`` (history id or mp4) and return the joined Result; raise StudioError on failure."""
    source = load_source(engine.history, ref)
    req, plan = extension_request(engine, source, new_frames, **fields)
    results = [e for e in _raising(extend(engine, source, req, plan)) if isinstance(e, Result)]
    return results[-1], plan


def _raising(events: Iterator) -> Iterator:
    for event in events:
        if isinstance(event, Failed):
            raise StudioError(event.message)
        if isinstance(event, Cancelled):
            raise RenderCancelled()
        yield event
