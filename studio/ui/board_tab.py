"""The Storyboard tab: boards of shots, "Preview all" at a cheap budget, approve, "Render finals", export.

A board is picked (or created) at the top; its shots show as a strip of thumbnails (the latest preview
or final of each) and a table of parameters. Clicking a shot loads it into the editor on the right,
where it can be changed, approved, re-rolled and re-previewed. Batches run through ``BoardRunner.run``
(engine side), shot by shot, each thumbnail appearing as it finishes; finals skip shots already done,
so a batch stopped by a restart carries on. Space mode: a session sees only its own boards.

Reading order: ``BoardViews`` (reads and texts, no gradio), ``BoardComponents`` (every component, one
dataclass), ``layout`` (creates them), ``BoardTab`` (the handlers, as methods, and ``wire``), and
``build``, which does layout then wire.
"""

from __future__ import annotations

import random
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import continuity, lora
from ..board_store import Board, shot_loras
from ..errors import StudioError
from ..render import MAX_SEED
from ..board_runner import BoardRunner
from . import format as fmt
from . import guard, spacemode
from .history import placeholder
from .session import cancel, cancel_scope

COLUMNS = ["#", "Prompt", "Mode", "Seed", "Length", "✓", "Preview", "Final"]
GALLERY_COLUMNS = 6


def gallery_height(count: int) -> int:
    """Tall enough for the rows of tiles there are (up to three, then it scrolls)."""
    rows = min(3, max(1, -(-count // GALLERY_COLUMNS)))
    return 24 + rows * 112
MODE_CHOICES = [("Text → Video", "t2v"), ("Image → Video", "i2v"), ("Video → Video", "v2v")]
DEFAULT_FRAMES = 0  # the frames dropdown's "model default"
EMPTY_STATUS = ("Create a board, add shots (a prompt each), then **Preview all**: every shot renders cheaply, one "
                "after another. Approve the keepers and **Render finals**.")
STATUS_EVERY_S = 0.3


def new_seed() -> int:
    return random.randint(0, MAX_SEED)


def parse_loras(text) -> list[list]:
    """The shot editor's "file:strength, file2" -> [[file, strength], ...] (strength 1 when left out)."""
    items = [lora.parse_cli(part.strip()) for part in str(text or "").split(",") if part.strip()]
    return shot_loras(items)


def loras_text(loras) -> str:
    return ", ".join(f"{f}:{s:g}" for f, s in loras or ())


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name or "board").strip("-").lower()[:40] or "board"


class BoardViews:
    """Board reads and view-building for one studio (kept apart from the layout so tests can call it)."""

    def __init__(self, studio, runner: BoardRunner | None = None):
        self.studio = studio
        self.runner = runner or BoardRunner(studio)
        self.boards = self.runner.boards

    # ---- reads ---------------------------------------------------------------------------
    def sid(self, session) -> str | None:
        return spacemode.session_id(self.studio, session)

    def board(self, board_id, sid):
        if not board_id:
            return None
        try:
            return self.boards.get(board_id, sid)
        except StudioError:
            return None

    def row(self, record_id):
        return self.studio.history.get(record_id) if record_id else None

    def rendered(self, shot, stage):
        """The shot's history row for a stage, if that render finished and its file is still there."""
        row = self.row(getattr(shot, f"{stage}_id"))
        if row and row.get("status") == "ok" and guard.servable(row.get("video_path"), guard.roots(self.studio)):
            return row
        return None

    def latest(self, shot):
        for stage in ("final", "preview"):
            row = self.rendered(shot, stage)
            if row:
                return stage, row
        return None, None

    def spec(self, board):
        try:
            return self.studio.registry.get((board.model if board else None) or self.studio.settings.default_model)
        except StudioError:
            return None

    # ---- text ------------------------------------------------------------------------------
    @staticmethod
    def budget_text(row) -> str:
        if not row:
            return "—"
        text = f"{fmt.steps_word(row['steps'])} · {fmt.seconds(fmt.render_seconds(row.get('timings')))}"
        if row.get("capped"):
            text += f" (capped from {row.get('requested_steps')})"
        return text

    def table(self, board) -> pd.DataFrame:
        rows = []
        for shot in board.shots if board else []:
            stale = continuity.stale_stages(self.studio.history, board, shot)  # its previous shot changed
            prompt = shot.prompt if len(shot.prompt) <= 70 else shot.prompt[:68] + "…"
            rows.append([shot.position + 1, prompt, continuity.mode_text(board, shot, fmt.MODE_SHORT), shot.seed,
                         shot.frames or "—", "✓" if shot.approved else "",
                         *(self.budget_text(self.rendered(shot, stage)) + (" · stale" if stage in stale else "")
                           for stage in ("preview", "final"))])
        return pd.DataFrame(rows, columns=COLUMNS)

    def gallery(self, board) -> list:
        allowed = guard.roots(self.studio)
        items = []
        for shot in board.shots if board else []:
            stage, row = self.latest(shot)
            thumb = guard.servable(row.get("thumb_path"), allowed) if row else None
            tile = str(thumb) if thumb else placeholder(self.studio, "not rendered")
            # tiles are small: number, approval and stage only (steps and seconds are in the table)
            items.append((tile, f"#{shot.position + 1}{' ✓' if shot.approved else ''}{' ' + stage if stage else ''}"))
        return items

    def finals_note(self, board) -> str:
        if board is None or not board.shots:
            return ""
        approved = [s for s in board.shots if s.approved]
        previewed = sum(1 for s in board.shots if self.rendered(s, "preview"))
        if not approved:
            return (f"Previewed {previewed} of {len(board.shots)} shots · none approved yet: select a shot and press "
                    "**✓ Approve**; finals render only approved shots.")
        todo, done = self.runner.pending(board, "final")
        policy = self.policy(board.final_policy)
        note = (f"Previewed {previewed} of {len(board.shots)} · **{len(approved)} approved** · finals at "
                f"**{board.final_policy}** ({fmt.steps_word(policy.steps) if policy else '?'}): "
                f"{len(done)} done, {len(todo)} to render.")
        if done and todo:
            note += " Render finals carries on where it stopped: finished finals are not redone."
        stopped = self.boards.batches(board.id, status="interrupted")
        if stopped and todo and stopped[-1]["stage"] == "final":
            note += " (A finals batch was interrupted; it resumes.)"
        return note

    def policy(self, name):
        try:
            return self.studio.policies.get(name)
        except StudioError:
            return None

    def policy_choices(self) -> list[tuple[str, str]]:
        return [(f"{p.name} · {fmt.steps_word(p.steps)}", p.name) for p in self.studio.policies.policies.values()]

    def board_choices(self, sid) -> list[tuple[str, str]]:
        return [(f"{b['name']} · {b['shots']} shot{'s' if b['shots'] != 1 else ''}", b["id"])
                for b in self.boards.list(session=sid)]

    def frame_choices(self, board) -> list:
        spec = self.spec(board)
        return [("Model default", DEFAULT_FRAMES)] + (fmt.frame_choices(spec) if spec else [])

    def keep_input(self, path, sid) -> str | None:
        """An uploaded first frame / clip copied under the studio's renders folder, so the board keeps it
        after Gradio's upload cache is cleared (and across restarts)."""
        if not path:
            return None
        src = Path(str(path))
        if guard.servable(src, guard.roots(self.studio)):
            return str(src.resolve())
        # only the browser's uploads (Gradio's upload folder) are copied in: never an arbitrary server path
        if not guard.servable(src, guard.input_roots(self.studio)):
            raise StudioError(f"The input file {src.name} is gone or not an upload: upload it again.")
        dest = Path(self.studio.settings.renders_dir) / (sid or "") / "inputs" / f"{uuid.uuid4().hex[:12]}{src.suffix.lower()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return str(dest)


def default_policies(studio) -> tuple[str, str]:
    """The policies a new board previews and finishes at: 'preview' and 'final' where they exist."""
    names = studio.policies.names()
    return ("preview" if "preview" in names else names[0]), ("final" if "final" in names else names[-1])


@dataclass
class BoardComponents:
    """Every component of the tab, so a handler names what it updates (``c.status``)."""

    # board bar and settings
    board_dd: gr.Dropdown
    new_name: gr.Textbox
    new_btn: gr.Button
    name_box: gr.Textbox
    rename_btn: gr.Button
    prev_pol: gr.Dropdown
    fin_pol: gr.Dropdown
    board_model: gr.Dropdown
    delete_btn: gr.Button
    confirm_btn: gr.Button
    # the board's shots and its batches
    gallery: gr.Gallery
    preview_btn: gr.Button
    finals_btn: gr.Button
    stop_btn: gr.Button
    progress_bar: gr.HTML
    status: gr.Markdown
    finals_note: gr.Markdown
    table: gr.Dataframe
    # the selected shot: player, actions, editor
    shot_video: gr.Video
    approve_btn: gr.Button
    reroll_btn: gr.Button
    repreview_btn: gr.Button
    ed_title: gr.Markdown
    ed_mode: gr.Radio
    ed_prompt: gr.Textbox
    ed_seed: gr.Number
    ed_frames: gr.Dropdown
    ed_image: gr.Image
    ed_video: gr.Video
    ed_continues: gr.Checkbox
    ed_loras: gr.Textbox
    add_btn: gr.Button
    save_btn: gr.Button
    dup_btn: gr.Button
    up_btn: gr.Button
    down_btn: gr.Button
    del_btn: gr.Button
    # export
    export_btn: gr.Button
    export_files: gr.File
    sheet: gr.Image
    # hidden: the open board, the selected shot, the shots' ids in gallery order; two API-only buttons
    board_id: gr.Textbox
    shot_id: gr.Textbox
    shot_ids: gr.State
    open_btn: gr.Button
    pick_btn: gr.Button
    # made outside the tab
    model_picker: gr.Dropdown
    session: gr.State

    @property
    def shot_buttons(self) -> list:
        """The buttons that act on the selected shot (greyed out while none is)."""
        return [self.approve_btn, self.reroll_btn, self.repreview_btn, self.save_btn, self.dup_btn, self.up_btn,
                self.down_btn, self.del_btn]

    @property
    def editor(self) -> list:
        return [self.ed_title, self.ed_mode, self.ed_prompt, self.ed_seed, self.ed_frames, self.ed_image,
                self.ed_video, self.ed_continues, self.ed_loras, self.shot_video, *self.shot_buttons]

    @property
    def board_view(self) -> list:
        return [self.board_dd, self.board_id, self.name_box, self.prev_pol, self.fin_pol, self.board_model,
                self.gallery, self.table, self.shot_ids, self.finals_note]

    @property
    def outs(self) -> list:
        """What most events update: the board, the selected shot's editor, the status line."""
        return [*self.board_view, self.shot_id, *self.editor, self.status]

    @property
    def run_outs(self) -> list:
        return [*self.outs, self.preview_btn, self.finals_btn, self.stop_btn, self.progress_bar]

    @property
    def selection(self) -> list:
        """The inputs of every event about the selected shot."""
        return [self.board_id, self.shot_id, self.session]

    @property
    def shot_form(self) -> list:
        return [self.board_id, self.shot_id, self.ed_mode, self.ed_prompt, self.ed_seed, self.ed_frames,
                self.ed_image, self.ed_video, self.session, self.ed_continues, self.ed_loras]


# ---- layout ------------------------------------------------------------------------------------
def layout(ui: BoardViews, model_picker: gr.Dropdown, session: gr.State) -> BoardComponents:
    """The tab's components, in a board column (left) and a shot column (right)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=6, min_width=420):
            left = _board_column(ui)
        with gr.Column(scale=4, min_width=340):
            right = _shot_column(ui)
    hidden = {"board_id": gr.Textbox(visible=False, elem_id="board-id"),
              "shot_id": gr.Textbox(visible=False, elem_id="shot-id"),
              "shot_ids": gr.State([]),
              "open_btn": gr.Button(visible=False),  # for scripts and tests: open a board by id
              "pick_btn": gr.Button(visible=False)}  # for scripts and tests: select a shot by id
    return BoardComponents(**left, **right, **hidden, model_picker=model_picker, session=session)


def _board_column(ui: BoardViews) -> dict:
    c = {}
    policy_choices = ui.policy_choices()
    default_preview, default_final = default_policies(ui.studio)
    with gr.Row(equal_height=False, elem_id="board-bar"):
        c["board_dd"] = gr.Dropdown(choices=[], value=None, label="Board", scale=3, min_width=200,
                                    elem_id="board-picker", info="Boards are saved: they survive a restart.")
        c["new_name"] = gr.Textbox(label="New board", placeholder="e.g. Circles, take 2", scale=2, min_width=160,
                                   elem_id="board-new-name")
        c["new_btn"] = gr.Button("+ New board", scale=1, min_width=110, elem_id="board-new", variant="secondary")
    with gr.Accordion("Board settings", open=False, elem_id="board-settings"):
        with gr.Row():
            c["name_box"] = gr.Textbox(label="Name", scale=3, elem_id="board-name")
            c["rename_btn"] = gr.Button("Rename", size="sm", scale=1, min_width=80)
        with gr.Row():
            c["prev_pol"] = gr.Dropdown(policy_choices, value=default_preview, label="Preview budget",
                                        info="Policy for Preview all", elem_id="board-preview-policy")
            c["fin_pol"] = gr.Dropdown(policy_choices, value=default_final, label="Final budget",
                                       info="Policy for Render finals", elem_id="board-final-policy")
            c["board_model"] = gr.Dropdown([("Studio default", "")] + [(i, i) for i in ui.studio.registry.ids()],
                                           value="", label="Model", elem_id="board-model")
        with gr.Row():
            c["delete_btn"] = gr.Button("Delete board…", variant="stop", size="sm", scale=0, min_width=130)
            c["confirm_btn"] = gr.Button("Yes, delete the board (renders stay in History)", variant="stop",
                                         size="sm", visible=False, elem_id="board-confirm-delete")
    c["gallery"] = gr.Gallery(label="Shots", show_label=True, columns=GALLERY_COLUMNS, height=gallery_height(0),
                              object_fit="contain", allow_preview=False, fit_columns=False, elem_id="board-gallery",
                              elem_classes=["pixelated"])
    with gr.Row():
        c["preview_btn"] = gr.Button("▶ Preview all", variant="primary", elem_id="board-preview-all", scale=2)
        c["finals_btn"] = gr.Button("★ Render finals", variant="secondary", elem_id="board-finals", scale=2)
        c["stop_btn"] = gr.Button("Cancel", variant="stop", interactive=False, elem_id="board-cancel", scale=1)
    c["progress_bar"] = gr.HTML("", elem_id="board-progress", padding=False)
    c["status"] = gr.Markdown(EMPTY_STATUS, elem_id="board-status")
    c["finals_note"] = gr.Markdown("", elem_id="board-finals-note")
    c["table"] = gr.Dataframe(value=pd.DataFrame(columns=COLUMNS), interactive=False, wrap=True,
                              elem_id="board-shots", label="Shots (click a row to edit)", show_label=True,
                              column_widths=["5%", "33%", "7%", "14%", "10%", "5%", "13%", "13%"])
    return c


def _shot_column(ui: BoardViews) -> dict:
    c = {}
    c["shot_video"] = gr.Video(label="Selected shot", interactive=False, autoplay=True, loop=True, height=260,
                               elem_id="shot-video", elem_classes=["pixelated"], buttons=["download"])
    with gr.Row():
        c["approve_btn"] = gr.Button("✓ Approve", size="sm", interactive=False, elem_id="shot-approve")
        c["reroll_btn"] = gr.Button("New seed + preview", size="sm", interactive=False, elem_id="shot-reroll")
        c["repreview_btn"] = gr.Button("↻ Re-preview", size="sm", interactive=False, elem_id="shot-repreview")
    c["ed_title"] = gr.Markdown("**New shot** · write a prompt and press **+ Add shot**", elem_id="shot-title")
    c["ed_mode"] = gr.Radio(MODE_CHOICES, value="t2v", label="Mode", elem_id="shot-mode")
    c["ed_prompt"] = gr.Textbox(label="Prompt", lines=2, max_lines=6, elem_id="shot-prompt",
                                placeholder="e.g. a red circle moving left on a black background")
    with gr.Row():
        c["ed_seed"] = gr.Number(value=None, precision=0, minimum=0, label="Seed", min_width=120,
                                 info="New shots get a random one")
        c["ed_frames"] = gr.Dropdown(ui.frame_choices(None), value=DEFAULT_FRAMES, label="Length", min_width=160)
    c["ed_image"] = gr.Image(label="First frame", type="filepath", sources=["upload", "clipboard"], height=160,
                             visible=False, elem_id="shot-image")
    c["ed_video"] = gr.Video(label="Clip to continue", sources=["upload"], height=160, visible=False,
                             elem_id="shot-input-video")
    c["ed_continues"] = gr.Checkbox(False, label="Continue from the previous shot", elem_id="shot-continues",
                                    info="Starts where the previous shot's render ends: its last frames (V2V, T2V) "
                                         "or its last frame (I2V)")
    c["ed_loras"] = gr.Textbox(label="LoRAs (file:strength, comma separated)", elem_id="shot-loras",
                               placeholder="e.g. ink.safetensors:0.8, grain.safetensors")
    with gr.Row():
        c["add_btn"] = gr.Button("+ Add shot", variant="primary", size="sm", elem_id="shot-add")
        c["save_btn"] = gr.Button("Save changes", size="sm", interactive=False, elem_id="shot-save")
        c["dup_btn"] = gr.Button("Duplicate", size="sm", interactive=False, elem_id="shot-duplicate")
    with gr.Row():
        c["up_btn"] = gr.Button("↑ Earlier", size="sm", interactive=False, elem_id="shot-up")
        c["down_btn"] = gr.Button("↓ Later", size="sm", interactive=False, elem_id="shot-down")
        c["del_btn"] = gr.Button("Delete shot", size="sm", variant="stop", interactive=False, elem_id="shot-delete")
    with gr.Accordion("Export", open=True):
        gr.Markdown("Contact sheet (a row of frames per shot), the approved finals joined into one mp4, "
                    "and the board as JSON with every parameter and budget used.", elem_classes=["hint"])
        c["export_btn"] = gr.Button("⇩ Export board", size="sm", elem_id="board-export")
        c["export_files"] = gr.File(label="Downloads", file_count="multiple", interactive=False, visible=False,
                                    elem_id="board-downloads")
        c["sheet"] = gr.Image(label="Contact sheet", interactive=False, visible=False, elem_id="board-sheet",
                              buttons=["download", "fullscreen"])
    return c


# ---- events ------------------------------------------------------------------------------------
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


class BoardTab:
    """The tab's event handlers. Each reads the session's board through ``ui`` (BoardViews) and returns updates
    keyed by the components in ``c``; ``wire`` connects them, in the order the app's API lists them."""

    def __init__(self, ui: BoardViews, c: BoardComponents):
        self.ui = ui
        self.studio = ui.studio
        self.c = c
        self.default_preview, self.default_final = default_policies(ui.studio)

    # ---- view builders -----------------------------------------------------------------------
    def view(self, sid, bid, sel=None, text=None, open_latest=True, with_editor=True) -> dict:
        """Everything about the board (picker, settings, thumbnails, table) plus the editor for ``sel``."""
        ui, c = self.ui, self.c
        board = ui.board(bid, sid)
        choices = ui.board_choices(sid)
        if board is None and open_latest and choices:
            board = ui.board(choices[0][1], sid)
        out = {
            c.board_dd: gr.Dropdown(choices=choices, value=board.id if board else None),
            c.board_id: board.id if board else "",
            c.name_box: board.name if board else "",
            c.prev_pol: board.preview_policy if board else self.default_preview,
            c.fin_pol: board.final_policy if board else self.default_final,
            c.board_model: (board.model or "") if board else "",
            c.gallery: gr.Gallery(value=ui.gallery(board), height=gallery_height(len(board.shots) if board else 0)),
            c.table: ui.table(board),
            c.shot_ids: [s.id for s in board.shots] if board else [],
            c.finals_note: ui.finals_note(board),
        }
        shot = None
        if board and sel:
            shot = next((s for s in board.shots if s.id == sel), None)
        if with_editor:
            out.update(self.edit(board, shot))
        if text is not None:
            out[c.status] = text
        elif board is None:
            out[c.status] = EMPTY_STATUS
        return out

    def edit(self, board, shot) -> dict:
        """The editor (and player) for a shot, or a blank 'new shot' form."""
        c = self.c
        frames = gr.Dropdown(choices=self.ui.frame_choices(board),
                             value=(shot.frames if shot and shot.frames else DEFAULT_FRAMES))
        active = {b: gr.Button(interactive=shot is not None) for b in c.shot_buttons}
        if shot is None:
            return {c.shot_id: "", c.ed_title: "**New shot** · write a prompt and press **+ Add shot**",
                    c.ed_mode: "t2v", c.ed_prompt: "", c.ed_seed: new_seed(), c.ed_frames: frames,
                    c.ed_image: gr.Image(value=None, visible=False), c.ed_video: gr.Video(value=None, visible=False),
                    c.ed_continues: False, c.ed_loras: "",
                    c.shot_video: gr.Video(value=None, label="Selected shot"),
                    **active, c.approve_btn: gr.Button("✓ Approve", interactive=False)}
        stage, row = self.ui.latest(shot)
        allowed = guard.roots(self.studio)
        video = guard.servable(row.get("video_path"), allowed) if row else None
        label = (f"Shot {shot.position + 1} · {stage} · {self.ui.budget_text(row)}" if row
                 else f"Shot {shot.position + 1} · not rendered yet")
        image = guard.servable(shot.image, allowed) if shot.image else None
        clip = guard.servable(shot.video, allowed) if shot.video else None
        title = (f"**Shot {shot.position + 1} of {len(board.shots)}**" + (" · ✓ approved" if shot.approved else "")
                 + " · edit and **Save changes** (its renders are cleared), or **+ Add shot** to add a copy")
        return {c.shot_id: shot.id, c.ed_title: title, c.ed_mode: shot.mode, c.ed_prompt: shot.prompt,
                c.ed_seed: shot.seed, c.ed_frames: frames,
                c.ed_image: gr.Image(value=str(image) if image else None, visible=shot.mode == "i2v"),
                c.ed_video: gr.Video(value=str(clip) if clip else None, visible=shot.mode == "v2v"),
                c.ed_continues: shot.continues, c.ed_loras: loras_text(shot.loras),
                c.shot_video: gr.Video(value=str(video) if video else None, label=label),
                **active, c.approve_btn: gr.Button("✗ Unapprove" if shot.approved else "✓ Approve", interactive=True)}

    def fail(self, exc, sid, bid, sel=None) -> dict:
        message = str(exc)
        gr.Warning(message)
        return self.view(sid, bid, sel, text=f"⚠ {message}", with_editor=False)  # keep what the artist typed

    # ---- boards ------------------------------------------------------------------------------
    def on_open(self, bid, session_v):
        return self.view(self.ui.sid(session_v), bid)

    def on_create(self, name, model_v, session_v):
        sid = self.ui.sid(session_v)
        board = self.ui.boards.create(name or f"Board {time.strftime('%H:%M')}", model=model_v or None,
                                      preview_policy=self.default_preview, final_policy=self.default_final,
                                      session=sid)
        return {**self.view(sid, board.id, text=f"Created **{board.name}**. Add shots on the right."),
                self.c.new_name: ""}

    def on_rename(self, bid, name, session_v):
        sid = self.ui.sid(session_v)
        if self.ui.board(bid, sid) is None:
            return self.view(sid, bid)
        self.ui.boards.update(bid, name=(name or "").strip() or "Untitled board")
        return self.view(sid, bid, text="Renamed.")

    def on_settings(self, bid, preview_v, final_v, model_v, session_v):
        sid = self.ui.sid(session_v)
        board = self.ui.board(bid, sid)
        if board is None:
            return gr.skip()
        self.ui.boards.update(bid, preview_policy=preview_v or board.preview_policy,
                              final_policy=final_v or board.final_policy, model=model_v or None)
        return self.view(sid, bid, text=f"Budgets: previews at **{preview_v}**, finals at **{final_v}**.")

    def on_delete(self, bid, session_v):
        sid = self.ui.sid(session_v)
        board = self.ui.board(bid, sid)
        hide = {self.c.confirm_btn: gr.Button(visible=False)}
        if board is None:
            return {**self.view(sid, None), **hide}
        self.ui.boards.delete(board.id)
        return {**self.view(sid, None, text=f"Deleted board **{board.name}**. Its renders are still in History."),
                **hide}

    # ---- shots -------------------------------------------------------------------------------
    def shot_fields(self, mode_v, prompt_v, seed_v, frames_v, image_v, video_v, sid, continues_v=False,
                    loras_v="") -> dict:
        prompt_v = (prompt_v or "").strip()
        if not prompt_v:
            raise StudioError("Write a prompt for the shot first.")
        if mode_v == "i2v" and not image_v and not continues_v:
            raise StudioError("An image-to-video shot needs a first frame: upload an image.")
        if mode_v == "v2v" and not video_v and not continues_v:
            raise StudioError("A video-to-video shot needs a clip to continue: upload a video.")
        return {"mode": mode_v or "t2v", "prompt": prompt_v,
                "seed": None if seed_v in (None, "") else int(seed_v),
                "frames": int(frames_v) if frames_v not in (None, "", DEFAULT_FRAMES) else None,
                "image": self.ui.keep_input(image_v, sid) if mode_v == "i2v" and image_v else None,
                "video": self.ui.keep_input(video_v, sid) if mode_v == "v2v" and video_v else None,
                "continues": bool(continues_v), "loras": parse_loras(loras_v)}

    def on_add(self, bid, sel, mode_v, prompt_v, seed_v, frames_v, image_v, video_v, session_v, continues_v=False,
               loras_v=None):
        sid = self.ui.sid(session_v)
        try:
            board = self.ui.board(bid, sid)
            made = None
            if board is None:  # no board yet: make one, so the first shot is one click, and say so
                board = made = self.ui.boards.create(f"Board {time.strftime('%H:%M')}", model=None, session=sid,
                                                     preview_policy=self.default_preview,
                                                     final_policy=self.default_final)
            fields = self.shot_fields(mode_v, prompt_v, seed_v, frames_v, image_v, video_v, sid, continues_v,
                                      loras_v)
            shot = self.ui.boards.add_shot(board.id, **fields)
        except StudioError as exc:
            return self.fail(exc, sid, bid, sel)
        # the form goes back to a blank shot with a fresh seed, ready for the next one
        new_board = (f"No board was open, so a new one, **{made.name}**, holds it (rename it with the name box "
                     "and New board, or pick another board). ") if made else ""
        return self.view(sid, board.id, None, text=f"Added shot {shot.position + 1} (seed {shot.seed}). {new_board}"
                                                   "Write the next, or click a shot to edit it.")

    def on_save(self, bid, sel, mode_v, prompt_v, seed_v, frames_v, image_v, video_v, session_v, continues_v=False,
                loras_v=None):
        sid = self.ui.sid(session_v)
        try:
            board = self.ui.board(bid, sid)
            if board is None or not sel:
                raise StudioError("Select a shot to change (click its thumbnail or row).")
            fields = self.shot_fields(mode_v, prompt_v, seed_v, frames_v, image_v, video_v, sid, continues_v,
                                      loras_v)
            if fields["seed"] is None:
                fields["seed"] = board.shot(sel).seed
            before = board.shot(sel)
            shot = self.ui.boards.update_shot(sel, **fields)
        except StudioError as exc:
            return self.fail(exc, sid, bid, sel)
        changed = any(getattr(before, k) != getattr(shot, k) for k in fields)
        return self.view(sid, bid, sel, text=(f"Saved shot {shot.position + 1}." + (
            " Its renders no longer match: press **↻ Re-preview**." if changed else " Nothing changed.")))

    def shot_action(self, action):
        """A handler for a button acting on the selected shot: ``action(board, shot)`` returns the shot to
        select next and the status text."""
        def handler(bid, sel, session_v):
            sid = self.ui.sid(session_v)
            board = self.ui.board(bid, sid)
            if board is None or not sel or not any(s.id == sel for s in board.shots):
                return self.view(sid, bid, text="Select a shot first (click its thumbnail or row).")
            try:
                new_sel, text = action(board, board.shot(sel))
            except StudioError as exc:
                return self.fail(exc, sid, bid, sel)
            return self.view(sid, bid, new_sel, text=text)
        return handler

    def do_duplicate(self, board, shot):
        copy = self.ui.boards.duplicate_shot(shot.id)
        return copy.id, f"Duplicated shot {shot.position + 1} as shot {copy.position + 1} (same seed)."

    def do_move(self, delta):
        def action(board, shot):
            target = max(0, min(len(board.shots) - 1, shot.position + delta))
            self.ui.boards.move_shot(shot.id, target)
            return shot.id, f"Shot moved to position {target + 1}."
        return action

    def do_delete(self, board, shot):
        self.ui.boards.delete_shot(shot.id)
        return None, f"Deleted shot {shot.position + 1}. Its renders are still in History."

    def do_approve(self, board, shot):
        shot = self.ui.boards.approve(shot.id, not shot.approved)
        preview = self.ui.rendered(shot, "preview")
        if preview:  # an approved preview is a kept render: it counts in History's stars and in Analytics
            self.studio.history.set_accepted(preview["id"], shot.approved)
        return shot.id, (f"Shot {shot.position + 1} approved (its preview is starred in History): "
                         "**Render finals** will render it."
                         if shot.approved else f"Shot {shot.position + 1} no longer approved.")

    @staticmethod
    def on_mode(mode_v):
        return gr.Image(visible=mode_v == "i2v"), gr.Video(visible=mode_v == "v2v")

    def on_pick(self, bid, ids_v, session_v, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else (evt.index or [0])[0]
        sel = ids_v[index] if isinstance(index, int) and 0 <= index < len(ids_v) else None
        sid = self.ui.sid(session_v)
        board = self.ui.board(bid, sid)
        shot = next((s for s in board.shots if s.id == sel), None) if board else None
        return self.edit(board, shot)

    # ---- batches -------------------------------------------------------------------------------
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
        n = batch.board.shot(ev.shot_id).position + 1
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
            fresh = self.ui.board(batch.board.id, sid)
            return {c.gallery: self.ui.gallery(fresh), c.table: self.ui.table(fresh),
                    c.finals_note: self.ui.finals_note(fresh), c.shot_video: gr.Video(value=e.video_path, label=label),
                    c.status: f"… {batch.intro}  \n✓ {lead} done · {fmt.seconds(elapsed)}{cap}"}
        elif e.kind == "failed":
            gr.Warning(f"Shot {n}: {e.message}")
        return None

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
        return {**self.view(sid, batch.board.id, sel, text=text, with_editor=sel is not None), **self.buttons(False)}

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

    # ---- export and page load ----------------------------------------------------------------
    def on_export(self, bid, session_v):
        sid = self.ui.sid(session_v)
        board = self.ui.board(bid, sid)
        if board is None:
            return gr.File(value=None, visible=False), gr.Image(visible=False), "Create or pick a board first."
        out_dir = Path(self.studio.settings.renders_dir) / (sid or "") / "exports" / board.id
        base = _slug(board.name)
        out_dir.mkdir(parents=True, exist_ok=True)
        files, notes = [], []
        runner = self.ui.runner
        runner.export_json(board.id, out_dir / f"{base}.json")
        files.append(str(out_dir / f"{base}.json"))
        sheet_path = None
        try:
            sheet_path = str(runner.export_contact_sheet(board.id, out_dir / f"{base}-contact-sheet.png"))
            files.insert(0, sheet_path)
        except StudioError as exc:
            notes.append(f"contact sheet: {exc}")
        try:
            files.insert(1 if sheet_path else 0, str(runner.export_finals(board.id, out_dir / f"{base}-finals.mp4")))
        except StudioError as exc:
            notes.append(f"finals: {exc}")
        text = f"Exported {len(files)} file{'s' if len(files) != 1 else ''} of **{board.name}**."
        if notes:
            text += "  \n" + "  \n".join(f"Not yet: {n}" for n in notes)
        return gr.File(value=files, visible=True), gr.Image(value=sheet_path, visible=sheet_path is not None), text

    def on_show(self, bid, sel, session_v):
        """Tab opened / page loaded: this session's boards, the open one (else the latest) refreshed."""
        out = self.view(self.ui.sid(session_v), bid, sel, with_editor=False)  # the editor keeps what is typed there
        if not sel:
            out[self.c.ed_seed] = new_seed()
        return out

    # ---- wiring --------------------------------------------------------------------------------
    def wire(self) -> None:
        """Connect every event (the order fixes the app's event list, which scripts and tests use)."""
        self._wire_boards()
        self._wire_shots()
        self._wire_batches()
        c = self.c
        c.export_btn.click(self.on_export, [c.board_id, c.session], [c.export_files, c.sheet, c.status],
                           api_name="board_export")

    def _wire_boards(self) -> None:
        c, outs = self.c, self.c.outs
        c.board_dd.input(self.on_open, [c.board_dd, c.session], outs, api_visibility="private")
        create_inputs = [c.new_name, c.model_picker, c.session]
        c.new_btn.click(self.on_create, create_inputs, [*outs, c.new_name], api_name="board_create")
        c.new_name.submit(self.on_create, create_inputs, [*outs, c.new_name], api_visibility="private")
        c.rename_btn.click(self.on_rename, [c.board_id, c.name_box, c.session], outs, api_name="board_rename")
        settings_inputs = [c.board_id, c.prev_pol, c.fin_pol, c.board_model, c.session]
        c.prev_pol.input(self.on_settings, settings_inputs, outs, api_name="board_settings")
        for control in (c.fin_pol, c.board_model):
            control.input(self.on_settings, settings_inputs, outs, api_visibility="private")
        c.delete_btn.click(lambda: gr.Button(visible=True), None, c.confirm_btn, queue=False,
                           api_visibility="private")
        c.confirm_btn.click(self.on_delete, [c.board_id, c.session], [*outs, c.confirm_btn], api_name="board_delete")
        c.open_btn.click(self.on_open, [c.board_id, c.session], outs, api_name="board_open")

    def _wire_shots(self) -> None:
        c, outs = self.c, self.c.outs
        actions = [(c.dup_btn, self.do_duplicate, "shot_duplicate"), (c.up_btn, self.do_move(-1), "shot_up"),
                   (c.down_btn, self.do_move(1), "shot_down"), (c.del_btn, self.do_delete, "shot_delete"),
                   (c.approve_btn, self.do_approve, "shot_approve")]
        for btn, action, name in actions:
            btn.click(self.shot_action(action), c.selection, outs, api_name=name)
        c.add_btn.click(self.on_add, c.shot_form, outs, api_name="shot_add")
        c.save_btn.click(self.on_save, c.shot_form, outs, api_name="shot_save")
        c.ed_mode.change(self.on_mode, c.ed_mode, [c.ed_image, c.ed_video], queue=False, api_visibility="private")
        pick_outputs = [c.shot_id, *c.editor]
        c.gallery.select(self.on_pick, [c.board_id, c.shot_ids, c.session], pick_outputs, api_visibility="private")
        c.table.select(self.on_pick, [c.board_id, c.shot_ids, c.session], pick_outputs, api_visibility="private")
        c.pick_btn.click(lambda bid, sel, s: self.view(self.ui.sid(s), bid, sel), c.selection, outs,
                         api_name="shot_select")

    def _wire_batches(self) -> None:
        c = self.c
        batch = dict(concurrency_id="render", show_progress="minimal", show_progress_on=[c.progress_bar])
        c.preview_btn.click(self.on_preview_all, c.selection, c.run_outs, api_name="board_preview_all", **batch)
        c.finals_btn.click(self.on_finals, c.selection, c.run_outs, api_name="board_finals", **batch)
        c.repreview_btn.click(self.on_repreview, c.selection, c.run_outs, api_name="shot_repreview", **batch)
        c.reroll_btn.click(self.on_reroll, c.selection, c.run_outs, api_name="shot_reroll", **batch)
        c.stop_btn.click(lambda s: "■ Stopping after the current step…" if cancel(s) else gr.skip(), c.session,
                         c.status, queue=False, api_name="board_cancel")


def build(studio, model_picker: gr.Dropdown, session: gr.State) -> dict:
    """The Storyboard tab: its components, then its events. Returns what the app wires on page load."""
    ui = BoardViews(studio)
    tab = BoardTab(ui, layout(ui, model_picker, session))
    tab.wire()
    c = tab.c
    return {"refresh": tab.on_show, "inputs": [c.board_id, c.shot_id, c.session], "outputs": c.outs, "ui": ui}
