"""The studio's public API, made for ``gradio_client`` callers (scripts, notebooks, other Spaces, agents).

    from gradio_client import Client
    video, info = Client(url).predict("a red circle moving left on a black background", api_name="/generate")

Five endpoints with plain names and typed parameters (``gr.api``: the signature is the API page): ``/generate``,
``/compare``, ``/extend``, ``/history`` and ``/models``. They follow the UI's rules: every render is a job in the
studio's queue (its caps apply), Space mode keeps each caller's renders private to its client session, and files
go in and out only through the studio's folders. The UI's own handlers are hidden from the API page
(``hide_ui_handlers``); see docs/api.md.

For whoever adds a tab: nothing to do. ``build_app`` calls ``register`` then ``hide_ui_handlers`` last, and every
listener that is not registered here becomes "undocumented" (the page still calls it; ``view_api()`` omits it),
unless it was made "private".
"""

from __future__ import annotations

import functools
import inspect
import time
import typing
from typing import Iterator, Literal

import gradio as gr

from ..engine import lora
from ..errors import InvalidRequest, StudioError
from ..store.history import Query
from ..engine.render import Plan, RenderRequest
from ..jobs import extend as extension
from ..jobs import following
from . import spacemode
from .public_api_io import (Caller, Compared, FileData, HistoryEntry, Rendered, api_error, file_out, history_entry,
                            parse_loras, rendered, results, uploaded)
from .serving import RENDER_QUEUE

PUBLIC = "_studio_public"  # set on the BlockFunction of each public endpoint
HIDDEN = "undocumented"  # what the UI's handlers become: callable by the page, not listed by view_api()
MAX_HISTORY = 100
Mode = Literal["t2v", "i2v", "v2v"]


# ---- the endpoints -----------------------------------------------------------------------------------
class PublicApi:
    """The endpoints, as methods over an open Studio. Each docstring is its description on the API page."""

    def __init__(self, studio):
        self.studio = studio
        self.caller = Caller(studio)

    def generate(self, prompt: str, mode: Mode = "t2v", image: FileData | None = None,
                 video: FileData | None = None, steps: int = 4, preview_steps: int = 0, seed: int | None = None,
                 width: int | None = None, height: int | None = None, frames: int | None = None,
                 model: str | None = None, loras: list[str] | None = None,
                 request: gr.Request = None) -> Iterator[tuple[FileData, Rendered]]:
        """Render a video and return (mp4 file, what was rendered). With preview_steps > 0 a quick preview at that
        many steps comes first, then the final video (same seed): submit() sees both, predict() returns the final.

        Parameters:
            prompt: what happens in the video
            mode: t2v (text), i2v (first frame from `image`), v2v (continue `video`)
            image: i2v: the first frame, sent with handle_file(path)
            video: v2v: the clip to continue, sent with handle_file(path)
            steps: step budget of the video (1-128; more steps, more detail)
            preview_steps: a quick preview at this many steps first; 0 for none
            seed: None for a random one (the JSON says which)
            width: None for the model's native width
            height: None for the model's native height
            frames: None for the model's native length
            model: a model id from /models; None for the studio's default
            loras: LoRA files by name with a strength, e.g. ["style:0.8"]
        """
        started = time.perf_counter()
        sid = self.caller.session(request)
        try:
            req = RenderRequest(prompt=prompt or "", mode=mode or "t2v", image=uploaded(image, "image"),
                                video=uploaded(video, "video"), seed=seed, steps=int(steps), width=width,
                                height=height, frames=frames, model=model or None, loras=parse_loras(loras))
            req, _ = self.studio.engine.validate(req)
            plan = Plan.refine(int(preview_steps), req.steps) if preview_steps else Plan.single(req.steps)
            plan.check()
            events = spacemode.render_events(self.studio, req, plan, None, sid, False, source="api")
            for r, elapsed in results(events, plan, started):
                yield file_out(self.studio, r.video_path), rendered(self.studio, r, elapsed)
        except StudioError as exc:
            raise api_error(exc) from None

    def compare(self, prompt: str, budgets: list[int] | None = None, seed: int | None = None,
                model: str | None = None,
                request: gr.Request = None) -> tuple[list[FileData], Compared]:
        """Render one prompt and seed at several step budgets (text to video) and return the mp4 files, lowest
        budget first, with the seconds each took.

        Parameters:
            prompt: what happens in the video
            budgets: 2 to 8 step budgets; None for [2, 4, 8]
            seed: None for a random one (the JSON says which)
            model: a model id from /models; None for the studio's default
        """
        started = time.perf_counter()
        try:
            chosen = sorted({int(b) for b in (budgets or [2, 4, 8])})
            if len(chosen) < 2:
                raise InvalidRequest({"budgets": "give at least two different step budgets"})
            req, notes = self.studio.engine.validate(RenderRequest(prompt=prompt or "", seed=seed, steps=chosen[-1],
                                                                   model=model or None))
            plan = Plan.compare(chosen)
            plan.check()
            events = spacemode.render_events(self.studio, req, plan, None, self.caller.session(request), False,
                                              source="api")
            done = list(results(events, plan, started))
            files = [file_out(self.studio, r.video_path) for r, _ in done]
        except StudioError as exc:
            raise api_error(exc) from None
        info = [rendered(self.studio, r, t) for r, t in done]
        return files, {"seed": int(req.seed), "model": req.model or "",
                       "budgets": [{"steps": i["steps"], "seconds": i["seconds"], "history_id": i["history_id"]}
                                   for i in info],
                       "notes": sorted({n for i in info for n in i["notes"]} | set(notes))}

    def extend(self, history_id: str | None = None, clip: FileData | None = None, frames: int = 8,
               prompt: str | None = None, steps: int | None = None,
               request: gr.Request = None) -> tuple[FileData, Rendered]:
        """Continue a video by some frames and return the joined clip (the original, then the new frames).

        Parameters:
            history_id: one of your own renders (the history_id /generate returned); or send `clip`
            clip: an mp4 to continue, sent with handle_file(path)
            frames: frames to add (rounded to the model's step, e.g. 4)
            prompt: the new frames' prompt; None for the original's
            steps: step budget; None for the original's
        """
        started = time.perf_counter()
        sid = self.caller.session(request)
        try:
            source = self._source(history_id, clip, sid)
            req, plan = extension.extension_request(self.studio.engine, source, int(frames), prompt=prompt,
                                                    steps=steps)
            events = following.follow_extension(self.studio, source, req, plan, source_name="api", session=sid)
            *_, (r, elapsed) = results(events, Plan.single(req.steps), started)
            video = file_out(self.studio, r.video_path)
        except StudioError as exc:
            raise api_error(exc) from None
        except ValueError:  # no result at all: the job ended without one
            raise gr.Error("The extension ended without a video.", print_exception=False) from None
        return video, rendered(self.studio, r, elapsed)

    def _source(self, history_id, clip, sid) -> extension.Source:
        if bool(history_id) == bool(clip):
            raise InvalidRequest({"extend": "give either history_id (one of your renders) or clip (a file)"})
        if history_id:
            row = self.studio.history.get(str(history_id).strip())
            if not self.caller.owns(row, sid):  # someone else's render looks the same as no render
                raise StudioError(f"No render {str(history_id)[:40]!r} of yours to extend.")
            return extension.load_source(self.studio.history, row["id"])
        source = extension.load_source(self.studio.history, uploaded(clip, "clip"))
        if source.row is not None and not self.caller.owns(source.row, sid):
            source.row = None  # a file naming another visitor's render: treat it as any other clip
        return source

    def history(self, search: str = "", starred: bool = False, limit: int = 20,
                request: gr.Request = None) -> list[HistoryEntry]:
        """Your renders, newest first (in a shared Space, only those of this client).

        Parameters:
            search: words in the prompt; "" for all
            starred: only renders starred in the UI
            limit: how many, at most 100
        """
        sid = self.caller.session(request)
        if self.studio.settings.space and sid is None:
            return []
        query = Query(text=search or "", accepted=True if starred else None, session=sid,
                      limit=max(1, min(int(limit or 20), MAX_HISTORY)))
        return [history_entry(row) for row in self.studio.history.search(query)]

    def models(self) -> list[dict]:
        """The models this studio offers: id, modes, native size, whether it is loaded or on disk, its licence, and
        the LoRA names /generate accepts (the same list on every entry)."""
        loras = lora.listing(self.studio.settings.loras_dir)
        out = []
        for row in self.studio.models.describe():
            spec = self.studio.registry.get(row["id"])
            out.append({"id": spec.id, "title": spec.title or spec.id, "modes": list(spec.modes),
                        "width": spec.width, "height": spec.height, "frames": spec.frames, "fps": spec.fps,
                        "loaded": bool(row["loaded"]), "on_disk": bool(row["available"]),
                        "default": spec.id == self.studio.settings.default_model, "license": spec.license,
                        "loras": loras})
        return out

# ---- registering, and hiding the rest ---------------------------------------------------------------
ENDPOINTS = ("generate", "compare", "extend", "history", "models")
RETURNS = {  # endpoint -> (name, description) of each value it returns
    "generate": (("video", "the mp4, downloaded by the client"),
                 ("info", "history_id, role, seed, steps, steps_asked, steps_why, seconds, timings, model, ...")),
    "compare": (("videos", "one mp4 per budget, lowest first"), ("info", "seed, model, budgets: [{steps, seconds, "
                                                                          "history_id}], notes")),
    "extend": (("video", "the joined mp4: the original, then the new frames"), ("info", "as /generate's, with extends")),
    "history": (("renders", "[{history_id, created_at, status, prompt, mode, model, steps, seed, frames, starred, "
                            "extends}]"),),
    "models": (("models", "[{id, title, modes, width, height, frames, fps, loaded, on_disk, default, license, loras}]"),),
}
RENDERS = {"generate", "compare", "extend"}  # queued jobs: they share the render concurrency group


def _as_api(method, name: str):
    """``method`` with the signature gr.api reads: a generator's return annotation is what it yields."""
    hints = typing.get_type_hints(method)  # the module's annotations are strings (``from __future__``)
    sig = inspect.signature(method)
    sig = sig.replace(parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()])
    ret = hints.get("return", sig.return_annotation)
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def fn(*args, **kwargs):
            yield from method(*args, **kwargs)
        ret = typing.get_args(ret)[0] if typing.get_args(ret) else ret
    else:
        @functools.wraps(method)
        def fn(*args, **kwargs):
            return method(*args, **kwargs)
    fn.__signature__ = sig.replace(return_annotation=ret)
    fn.__name__ = name
    return fn


def register(studio) -> PublicApi:
    """Declare the public endpoints on the Blocks being built (call inside ``with gr.Blocks()``)."""
    api = PublicApi(studio)
    for name in ENDPOINTS:
        render = name in RENDERS
        dep = gr.api(_as_api(getattr(api, name), name), api_name=name, api_visibility="public",
                     concurrency_id=RENDER_QUEUE if render else None,
                     concurrency_limit="default" if render else None, queue=True)
        fn = gr.context.get_blocks_context().fns[dep["id"]]
        setattr(fn, PUBLIC, True)
        _document(fn, getattr(api, name), RETURNS[name])
    return api


def _document(fn, method, returns) -> None:
    """Put each parameter's line of the docstring, and each returned value's name, on the API page."""
    _, params, _ = gr.utils.get_function_description(method)
    names = [p for p in inspect.signature(method).parameters if p != "request"]
    for name, block in zip(names, fn.inputs):
        block._api_info = {**block._api_info, "additional_description": params.get(name, "")}
    for (label, text), block in zip(returns, fn.outputs):
        block.label = label
        block._api_info = {**block._api_info, "description": text}


def hide_ui_handlers(demo: gr.Blocks) -> int:
    """Every listener not registered as public becomes "undocumented": the page keeps calling it, and
    ``view_api()`` lists only the public endpoints. Listeners made "private" stay private. Returns how many
    were hidden."""
    hidden = 0
    for fn in demo.fns.values():
        if getattr(fn, PUBLIC, False) or fn.api_visibility != "public":
            continue
        fn.api_visibility = HIDDEN
        hidden += 1
    return hidden
