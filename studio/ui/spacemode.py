"""Space mode in the UI, and the ZeroGPU wrapping of every piece of GPU work the UI starts.

    sid = session_id(studio, session_dict)     # this browser session's id (Space mode), else None
    events = render_events(studio, req, plan, cancel, sid, previews)   # engine events, through spaces.GPU
    events = board_events(boards, board_id, stage, cancel, shot_ids, sid)

``studio.space.gpu`` is applied at call time (so a ``spaces`` module installed later, or a fake one in a
test, takes effect) to module-level generator functions whose arguments pickle: ZeroGPU runs them in a
worker process and forwards each yield, so previews and chunks still stream. The Studio, the cancel
events and the storyboard runner are looked up by key in module globals (a forked worker inherits them).
"""

from __future__ import annotations

import itertools
import threading
from typing import Iterator

from .. import space
from ..errors import StudioError

FAR_1_3B = "anyflow-far-1.3b"
_STUDIOS: dict[int, object] = {}
_BOARDS: dict[int, object] = {}
_CANCELS: dict[int, threading.Event] = {}
_TOKENS = itertools.count(1)


# ---- sessions ----------------------------------------------------------------------------
def session_id(studio, session: dict | None) -> str | None:
    """Space mode: this browser session's id (created on first use, kept in its gr.State dict). Else None."""
    if not studio.settings.space or session is None:
        return None
    sid = session.get("sid")
    if not space.valid_session(sid):
        sid = session.setdefault("sid", space.new_session_id())
    return sid


def init_session(studio, session: dict | None) -> dict:
    """demo.load: give a new browser session its id at once."""
    session = session if isinstance(session, dict) else {}
    session_id(studio, session)
    return session


# ---- defaults ------------------------------------------------------------------------------
def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - a broken torch install
        return False


def space_default_model(has_cuda: bool | None = None) -> tuple[str | None, str]:
    """(model to default to, or None to keep the embedded one; why) for Space mode."""
    has_cuda = cuda_available() if has_cuda is None else has_cuda
    if has_cuda:
        return FAR_1_3B, "A CUDA GPU is available, so the default is the 1.3B FAR model (T2V, I2V and V2V)."
    return None, ("No CUDA GPU on this machine, so the default stays the small embedded model: the 1.3B "
                  "models need a GPU (about 17 GB) and would take minutes per step on CPU.")


def banner(studio) -> str:
    """The line Space mode shows under the header."""
    caps = studio.policies.space_max_steps
    model = studio.settings.default_model
    why = (space_default_model(True)[1] if model == FAR_1_3B
           else space_default_model(False)[1] if not cuda_available() else f"Default model: `{model}`.")
    return (f"**Shared Space.** Your renders and boards are private to this browser session (a new tab or a "
            f"reload starts a new one) and are deleted after {studio.settings.space_ttl_hours:g} hours. "
            f"Step budgets are capped at {caps}. {why}")


def start_janitor(studio, interval: float = 600.0, boards=None):
    """Space mode: delete renders older than the time to live, and boards untouched for as long, every
    ``interval`` seconds. ``boards``: the app's own ``BoardStore`` (a new one would mark running batches
    interrupted). Uploads are Gradio's to delete (``delete_cache``, see ``upload_cache``)."""
    from ..cleanup import Janitor

    return Janitor(studio.history, studio.settings.space_ttl_hours, interval=interval, boards=boards).start()


def upload_cache(studio) -> tuple[int, int] | None:
    """Space mode: Gradio's ``delete_cache`` (every hour, files older than the time to live), so visitors' uploads
    go with their renders; None (keep them) for a local studio, where History re-runs may re-use them."""
    if not studio.settings.space:
        return None
    return 3600, max(3600, int(studio.settings.space_ttl_hours * 3600))


# ---- ZeroGPU durations -----------------------------------------------------------------------
def _spec(studio, model_id):
    try:
        return studio.registry.get(model_id or studio.settings.default_model)
    except StudioError:
        return None


def render_seconds(studio, req, plan) -> int:
    spec = _spec(studio, req.model)
    family = spec.family if spec else "causal"
    frames = req.frames or (spec.frames if spec else 81)
    height = req.height or (spec.height if spec else 480)
    width = req.width or (spec.width if spec else 832)
    return space.estimate_gpu_seconds(sum(plan.budgets), frames, height, width, family)


def _render_duration(key, req, plan, token, sid, previews, policy=None) -> int:
    return render_seconds(_STUDIOS[key], req, plan)


def _board_duration(key, board_id, stage, token, shot_ids, sid) -> int:
    runner = _BOARDS[key]
    studio = runner.studio
    try:
        board = runner.boards.get(board_id, sid)
        todo, _ = runner.pending(board, stage)
        if shot_ids is not None:
            todo = [board.shot(s) for s in shot_ids]
        policy = studio.policies.get(board.preview_policy if stage == "preview" else board.final_policy)
    except StudioError:
        return 60
    spec = _spec(studio, board.model)
    total = 0
    for shot in todo:
        frames = shot.frames or policy.frames or (spec.frames if spec else 81)
        height = policy.height or (spec.height if spec else 480)
        width = policy.width or (spec.width if spec else 832)
        total += space.estimate_gpu_seconds(policy.steps, frames, height, width, spec.family if spec else "causal")
    return int(min(300, max(total, 15)))


# ---- the wrapped generators ------------------------------------------------------------------
def _engine_events(key, req, plan, token, sid, previews, policy=None) -> Iterator:
    studio = _STUDIOS[key]
    yield from studio.engine.render(req, plan, _CANCELS.get(token), policy=policy, session=sid,
                                    previews=previews, stream_chunks=True)


def _board_run(key, board_id, stage, token, shot_ids, sid) -> Iterator:
    yield from _BOARDS[key].run(board_id, stage, cancel=_CANCELS.get(token), shot_ids=shot_ids, session=sid)


def _through_gpu(fn, duration, cancel, *args) -> Iterator:
    token = next(_TOKENS)
    _CANCELS[token] = cancel or threading.Event()
    gen = space.gpu(duration)(fn)(args[0], *args[1:3], token, *args[3:])
    try:
        yield from gen
    finally:
        close = getattr(gen, "close", None)
        if close is not None:
            close()
        _CANCELS.pop(token, None)


def render_events(studio, req, plan, cancel, sid, previews, policy=None) -> Iterator:
    """``studio.engine.render`` through ``spaces.GPU`` (identity off a Space): yields the engine's events."""
    _STUDIOS[id(studio)] = studio
    return _through_gpu(_engine_events, _render_duration, cancel, id(studio), req, plan, sid, previews, policy)


def board_events(runner, board_id, stage, cancel, shot_ids, sid) -> Iterator:
    """``Storyboards.run`` through ``spaces.GPU``: yields ShotEvents, then BatchDone."""
    _BOARDS[id(runner)] = runner
    return _through_gpu(_board_run, _board_duration, cancel, id(runner), board_id, stage, shot_ids, sid)
