"""The Storyboard tab's batches: Preview all, Render finals, re-preview and re-roll, shot by shot.

Updates are proportional to what changed: a finished shot sends the status line and its own tile and table row
(``c.live``, a few kB, patched into the page by board_layout.LIVE_JS); the table and the finals note follow at
most every LIVE_EVERY_S; the whole board, thumbnails included, and the player are sent once when the batch ends.
Re-sending every thumbnail after every shot made a 200-shot batch from the page cost 3.4x its renders (Gradio
re-checks each gallery file on each update).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import gradio as gr

from ..store.boards import Board
from ..errors import StudioError
from . import format as fmt
from . import spacemode
from .session import cancel_scope

STATUS_EVERY_S = 0.3
LIVE_EVERY_S = 5.0  # how often a running batch refreshes the table and the finals note

@dataclass
class Batch:
    """One Preview all / Render finals / re-preview: the shots to render and the words its status uses."""

    board: Board
    stage: str  # preview | final
    only: list | None  # shot ids (a re-preview), or None: every pending shot
    todo: list
    done: list
    word: str  # "preview" or "final"
    budget: str  # the policy, as markdown
    intro: str = ""
    last_status: float = 0.0  # when a step-progress status was last shown
    rendering: set = field(default_factory=set)  # shots of this batch rendering now (their jobs have started)
    last_live: float = 0.0  # when the thumbnails and table were last sent (``live_board``)
    player: tuple | None = None  # the last finished shot's (video, label), for the player
    fresh: dict = field(default_factory=dict)  # shots finished in this batch, as read again (id -> Shot)
    numbers: dict = field(default_factory=dict)  # shot id -> its number on the board (1-based)

    def number(self, shot_id: str) -> int:
        """A shot's number on the board, without a scan of its shots per event."""
        if not self.numbers:
            self.numbers = {s.id: s.position + 1 for s in self.board.shots}
        return self.numbers.get(shot_id) or self.board.shot(shot_id).position + 1


class BatchHandlers:
    """The batch handlers of ``BoardTab`` (a mixin: they use its ``ui``, ``c``, ``view`` and ``fail``)."""

    # updates are made inside handlers: a component built here, in the Blocks context, would be rendered
    def buttons(self, running: bool) -> dict:
        c = self.c
        out = {c.preview_btn: gr.Button(interactive=not running), c.finals_btn: gr.Button(interactive=not running),
               c.stop_btn: gr.Button(interactive=running)}
        return out if running else {**out, c.progress_bar: ""}

    def batch(self, board, stage, only, before) -> tuple[Batch, str | None]:
        """What a stage would render on this board, and why it renders nothing (None: it renders)."""
        todo, done = self.ui.runner.pending(board, stage)
        if only is not None:
            todo, done = [board.shot(s) for s in only], []
        policy_name = board.preview_policy if stage == "preview" else board.final_policy
        policy = self.ui.policy(policy_name)
        word = "preview" if stage == "preview" else "final"
        budget = f"**{policy_name}** ({fmt.steps_word(policy.steps)})" if policy else f"**{policy_name}**"
        batch = Batch(board, stage, only, todo, done, word, budget)
        if stage == "final" and not todo and not done:
            return batch, "⚠ No approved shots: select a shot and press **✓ Approve** first."
        if not todo:
            return batch, (f"All {len(done)} {word}s are already done: nothing to render. "
                           "Edit or re-roll a shot to render it again.")
        batch.intro = f"{before}Rendering {len(todo)} {word}{'s' if len(todo) != 1 else ''} at {budget}"
        if done:
            batch.intro += f"; {len(done)} already done, skipped"
        batch.intro += "."
        return batch, None

    def run_stage(self, bid, stage, only, session_v, progress, before="", keep=None):
        """Render a stage's shots one after another, each thumbnail and table row updated as it finishes."""
        sid = self.ui.sid(session_v)
        board = self.ui.board(bid, sid)
        if board is None:
            yield self.view(sid, bid, text="Create or pick a board first.")
            return
        if not board.shots:
            yield self.view(sid, bid, text="This board has no shots yet: add one on the right.")
            return
        batch, refusal = self.batch(board, stage, only, before)
        if refusal:
            yield self.view(sid, bid, text=refusal)
            return
        yield {**self.buttons(True), self.c.status: f"… {batch.intro}"}
        with cancel_scope(session_v) as cancel_event:
            started = time.perf_counter()
            try:
                for ev in spacemode.board_events(self.ui.runner, board.id, stage, cancel_event, only, sid):
                    elapsed = time.perf_counter() - started
                    if ev.kind == "batch_done":
                        yield self.batch_done(batch, ev, sid, keep, elapsed)
                    else:
                        update = self.shot_update(batch, ev, sid, progress, elapsed)
                        if update:
                            yield update
            except StudioError as exc:
                yield {**self.fail(exc, sid, board.id), **self.buttons(False)}

    def shot_update(self, batch, ev, sid, progress, elapsed) -> dict | None:
        """One engine event of one shot of a batch: progress, a status line, or its finished render."""
        c, e = self.c, ev.event
        if e.kind == "waiting" and batch.rendering:  # every waiting shot, every second: nothing to say
            return None
        n = batch.number(ev.shot_id)
        lead = f"{batch.word.title()} {ev.index + 1} of {ev.total} (shot {n})"
        if e.kind in ("progress", "status"):
            batch.rendering.add(ev.shot_id)
        elif e.kind in ("result", "failed", "cancelled"):
            batch.rendering.discard(ev.shot_id)
        if e.kind == "progress":
            progress((e.step, e.total), desc=lead, unit="steps")  # one reading: shot k of n, step s of S
            now = time.perf_counter()
            if now - batch.last_status >= STATUS_EVERY_S:
                batch.last_status = now
                return {c.status: f"… {batch.intro}  \n{lead} · step {e.step} of {e.total} · {fmt.seconds(elapsed)}"}
        elif e.kind == "status":
            return {c.status: f"… {batch.intro}  \n{lead} · {e.message}"}
        elif e.kind == "waiting" and not batch.rendering:  # nothing of this batch runs yet: say where it stands
            return {c.status: f"… {batch.intro}  \n{lead} · waiting in the render queue: "
                              f"{fmt.place(e.position, e.waiting)}"}
        elif e.kind == "result":
            label = (f"Shot {n} · {batch.word} · {fmt.steps_word(e.steps)} · "
                     f"{fmt.seconds(fmt.render_seconds(e.timings))}")
            row = self.ui.row(e.record_id)
            if row and row.get("capped"):
                label += f" (capped from {row.get('requested_steps')})"
            cap = f"  \n⚠ {e.notes[0]}" if e.notes else ""
            batch.player = (e.video_path, label)
            out = {c.status: f"… {batch.intro}  \n✓ {lead} done · {fmt.seconds(elapsed)}{cap}",
                   c.live: self.finished_shot(batch, ev.shot_id)}
            return {**out, **self.live_board(batch, sid)}
        elif e.kind == "failed":
            gr.Warning(f"Shot {n}: {e.message}")
        return None

    def finished_shot(self, batch, shot_id) -> str:
        """The live component's value for a shot that just finished: its tile and row (``shot_delta``), from the
        shot read again (its new render) on the board as it stands (a continuing shot's staleness)."""
        try:
            batch.fresh[shot_id] = self.ui.boards.get_shot(shot_id)
        except StudioError:  # deleted meanwhile
            return gr.skip()
        board = replace(batch.board, shots=[batch.fresh.get(s.id, s) for s in batch.board.shots])
        return self.ui.shot_delta(board, batch.fresh[shot_id])

    def live_board(self, batch, sid) -> dict:
        """The table (rows out of view are drawn from its value) and the finals note, at most every LIVE_EVERY_S
        during a batch; {} in between. The gallery is not re-sent (Gradio re-checks every file of it on each
        update): finished tiles come through ``c.live``, and the whole board when the batch ends. Nor is the
        player: a video update makes Gradio probe and cache the file (a subprocess each), so the player shows the
        last finished shot when the batch ends (measured: the page's studio CPU over `board run`, 6 shots, went
        from 1.49x to 1.22x without these refreshes)."""
        now = time.perf_counter()
        if now - batch.last_live < LIVE_EVERY_S:
            return {}
        batch.last_live = now
        board = self.ui.board(batch.board.id, sid)
        rows = self.ui.prefetch(board)
        return {self.c.table: self.ui.table(board, rows), self.c.finals_note: self.ui.finals_note(board, rows)}

    def batch_done(self, batch, ev, sid, keep, elapsed) -> dict:
        """The batch's summary; the board refreshed, the buttons back to idle."""
        parts = [f"{len(ev.rendered)} rendered"]
        if ev.skipped:
            parts.append(f"{len(ev.skipped)} already done (skipped)")
        if ev.failed:
            parts.append(f"{len(ev.failed)} failed")
        head = "■ Stopped" if ev.cancelled else "✓ Done"
        text = f"{head}: {batch.word}s at {batch.budget} · " + ", ".join(parts) + f" · {fmt.seconds(elapsed)}."
        if ev.cancelled:
            text += " Press the button again to carry on: finished shots are kept."
        elif batch.stage == "preview" and not batch.only:
            text += " Click a shot to watch it; **✓ Approve** the keepers, then **★ Render finals**."
        if ev.failed:
            text += "  \n" + "  \n".join(f"⚠ Shot {batch.board.shot(s).position + 1}: {m}"
                                         for s, m in ev.failed.items())
        sel = batch.only[0] if batch.only else keep  # the shot the artist had selected stays selected
        # nothing selected: the player keeps the last shot that finished
        out = {**self.view(sid, batch.board.id, sel, text=text, with_editor=sel is not None), **self.buttons(False)}
        if sel is None and batch.player:
            out[self.c.shot_video] = gr.Video(value=batch.player[0], label=batch.player[1])
        return out

    def on_preview_all(self, bid, sel, session_v, progress=gr.Progress()):
        yield from self.run_stage(bid, "preview", None, session_v, progress, keep=sel or None)

    def on_finals(self, bid, sel, session_v, progress=gr.Progress()):
        yield from self.run_stage(bid, "final", None, session_v, progress, keep=sel or None)

    def on_repreview(self, bid, sel, session_v, progress=gr.Progress()):
        if not sel:
            yield self.view(self.ui.sid(session_v), bid, text="Select a shot first.")
            return
        yield from self.run_stage(bid, "preview", [sel], session_v, progress)

    def on_reroll(self, bid, sel, session_v, progress=gr.Progress()):
        sid = self.ui.sid(session_v)
        board = self.ui.board(bid, sid)
        if board is None or not sel or not any(s.id == sel for s in board.shots):
            yield self.view(sid, bid, text="Select a shot first.")
            return
        shot = self.ui.boards.reroll(sel)
        yield self.view(sid, bid, sel, text=f"… New seed {shot.seed} for shot {shot.position + 1}; previewing it.")
        yield from self.run_stage(bid, "preview", [sel], session_v, progress, before=f"Seed {shot.seed}. ")
