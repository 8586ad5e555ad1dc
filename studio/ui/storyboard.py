"""The Storyboard tab: boards of shots, "Preview all" at a cheap budget, approve, "Render finals", export.

A board is picked (or created) at the top; its shots show as a strip of thumbnails (the latest preview
or final of each) and a table of parameters. Clicking a shot loads it into the editor on the right,
where it can be changed, approved, re-rolled and re-previewed. Batches run through ``Storyboards.run``
(engine side), shot by shot, each thumbnail appearing as it finishes; finals skip shots already done,
so a batch stopped by a restart carries on. Space mode: a session sees only its own boards.
"""

from __future__ import annotations

import random
import re
import shutil
import time
import uuid
from pathlib import Path

import gradio as gr
import pandas as pd

from ..errors import StudioError
from ..registry import MODES  # noqa: F401
from ..render import MAX_SEED
from ..storyboard import Storyboards
from . import format as fmt
from . import guard, spacemode
from .history import placeholder
from .session import cancel, new_cancel

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


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name or "board").strip("-").lower()[:40] or "board"


class BoardUI:
    """Board reads and view-building for one studio (kept apart from the layout so tests can call it)."""

    def __init__(self, studio, runner: Storyboards | None = None):
        self.studio = studio
        self.runner = runner or Storyboards(studio)
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
            prompt = shot.prompt if len(shot.prompt) <= 70 else shot.prompt[:68] + "…"
            rows.append([shot.position + 1, prompt, fmt.MODE_SHORT.get(shot.mode, shot.mode), shot.seed,
                         shot.frames or "—", "✓" if shot.approved else "",
                         self.budget_text(self.rendered(shot, "preview")),
                         self.budget_text(self.rendered(shot, "final"))])
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


def build(studio, model_picker: gr.Dropdown, session: gr.State) -> dict:
    ui = BoardUI(studio)
    policy_choices = ui.policy_choices()
    names = studio.policies.names()
    default_preview = "preview" if "preview" in names else names[0]
    default_final = "final" if "final" in names else names[-1]

    with gr.Row(equal_height=False):
        with gr.Column(scale=6, min_width=420):
            with gr.Row(equal_height=False, elem_id="board-bar"):
                board_dd = gr.Dropdown(choices=[], value=None, label="Board", scale=3, min_width=200,
                                       elem_id="board-picker", info="Boards are saved: they survive a restart.")
                new_name = gr.Textbox(label="New board", placeholder="e.g. Circles, take 2", scale=2, min_width=160,
                                      elem_id="board-new-name")
                new_btn = gr.Button("+ New board", scale=1, min_width=110, elem_id="board-new", variant="secondary")
            with gr.Accordion("Board settings", open=False, elem_id="board-settings"):
                with gr.Row():
                    name_box = gr.Textbox(label="Name", scale=3, elem_id="board-name")
                    rename_btn = gr.Button("Rename", size="sm", scale=1, min_width=80)
                with gr.Row():
                    prev_pol = gr.Dropdown(policy_choices, value=default_preview, label="Preview budget",
                                           info="Policy for Preview all", elem_id="board-preview-policy")
                    fin_pol = gr.Dropdown(policy_choices, value=default_final, label="Final budget",
                                          info="Policy for Render finals", elem_id="board-final-policy")
                    board_model = gr.Dropdown([("Studio default", "")] + [(i, i) for i in studio.registry.ids()],
                                              value="", label="Model", elem_id="board-model")
                with gr.Row():
                    delete_btn = gr.Button("Delete board…", variant="stop", size="sm", scale=0, min_width=130)
                    confirm_btn = gr.Button("Yes, delete the board (renders stay in History)", variant="stop",
                                            size="sm", visible=False, elem_id="board-confirm-delete")
            gallery = gr.Gallery(label="Shots", show_label=True, columns=GALLERY_COLUMNS, height=gallery_height(0),
                                 object_fit="contain",
                                 allow_preview=False, fit_columns=False, elem_id="board-gallery",
                                 elem_classes=["pixelated"])
            with gr.Row():
                preview_btn = gr.Button("▶ Preview all", variant="primary", elem_id="board-preview-all", scale=2)
                finals_btn = gr.Button("★ Render finals", variant="secondary", elem_id="board-finals", scale=2)
                stop_btn = gr.Button("Cancel", variant="stop", interactive=False, elem_id="board-cancel", scale=1)
            progress_bar = gr.HTML("", elem_id="board-progress", padding=False)
            status = gr.Markdown(EMPTY_STATUS, elem_id="board-status")
            finals_note = gr.Markdown("", elem_id="board-finals-note")
            table = gr.Dataframe(value=pd.DataFrame(columns=COLUMNS), interactive=False, wrap=True,
                                 elem_id="board-shots", label="Shots (click a row to edit)", show_label=True,
                                 column_widths=["5%", "33%", "7%", "14%", "10%", "5%", "13%", "13%"])
        with gr.Column(scale=4, min_width=340):
            shot_video = gr.Video(label="Selected shot", interactive=False, autoplay=True, loop=True, height=260,
                                  elem_id="shot-video", elem_classes=["pixelated"], buttons=["download"])
            with gr.Row():
                approve_btn = gr.Button("✓ Approve", size="sm", interactive=False, elem_id="shot-approve")
                reroll_btn = gr.Button("New seed + preview", size="sm", interactive=False, elem_id="shot-reroll")
                repreview_btn = gr.Button("↻ Re-preview", size="sm", interactive=False, elem_id="shot-repreview")
            ed_title = gr.Markdown("**New shot** · write a prompt and press **+ Add shot**", elem_id="shot-title")
            ed_mode = gr.Radio(MODE_CHOICES, value="t2v", label="Mode", elem_id="shot-mode")
            ed_prompt = gr.Textbox(label="Prompt", lines=2, max_lines=6, elem_id="shot-prompt",
                                   placeholder="e.g. a red circle moving left on a black background")
            with gr.Row():
                ed_seed = gr.Number(value=None, precision=0, minimum=0, label="Seed", min_width=120,
                                    info="New shots get a random one")
                ed_frames = gr.Dropdown(ui.frame_choices(None), value=DEFAULT_FRAMES, label="Length", min_width=160)
            ed_image = gr.Image(label="First frame", type="filepath", sources=["upload", "clipboard"], height=160,
                                visible=False, elem_id="shot-image")
            ed_video = gr.Video(label="Clip to continue", sources=["upload"], height=160, visible=False,
                                elem_id="shot-input-video")
            with gr.Row():
                add_btn = gr.Button("+ Add shot", variant="primary", size="sm", elem_id="shot-add")
                save_btn = gr.Button("Save changes", size="sm", interactive=False, elem_id="shot-save")
                dup_btn = gr.Button("Duplicate", size="sm", interactive=False, elem_id="shot-duplicate")
            with gr.Row():
                up_btn = gr.Button("↑ Earlier", size="sm", interactive=False, elem_id="shot-up")
                down_btn = gr.Button("↓ Later", size="sm", interactive=False, elem_id="shot-down")
                del_btn = gr.Button("Delete shot", size="sm", variant="stop", interactive=False, elem_id="shot-delete")
            with gr.Accordion("Export", open=True):
                gr.Markdown("Contact sheet (a row of frames per shot), the approved finals joined into one mp4, "
                            "and the board as JSON with every parameter and budget used.", elem_classes=["hint"])
                export_btn = gr.Button("⇩ Export board", size="sm", elem_id="board-export")
                export_files = gr.File(label="Downloads", file_count="multiple", interactive=False, visible=False,
                                       elem_id="board-downloads")
                sheet = gr.Image(label="Contact sheet", interactive=False, visible=False, elem_id="board-sheet",
                                 buttons=["download", "fullscreen"])

    board_id = gr.Textbox(visible=False, elem_id="board-id")
    shot_id = gr.Textbox(visible=False, elem_id="shot-id")
    shot_ids = gr.State([])
    shot_buttons = [approve_btn, reroll_btn, repreview_btn, save_btn, dup_btn, up_btn, down_btn, del_btn]
    editor = [ed_title, ed_mode, ed_prompt, ed_seed, ed_frames, ed_image, ed_video, shot_video, *shot_buttons]
    board_view = [board_dd, board_id, name_box, prev_pol, fin_pol, board_model, gallery, table, shot_ids, finals_note]
    outs = [*board_view, shot_id, *editor, status]

    # ---- view builders ---------------------------------------------------------------------
    def view(sid, bid, sel=None, text=None, open_latest=True, with_editor=True) -> dict:
        """Everything about the board (picker, settings, thumbnails, table) plus the editor for ``sel``."""
        board = ui.board(bid, sid)
        choices = ui.board_choices(sid)
        if board is None and open_latest and choices:
            board = ui.board(choices[0][1], sid)
        out = {
            board_dd: gr.Dropdown(choices=choices, value=board.id if board else None),
            board_id: board.id if board else "",
            name_box: board.name if board else "",
            prev_pol: board.preview_policy if board else default_preview,
            fin_pol: board.final_policy if board else default_final,
            board_model: (board.model or "") if board else "",
            gallery: gr.Gallery(value=ui.gallery(board), height=gallery_height(len(board.shots) if board else 0)),
            table: ui.table(board),
            shot_ids: [s.id for s in board.shots] if board else [],
            finals_note: ui.finals_note(board),
        }
        shot = None
        if board and sel:
            shot = next((s for s in board.shots if s.id == sel), None)
        if with_editor:
            out.update(edit(board, shot))
        if text is not None:
            out[status] = text
        elif board is None:
            out[status] = EMPTY_STATUS
        return out

    def edit(board, shot) -> dict:
        """The editor (and player) for a shot, or a blank 'new shot' form."""
        frames = gr.Dropdown(choices=ui.frame_choices(board),
                             value=(shot.frames if shot and shot.frames else DEFAULT_FRAMES))
        active = {b: gr.Button(interactive=shot is not None) for b in shot_buttons}
        if shot is None:
            return {shot_id: "", ed_title: "**New shot** · write a prompt and press **+ Add shot**",
                    ed_mode: "t2v", ed_prompt: "", ed_seed: new_seed(), ed_frames: frames,
                    ed_image: gr.Image(value=None, visible=False), ed_video: gr.Video(value=None, visible=False),
                    shot_video: gr.Video(value=None, label="Selected shot"),
                    **active, approve_btn: gr.Button("✓ Approve", interactive=False)}
        stage, row = ui.latest(shot)
        allowed = guard.roots(studio)
        video = guard.servable(row.get("video_path"), allowed) if row else None
        label = (f"Shot {shot.position + 1} · {stage} · {ui.budget_text(row)}" if row
                 else f"Shot {shot.position + 1} · not rendered yet")
        image = guard.servable(shot.image, allowed) if shot.image else None
        clip = guard.servable(shot.video, allowed) if shot.video else None
        title = (f"**Shot {shot.position + 1} of {len(board.shots)}**" + (" · ✓ approved" if shot.approved else "")
                 + " · edit and **Save changes** (its renders are cleared), or **+ Add shot** to add a copy")
        return {shot_id: shot.id, ed_title: title, ed_mode: shot.mode, ed_prompt: shot.prompt, ed_seed: shot.seed,
                ed_frames: frames,
                ed_image: gr.Image(value=str(image) if image else None, visible=shot.mode == "i2v"),
                ed_video: gr.Video(value=str(clip) if clip else None, visible=shot.mode == "v2v"),
                shot_video: gr.Video(value=str(video) if video else None, label=label),
                **active, approve_btn: gr.Button("✗ Unapprove" if shot.approved else "✓ Approve", interactive=True)}

    def fail(exc, sid, bid, sel=None) -> dict:
        message = str(exc)
        gr.Warning(message)
        return view(sid, bid, sel, text=f"⚠ {message}", with_editor=False)  # keep what the artist typed

    # ---- boards ------------------------------------------------------------------------------
    def on_open(bid, session_v):
        return view(ui.sid(session_v), bid)

    def on_create(name, model_v, session_v):
        sid = ui.sid(session_v)
        board = ui.boards.create(name or f"Board {time.strftime('%H:%M')}", model=model_v or None,
                                 preview_policy=default_preview, final_policy=default_final, session=sid)
        return {**view(sid, board.id, text=f"Created **{board.name}**. Add shots on the right."), new_name: ""}

    def on_rename(bid, name, session_v):
        sid = ui.sid(session_v)
        if ui.board(bid, sid) is None:
            return view(sid, bid)
        ui.boards.update(bid, name=(name or "").strip() or "Untitled board")
        return view(sid, bid, text="Renamed.")

    def on_settings(bid, preview_v, final_v, model_v, session_v):
        sid = ui.sid(session_v)
        board = ui.board(bid, sid)
        if board is None:
            return gr.skip()
        ui.boards.update(bid, preview_policy=preview_v or board.preview_policy,
                         final_policy=final_v or board.final_policy, model=model_v or None)
        return view(sid, bid, text=f"Budgets: previews at **{preview_v}**, finals at **{final_v}**.")

    def on_delete(bid, session_v):
        sid = ui.sid(session_v)
        board = ui.board(bid, sid)
        if board is None:
            return {**view(sid, None), confirm_btn: gr.Button(visible=False)}
        ui.boards.delete(board.id)
        return {**view(sid, None, text=f"Deleted board **{board.name}**. Its renders are still in History."),
                confirm_btn: gr.Button(visible=False)}

    board_dd.input(on_open, [board_dd, session], outs, api_visibility="private")
    new_btn.click(on_create, [new_name, model_picker, session], [*outs, new_name], api_name="board_create")
    new_name.submit(on_create, [new_name, model_picker, session], [*outs, new_name], api_visibility="private")
    rename_btn.click(on_rename, [board_id, name_box, session], outs, api_name="board_rename")
    settings_inputs = [board_id, prev_pol, fin_pol, board_model, session]
    prev_pol.input(on_settings, settings_inputs, outs, api_name="board_settings")
    for control in (fin_pol, board_model):
        control.input(on_settings, settings_inputs, outs, api_visibility="private")
    delete_btn.click(lambda: gr.Button(visible=True), None, confirm_btn, queue=False, api_visibility="private")
    confirm_btn.click(on_delete, [board_id, session], [*outs, confirm_btn], api_name="board_delete")
    open_btn = gr.Button(visible=False)  # for scripts and tests: open a board by id
    open_btn.click(on_open, [board_id, session], outs, api_name="board_open")

    # ---- shots -------------------------------------------------------------------------------
    def shot_fields(mode_v, prompt_v, seed_v, frames_v, image_v, video_v, sid):
        prompt_v = (prompt_v or "").strip()
        if not prompt_v:
            raise StudioError("Write a prompt for the shot first.")
        if mode_v == "i2v" and not image_v:
            raise StudioError("An image-to-video shot needs a first frame: upload an image.")
        if mode_v == "v2v" and not video_v:
            raise StudioError("A video-to-video shot needs a clip to continue: upload a video.")
        return {"mode": mode_v or "t2v", "prompt": prompt_v,
                "seed": None if seed_v in (None, "") else int(seed_v),
                "frames": int(frames_v) if frames_v not in (None, "", DEFAULT_FRAMES) else None,
                "image": ui.keep_input(image_v, sid) if mode_v == "i2v" else None,
                "video": ui.keep_input(video_v, sid) if mode_v == "v2v" else None}

    shot_inputs = [board_id, shot_id, ed_mode, ed_prompt, ed_seed, ed_frames, ed_image, ed_video, session]

    def on_add(bid, sel, mode_v, prompt_v, seed_v, frames_v, image_v, video_v, session_v):
        sid = ui.sid(session_v)
        try:
            board = ui.board(bid, sid)
            if board is None:  # no board yet: make one, so the first shot is one click
                board = ui.boards.create(f"Board {time.strftime('%H:%M')}", model=None, session=sid,
                                         preview_policy=default_preview, final_policy=default_final)
            fields = shot_fields(mode_v, prompt_v, seed_v, frames_v, image_v, video_v, sid)
            shot = ui.boards.add_shot(board.id, **fields)
        except StudioError as exc:
            return fail(exc, sid, bid, sel)
        # the form goes back to a blank shot with a fresh seed, ready for the next one
        return view(sid, board.id, None, text=f"Added shot {shot.position + 1} (seed {shot.seed}). "
                                               "Write the next, or click a shot to edit it.")

    def on_save(bid, sel, mode_v, prompt_v, seed_v, frames_v, image_v, video_v, session_v):
        sid = ui.sid(session_v)
        try:
            board = ui.board(bid, sid)
            if board is None or not sel:
                raise StudioError("Select a shot to change (click its thumbnail or row).")
            fields = shot_fields(mode_v, prompt_v, seed_v, frames_v, image_v, video_v, sid)
            if fields["seed"] is None:
                fields["seed"] = board.shot(sel).seed
            before = board.shot(sel)
            shot = ui.boards.update_shot(sel, **fields)
        except StudioError as exc:
            return fail(exc, sid, bid, sel)
        changed = any(getattr(before, k) != getattr(shot, k) for k in fields)
        return view(sid, bid, sel, text=(f"Saved shot {shot.position + 1}." + (
            " Its renders no longer match: press **↻ Re-preview**." if changed else " Nothing changed.")))

    def shot_action(action):
        def handler(bid, sel, session_v):
            sid = ui.sid(session_v)
            board = ui.board(bid, sid)
            if board is None or not sel or not any(s.id == sel for s in board.shots):
                return view(sid, bid, text="Select a shot first (click its thumbnail or row).")
            try:
                new_sel, text = action(board, board.shot(sel))
            except StudioError as exc:
                return fail(exc, sid, bid, sel)
            return view(sid, bid, new_sel, text=text)
        return handler

    def do_duplicate(board, shot):
        copy = ui.boards.duplicate_shot(shot.id)
        return copy.id, f"Duplicated shot {shot.position + 1} as shot {copy.position + 1} (same seed)."

    def do_move(delta):
        def action(board, shot):
            target = max(0, min(len(board.shots) - 1, shot.position + delta))
            ui.boards.move_shot(shot.id, target)
            return shot.id, f"Shot moved to position {target + 1}."
        return action

    def do_delete(board, shot):
        ui.boards.delete_shot(shot.id)
        return None, f"Deleted shot {shot.position + 1}. Its renders are still in History."

    def do_approve(board, shot):
        shot = ui.boards.approve(shot.id, not shot.approved)
        preview = ui.rendered(shot, "preview")
        if preview:  # an approved preview is a kept render: it counts in History's stars and in Analytics
            studio.history.set_accepted(preview["id"], shot.approved)
        return shot.id, (f"Shot {shot.position + 1} approved (its preview is starred in History): "
                         "**Render finals** will render it."
                         if shot.approved else f"Shot {shot.position + 1} no longer approved.")

    actions = [(dup_btn, do_duplicate, "shot_duplicate"), (up_btn, do_move(-1), "shot_up"),
               (down_btn, do_move(1), "shot_down"), (del_btn, do_delete, "shot_delete"),
               (approve_btn, do_approve, "shot_approve")]
    for btn, action, name in actions:
        btn.click(shot_action(action), [board_id, shot_id, session], outs, api_name=name)
    add_btn.click(on_add, shot_inputs, outs, api_name="shot_add")
    save_btn.click(on_save, shot_inputs, outs, api_name="shot_save")

    def on_mode(mode_v):
        return gr.Image(visible=mode_v == "i2v"), gr.Video(visible=mode_v == "v2v")

    ed_mode.change(on_mode, ed_mode, [ed_image, ed_video], queue=False, api_visibility="private")

    def on_pick(bid, ids_v, session_v, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else (evt.index or [0])[0]
        sel = ids_v[index] if isinstance(index, int) and 0 <= index < len(ids_v) else None
        sid = ui.sid(session_v)
        board = ui.board(bid, sid)
        shot = next((s for s in board.shots if s.id == sel), None) if board else None
        return edit(board, shot)

    pick_outputs = [shot_id, *editor]
    gallery.select(on_pick, [board_id, shot_ids, session], pick_outputs, api_visibility="private")
    table.select(on_pick, [board_id, shot_ids, session], pick_outputs, api_visibility="private")
    pick_btn = gr.Button(visible=False)  # for scripts and tests: select a shot by id
    pick_btn.click(lambda bid, sel, s: view(ui.sid(s), bid, sel), [board_id, shot_id, session], outs,
                   api_name="shot_select")

    # ---- batches -------------------------------------------------------------------------------
    # updates are made inside handlers: a component built here, in the Blocks context, would be rendered
    def buttons(running: bool) -> dict:
        out = {preview_btn: gr.Button(interactive=not running), finals_btn: gr.Button(interactive=not running),
               stop_btn: gr.Button(interactive=running)}
        return out if running else {**out, progress_bar: ""}
    run_outs = [*outs, preview_btn, finals_btn, stop_btn, progress_bar]

    def run_stage(bid, stage, only, session_v, progress, before="", keep=None):
        sid = ui.sid(session_v)
        board = ui.board(bid, sid)
        if board is None:
            yield view(sid, bid, text="Create or pick a board first.")
            return
        if not board.shots:
            yield view(sid, bid, text="This board has no shots yet: add one on the right.")
            return
        todo, done = ui.runner.pending(board, stage)
        if only is not None:
            todo, done = [board.shot(s) for s in only], []
        policy_name = board.preview_policy if stage == "preview" else board.final_policy
        policy = ui.policy(policy_name)
        word = "preview" if stage == "preview" else "final"
        budget = f"**{policy_name}** ({fmt.steps_word(policy.steps)})" if policy else f"**{policy_name}**"
        if stage == "final" and not todo and not done:
            yield view(sid, bid, text="⚠ No approved shots: select a shot and press **✓ Approve** first.")
            return
        if not todo:
            yield view(sid, bid, text=f"All {len(done)} {word}s are already done: nothing to render. "
                                      "Edit or re-roll a shot to render it again.")
            return
        intro = f"{before}Rendering {len(todo)} {word}{'s' if len(todo) != 1 else ''} at {budget}"
        if done:
            intro += f"; {len(done)} already done, skipped"
        intro += "."
        yield {**buttons(True), status: f"… {intro}"}
        cancel_event = new_cancel(session_v)
        started = time.perf_counter()
        last = 0.0
        finished = []
        try:
            for ev in spacemode.board_events(ui.runner, board.id, stage, cancel_event, only, sid):
                elapsed = time.perf_counter() - started
                if ev.kind == "batch_done":
                    parts = [f"{len(ev.rendered)} rendered"]
                    if ev.skipped:
                        parts.append(f"{len(ev.skipped)} already done (skipped)")
                    if ev.failed:
                        parts.append(f"{len(ev.failed)} failed")
                    head = "■ Stopped" if ev.cancelled else "✓ Done"
                    text = f"{head}: {word}s at {budget} · " + ", ".join(parts) + f" · {fmt.seconds(elapsed)}."
                    if ev.cancelled:
                        text += " Press the button again to carry on: finished shots are kept."
                    elif stage == "preview" and not only:
                        text += " Click a shot to watch it; **✓ Approve** the keepers, then **★ Render finals**."
                    if ev.failed:
                        text += "  \n" + "  \n".join(f"⚠ Shot {board.shot(s).position + 1}: {m}"
                                                     for s, m in ev.failed.items())
                    sel = only[0] if only else keep  # the shot the artist had selected stays selected
                    # nothing selected: the player keeps the last shot that finished
                    yield {**view(sid, board.id, sel, text=text, with_editor=sel is not None), **buttons(False)}
                    continue
                e = ev.event
                n = board.shot(ev.shot_id).position + 1
                lead = f"{word.title()} {ev.index + 1} of {ev.total} (shot {n})"
                if e.kind == "progress":
                    progress((ev.index + e.step / max(e.total, 1)) / ev.total, desc=f"{lead} · step {e.step}")
                    now = time.perf_counter()
                    if now - last >= STATUS_EVERY_S:
                        last = now
                        yield {status: f"… {intro}  \n{lead} · step {e.step} of {e.total} · {fmt.seconds(elapsed)}"}
                elif e.kind == "status":
                    yield {status: f"… {intro}  \n{lead} · {e.message}"}
                elif e.kind == "result":
                    finished.append(n)
                    label = f"Shot {n} · {word} · {fmt.steps_word(e.steps)} · {fmt.seconds(fmt.render_seconds(e.timings))}"
                    row = ui.row(e.record_id)
                    if row and row.get("capped"):
                        label += f" (capped from {row.get('requested_steps')})"
                    cap = f"  \n⚠ {e.notes[0]}" if e.notes else ""
                    fresh = ui.board(board.id, sid)
                    yield {gallery: ui.gallery(fresh), table: ui.table(fresh), finals_note: ui.finals_note(fresh),
                           shot_video: gr.Video(value=e.video_path, label=label),
                           status: f"… {intro}  \n✓ {lead} done · {fmt.seconds(elapsed)}{cap}"}
                elif e.kind == "failed":
                    gr.Warning(f"Shot {n}: {e.message}")
        except StudioError as exc:
            yield {**fail(exc, sid, board.id), **buttons(False)}
        finally:
            if session_v is not None and session_v.get("cancel") is cancel_event:
                session_v.pop("cancel", None)

    def on_preview_all(bid, sel, session_v, progress=gr.Progress()):
        yield from run_stage(bid, "preview", None, session_v, progress, keep=sel or None)

    def on_finals(bid, sel, session_v, progress=gr.Progress()):
        yield from run_stage(bid, "final", None, session_v, progress, keep=sel or None)

    def on_repreview(bid, sel, session_v, progress=gr.Progress()):
        if not sel:
            yield view(ui.sid(session_v), bid, text="Select a shot first.")
            return
        yield from run_stage(bid, "preview", [sel], session_v, progress)

    def on_reroll(bid, sel, session_v, progress=gr.Progress()):
        sid = ui.sid(session_v)
        board = ui.board(bid, sid)
        if board is None or not sel or not any(s.id == sel for s in board.shots):
            yield view(sid, bid, text="Select a shot first.")
            return
        shot = ui.boards.reroll(sel)
        yield view(sid, bid, sel, text=f"… New seed {shot.seed} for shot {shot.position + 1}; previewing it.")
        yield from run_stage(bid, "preview", [sel], session_v, progress, before=f"Seed {shot.seed}. ")

    batch = dict(concurrency_id="render", show_progress="minimal", show_progress_on=[progress_bar])
    preview_btn.click(on_preview_all, [board_id, shot_id, session], run_outs, api_name="board_preview_all", **batch)
    finals_btn.click(on_finals, [board_id, shot_id, session], run_outs, api_name="board_finals", **batch)
    repreview_btn.click(on_repreview, [board_id, shot_id, session], run_outs, api_name="shot_repreview", **batch)
    reroll_btn.click(on_reroll, [board_id, shot_id, session], run_outs, api_name="shot_reroll", **batch)
    stop_btn.click(lambda s: "■ Stopping after the current step…" if cancel(s) else gr.skip(), session, status,
                   queue=False, api_name="board_cancel")

    # ---- export ------------------------------------------------------------------------------
    def on_export(bid, session_v):
        sid = ui.sid(session_v)
        board = ui.board(bid, sid)
        if board is None:
            return gr.File(value=None, visible=False), gr.Image(visible=False), "Create or pick a board first."
        out_dir = Path(studio.settings.renders_dir) / (sid or "") / "exports" / board.id
        base = _slug(board.name)
        out_dir.mkdir(parents=True, exist_ok=True)
        files, notes = [], []
        ui.runner.export_json(board.id, out_dir / f"{base}.json")
        files.append(str(out_dir / f"{base}.json"))
        sheet_path = None
        try:
            sheet_path = str(ui.runner.export_contact_sheet(board.id, out_dir / f"{base}-contact-sheet.png"))
            files.insert(0, sheet_path)
        except StudioError as exc:
            notes.append(f"contact sheet: {exc}")
        try:
            files.insert(1 if sheet_path else 0,
                         str(ui.runner.export_finals(board.id, out_dir / f"{base}-finals.mp4")))
        except StudioError as exc:
            notes.append(f"finals: {exc}")
        text = f"Exported {len(files)} file{'s' if len(files) != 1 else ''} of **{board.name}**."
        if notes:
            text += "  \n" + "  \n".join(f"Not yet: {n}" for n in notes)
        return gr.File(value=files, visible=True), gr.Image(value=sheet_path, visible=sheet_path is not None), text

    export_btn.click(on_export, [board_id, session], [export_files, sheet, status], api_name="board_export")

    def on_show(bid, sel, session_v):
        """Tab opened / page loaded: this session's boards, the open one (else the latest) refreshed."""
        out = view(ui.sid(session_v), bid, sel, with_editor=False)  # the editor keeps what is typed there
        if not sel:
            out[ed_seed] = new_seed()
        return out

    return {"refresh": on_show, "inputs": [board_id, shot_id, session], "outputs": outs, "ui": ui}
