"""The Storyboard tab's batches: Preview all, Render finals, re-preview and re-roll, shot by shot.

Updates are proportional to what changed: a finished shot sends the status line and its own tile and table row
(``c.live``, a few kB, patched into the page by board_layout.LIVE_JS); the table and the finals note follow at
most every LIVE_EVERY_S; the whole board, thumbnails included, and the player are sent once when the batch ends
(``run_end``, chained after the batch, from what it left in ``c.batch_end``). Re-sending every thumbnail after
every shot made a 200-shot batch from the page cost 3.4x its renders (Gradio re-checks each gallery file on each
update); so did a batch streaming to all 35 of the tab's outputs (Gradio rebuilds each output an update leaves
out) and saying the queue place of every waiting shot each second (3.5x at 60 shots).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace

import gradio as gr

from ..store.boards import Board
from ..errors import StudioError
from . import format as fmt
from . import spacemode
from .session import cancel_scope

STATUS_EVERY_S = 1.0  # at most one step-progress message a second (each costs the page a repaint)
LIVE_EVERY_S = 30.0  # how often a running batch refreshes the table and the finals note
TILES_EVERY_S = 1.0  # finished shots' tiles go to the page together, at most this often (a message a second)

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
    tiles: list = field(default_factory=list)  # finished shots' tiles and rows not yet sent (``shot_delta``)
    last_tiles: float = 0.0  # when tiles were last sent
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
        return {c.preview_btn: gr.Button(interactive=not running), c.finals_btn: gr.Button(interactive=not running),
                c.stop_btn: gr.Button(interactive=running)}

    def end(self, text: str, sel=None, with_editor: bool = True, player=None) -> dict:
        """A batch's last update: its status line, the buttons idle, and what ``run_end`` draws the board from."""
        c = self.c
        return {c.status: text, **self.buttons(False),
                c.batch_end: {"text": text, "sel": sel, "with_editor": with_editor, "player": player}}

    def run_end(self, bid, end, session_v):
        """Chained after a batch: the whole board (thumbnails, table, the selected shot's editor) and the player,
        once."""
        c = self.c
        if not isinstance(end, dict):
            return {**self.buttons(False), c.progress_bar: ""}
        out = {**self.view(self.ui.sid(session_v), bid, end.get("sel"), text=end.get("text"),
                           with_editor=bool(end.get("with_editor"))), **self.buttons(False), c.progress_bar: ""}
        if end.get("sel") is None and end.get("player"):
            video, label = end["player"]
            out[c.shot_video] = gr.Video(value=video, label=label)
        return out

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
            yield self.end("Create or pick a board first.")
            return
        if not board.shots:
            yield self.end("This board has no shots yet: add one on the right.")
            return
        batch, refusal = self.batch(board, stage, only, before)
        if refusal:
            yield self.end(refusal)
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
                gr.Warning(str(exc))
                yield self.end(f"⚠ {exc}", keep, with_editor=False)  # keep what the artist typed

    def shot_update(self, batch, ev, sid, progress, elapsed) -> dict | None:
        """One engine event of one shot of a batch: progress, a status line, or its finished render."""
        c, e = self.c, ev.event
        if e.kind == "waiting" and (batch.rendering or time.perf_counter() - batch.last_status < STATUS_EVERY_S):
            return None  # every waiting shot is told its place each second: say it when nothing renders, seldom
        n = batch.number(ev.shot_id)
        lead = f"{batch.word.title()} {ev.index + 1} of {ev.total} (shot {n})"
        if e.kind in ("progress", "status"):
            batch.rendering.add(ev.shot_id)
        elif e.kind in ("result", "failed", "cancelled"):
            batch.rendering.discard(ev.shot_id)
        if e.kind == "progress":  # each message costs the page a repaint: at most one every STATUS_EVERY_S
            now = time.perf_counter()
            if now - batch.last_status >= STATUS_EVERY_S and e.step < e.total:  # the last step: its result says
                batch.last_status = now
                progress((e.step, e.total), desc=lead, unit="steps")  # one reading: shot k of n, step s of S
                return {c.status: f"… {batch.intro}  \n{lead} · step {e.step} of {e.total} · {fmt.seconds(elapsed)}"}
        elif e.kind == "status":
            return {c.status: f"… {batch.intro}  \n{lead} · {e.message}"}
        elif e.kind == "waiting":  # nothing of this batch runs yet: say where it stands
            batch.last_status = time.perf_counter()
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
            self.finished_shot(batch, ev.shot_id)
            if cap or time.perf_counter() - batch.last_tiles >= TILES_EVERY_S:
                out = {c.status: f"… {batch.intro}  \n✓ {lead} done · {fmt.seconds(elapsed)}{cap}",
                       c.live: self.send_tiles(batch)}
                return {**out, **self.live_board(batch, sid)}
        elif e.kind == "failed":
            gr.Warning(f"Shot {n}: {e.message}")
        return None

    def finished_shot(self, batch, shot_id) -> None:
        """A shot that just finished: its tile and row (``shot_delta``) wait in ``batch.tiles``, from the shot read
        again (its new render) on the board as it stands (a continuing shot's staleness)."""
        try:
            batch.fresh[shot_id] = self.ui.boards.get_shot(shot_id)
        except StudioError:  # deleted meanwhile
            return
        board = replace(batch.board, shots=[batch.fresh.get(s.id, s) for s in batch.board.shots])
        batch.tiles.append(self.ui.shot_delta(board, batch.fresh[shot_id]))

    def send_tiles(self, batch) -> str:
        """The live component's value: the tiles waiting, as a JSON list (board_layout.LIVE_JS puts each in place)."""
        tiles, batch.tiles, batch.last_tiles = batch.tiles, [], time.perf_counter()
        return json.dumps(tiles, ensure_ascii=False) if tiles else gr.skip()

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
        return {**self.end(text, sel, with_editor=sel is not None, player=batch.player),
                self.c.live: self.send_tiles(batch)}

    def on_preview_all(self, bid, sel, session_v, progress=gr.Progress()):
        yield from self.run_stage(bid, "preview", None, session_v, progress, keep=sel or None)

    def on_finals(self, bid, sel, session_v, progress=gr.Progress()):
        yield from self.run_stage(bid, "final", None, session_v, progress, keep=sel or None)

    def on_repreview(self, bid, sel, session_v, progress=gr.Progress()):
        if not sel:
            yield self.end("Select a shot first.")
            return
        yield from self.run_stage(bid, "preview", [sel], session_v, progress)

    def on_reroll(self, bid, sel, session_v, progress=gr.Progress()):
        sid = self.ui.sid(session_v)
        board = self.ui.board(bid, sid)
        if board is None or not sel or not any(s.id == sel for s in board.shots):
            yield self.end("Select a shot first.")
            return
        shot = self.ui.boards.reroll(sel)
        yield {self.c.status: f"… New seed {shot.seed} for shot {shot.position + 1}; previewing it."}
        yield from self.run_stage(bid, "preview", [sel], session_v, progress, before=f"Seed {shot.seed}. ")
