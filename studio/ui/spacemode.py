"""Space mode in the UI: sessions, the banner, defaults, clean-up, and the renders the UI starts.

    sid = session_id(studio, session_dict)     # this browser session's id (Space mode), else None
    events = render_events(studio, req, plan, cancel, sid, previews)   # the engine's events for this session
    events = board_events(runner, board_id, stage, cancel, shot_ids, sid)

On ZeroGPU only the GPU work of each render runs in the GPU worker (see ``studio.space.run_on_gpu``).
"""

from __future__ import annotations

from typing import Iterator

from ..jobs import following as jobs
from ..engine import space

FAR_1_3B = "anyflow-far-1.3b"


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
    """Space mode: every ``interval`` seconds, delete renders older than the time to live, boards untouched for
    as long (``boards``: the app's ``BoardStore``), and expired board inputs, exports and GIFs under the renders
    folder. Gradio's own uploads are Gradio's to delete (``delete_cache``, see ``upload_cache``)."""
    from ..app.cleanup import Janitor

    return Janitor(studio.history, studio.settings.space_ttl_hours, interval=interval, boards=boards,
                   renders_dir=studio.settings.renders_dir).start()


def upload_cache(studio) -> tuple[int, int] | None:
    """Space mode: Gradio's ``delete_cache`` (every hour, files older than the time to live), so visitors' uploads
    go with their renders; None (keep them) for a local studio, where History re-runs may re-use them."""
    if not studio.settings.space:
        return None
    return 3600, max(3600, int(studio.settings.space_ttl_hours * 3600))


# ---- renders and batches ----------------------------------------------------------------------
# ZeroGPU wraps only the GPU work, inside the engine (space.run_on_gpu around denoise.run): the history, the
# files and cancellation stay in this process, whether or not the ``spaces`` package is present.
def render_events(studio, req, plan, cancel, sid, previews, policy=None, source=None) -> Iterator:
    """A UI render as a job in the studio's queue (Create, or Compare for a comparison): yields the engine's
    events, this session's files and rows. Bad input raises StudioError at the first ``next``; Cancel (``cancel``)
    stops it queued or running, and so does a consumer that goes away. ``source``: the queue's name for who asked
    (default: create, or compare for a comparison)."""
    steps = plan.budgets[-1] if plan.kind != "compare" else req.steps
    job = {"request": dict(req.to_dict(), steps=steps), "policy": policy, "previews": bool(previews),
           **jobs.plan_keys(plan)}
    source = source or ("compare" if plan.kind == "compare" else "create")
    return jobs.follow_job(studio, job, source=source, session=sid, cancel=cancel)


def board_events(runner, board_id, stage, cancel, shot_ids, sid) -> Iterator:
    """``BoardRunner.run`` for a UI batch: yields ShotEvents, then BatchDone."""
    return runner.run(board_id, stage, cancel=cancel, shot_ids=shot_ids, session=sid)
