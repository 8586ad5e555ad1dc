"""The Storyboard tab: boards of shots, "Preview all" at a cheap budget, approve, "Render finals", export.

A board is picked (or created) at the top; its shots show as a strip of thumbnails (the latest preview
or final of each) and a table of parameters. Clicking a shot loads it into the editor on the right,
where it can be changed, approved, re-rolled and re-previewed. Batches run through ``BoardRunner.run``
(engine side), shot by shot; finals skip shots already done, so a batch stopped by a restart carries on.
Space mode: a session sees only its own boards.

Reading order: ``board_views.BoardViews`` (reads and texts, no gradio), ``board_layout`` (every component, one
dataclass, and the layout that creates them), ``BoardTab`` here (the handlers, as methods, and ``wire``; the
batch handlers are in ``board_batches``), and ``build``, which does layout then wire.
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from ..errors import StudioError
from .board_batches import BatchHandlers
from .board_layout import BoardComponents, layout
from .board_views import (DEFAULT_FRAMES, EMPTY_STATUS, BoardViews, file_slug, default_policies, gallery_height,
                          loras_text, new_seed, parse_loras)
from . import guard
from .session import cancel

__all__ = ["BoardTab", "BoardViews", "BoardComponents", "build", "layout"]


class BoardTab(BatchHandlers):
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
            **self.board_tiles(board),
            c.shot_ids: [s.id for s in board.shots] if board else [],
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

    def board_tiles(self, board) -> dict:
        """The thumbnails, the table and the finals note, from the board's history rows read once."""
        ui, c = self.ui, self.c
        rows = ui.prefetch(board)
        return {c.gallery: gr.Gallery(value=ui.gallery(board, rows),
                                      height=gallery_height(len(board.shots) if board else 0)),
                c.table: ui.table(board, rows), c.finals_note: ui.finals_note(board, rows)}

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

    # ---- export and page load ----------------------------------------------------------------
    def on_export(self, bid, session_v):
        sid = self.ui.sid(session_v)
        board = self.ui.board(bid, sid)
        if board is None:
            return gr.File(value=None, visible=False), gr.Image(visible=False), "Create or pick a board first."
        out_dir = Path(self.studio.settings.renders_dir) / (sid or "") / "exports" / board.id
        base = file_slug(board.name)
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
        end = ([c.board_id, c.batch_end, c.session], c.end_outs)  # the whole board, once, when a batch ends
        for btn, handler, name in ((c.preview_btn, self.on_preview_all, "board_preview_all"),
                                   (c.finals_btn, self.on_finals, "board_finals"),
                                   (c.repreview_btn, self.on_repreview, "shot_repreview"),
                                   (c.reroll_btn, self.on_reroll, "shot_reroll")):
            btn.click(handler, c.selection, c.stream_outs, api_name=name, **batch).then(
                self.run_end, *end, api_visibility="private")
        c.stop_btn.click(lambda s: "■ Stopping after the current step…" if cancel(s) else gr.skip(), c.session,
                         c.status, queue=False, api_name="board_cancel")


def build(studio, model_picker: gr.Dropdown, session: gr.State) -> dict:
    """The Storyboard tab: its components, then its events. Returns what the app wires on page load."""
    ui = BoardViews(studio)
    tab = BoardTab(ui, layout(ui, model_picker, session))
    tab.wire()
    c = tab.c
    return {"refresh": tab.on_show, "inputs": [c.board_id, c.shot_id, c.session], "outputs": c.outs, "ui": ui}