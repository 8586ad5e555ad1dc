"""The "Queue" tab: the render queue (queue_store.py) as it stands, refreshed every few seconds by a gr.Timer
while the tab is shown.

Waiting and running jobs with their position, where each came from and the progress of the running one; the user
picks a job and cancels it, moves it (up, down, to the top) or changes the step budget of a waiting one. In Space
mode a visitor sees and touches only their own session's jobs. ``rows`` and ``act`` hold the logic (no gradio).
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..errors import StudioError
from ..store.queue import QueueStore
from . import spacemode

COLUMNS = ["Job", "State", "Position", "From", "Steps", "Progress", "Prompt"]
REFRESH_S = 2.0
ACTIONS = ("cancel", "up", "down", "top", "steps")


def _scope(studio, session_v) -> tuple[bool, str | None]:
    """(may see anything, the session to keep to): locally every job; on a Space only the visitor's, and none
    before the session has an id."""
    if not studio.settings.space:
        return True, None
    sid = spacemode.session_id(studio, session_v)
    return sid is not None, sid


def rows(studio, session_v) -> list[list]:
    """The waiting and running jobs this visitor may see, in run order, as table rows."""
    allowed, sid = _scope(studio, session_v)
    if not allowed:
        return []
    out = []
    for job in QueueStore(studio.history).list(session=sid, states=("running", "queued")):
        req = job["job"].get("request") or {}
        done = job.get("progress") if job["state"] == "running" else None  # written every CANCEL_CHECK_S
        board = job["job"].get("board") or {}
        source = f"{job['source']} · {board['name']}" if board.get("name") else job["source"]
        out.append([job["id"], job["state"], job["position"] or "", source, _steps(studio, job),
                    f"{100 * done:.0f}%" if done is not None else "", str(req.get("prompt") or "")[:80]])
    return out


def _steps(studio, job: dict):
    """The step budget a job renders: its plan once it runs ("2 → 8"), else its policy's, else the request's."""
    if job.get("plan") and job["state"] == "running":
        return " → ".join(str(b) for b in job["plan"]["budgets"])
    policy = studio.policies.policies.get(job["job"].get("policy") or "")
    return policy.steps if policy and policy.steps else (job["job"].get("request") or {}).get("steps")


def steps_of(cell):
    """The Steps box's value for a picked row: the job's budget (the last of "2 → 8"), else left as it is."""
    text = str(cell or "").split("→")[-1].strip()
    return int(text) if text.isdigit() else gr.skip()


def act(studio, session_v, jid: str, action: str, steps=None) -> str:
    """Do ``action`` to job ``jid``; a line saying what happened (or why not)."""
    allowed, sid = _scope(studio, session_v)
    jid = (jid or "").strip()
    if not allowed or not jid:
        return "Pick a job in the table first."
    store, dispatcher = QueueStore(studio.history), studio.running_dispatcher
    try:
        if action == "cancel":
            outcome = (dispatcher or store).cancel(jid, sid)
            return f"Job {jid}: {outcome}."
        if action == "steps":
            store.set_steps(jid, int(steps or 0), sid)
            return f"Job {jid} will render at {int(steps)} steps."
        store.move(jid, action, sid)
        return f"Job {jid} moved {'to the top' if action == 'top' else action}."
    except StudioError as exc:
        return str(exc)


def build(studio, session: gr.State) -> dict:
    gr.Markdown("### Render queue\nEvery render waits here until a slot is free: from Create, Compare, a "
                "storyboard's shots, and the command line (`python -m studio queue add`). Jobs survive a restart. "
                "Pick a job (click its row) to cancel it, move it, or change the step budget of a waiting one.",
                elem_classes=["hint"])
    table = gr.Dataframe(pd.DataFrame(rows(studio, None), columns=COLUMNS), interactive=False,
                         elem_id="queue-table", label="Running and waiting")
    with gr.Row():
        job = gr.Textbox(label="Job", elem_id="queue-job", scale=2)
        steps = gr.Number(label="Steps", value=4, minimum=1, maximum=128, precision=0, elem_id="queue-steps")
    with gr.Row():
        buttons = {a: gr.Button(label, size="sm", elem_id=f"queue-{a}") for a, label in
                   zip(ACTIONS, ("Cancel", "Up", "Down", "To the top", "Set steps"))}
    note = gr.Markdown("", elem_id="queue-note")

    def refresh(session_v=None):
        return pd.DataFrame(rows(studio, session_v), columns=COLUMNS)

    def picked(frame, evt: gr.SelectData):
        if evt is None or not evt.index:
            return gr.skip(), gr.skip()
        return frame.iloc[evt.index[0], 0], steps_of(frame.iloc[evt.index[0], COLUMNS.index("Steps")])

    table.select(picked, table, [job, steps], api_visibility="private", queue=False)
    for action, button in buttons.items():
        button.click(lambda s, j, n, a=action: act(studio, s, j, a, n), [session, job, steps], note,
                     api_visibility="private", queue=False).then(refresh, session, table, queue=False)
    # ticks only while the tab is shown (build_app turns it on and off): an open page costs nothing elsewhere
    timer = gr.Timer(REFRESH_S, active=False)
    timer.tick(refresh, session, table, api_visibility="private", queue=False)
    return {"refresh": refresh, "inputs": [session], "outputs": [table], "timer": timer}
