"""The Storyboard tab's components: a board column (picker, settings, thumbnails, batch buttons, table) and a
shot column (player, actions, editor, export), gathered in one dataclass so a handler names what it updates."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .board_views import (COLUMNS, DEFAULT_FRAMES, EMPTY_STATUS, GALLERY_COLUMNS, MODE_CHOICES, BoardViews,
                          default_policies, gallery_height)

# Runs in the browser: on each new value of the live component (a list: the shots finished since the last one),
# each finished shot's thumbnail and caption go into its gallery tile, and its cells into its table row where that
# row is drawn (the table draws only the rows in view; the others are drawn from the table's value, refreshed every
# LIVE_EVERY_S and when the batch ends).
LIVE_JS = """
watch('value', () => {
  let tiles;
  try { tiles = JSON.parse(props.value || '[]'); } catch (e) { return; }
  if (!Array.isArray(tiles)) return;
  const items = document.querySelectorAll('#board-gallery .thumbnail-item');
  const rows = [...document.querySelectorAll('#board-shots tbody tr')].map(tr => [tr, tr.querySelectorAll('td')]);
  for (const d of tiles) {
  if (typeof d.index !== 'number') continue;
  const tile = items[d.index];
  if (tile) {
    const img = tile.querySelector('img');
    if (img && d.tile) { img.src = d.tile; img.alt = d.caption; }
    const caption = tile.querySelector('.caption-label');
    if (caption) caption.textContent = d.caption;
  }
  for (const [tr, cells] of rows) {
    if (cells.length !== d.row.length || cells[0].textContent.trim() !== d.row[0]) continue;
    cells.forEach((td, i) => {
      const span = td.querySelector('span') || td;
      if (span.textContent !== d.row[i]) span.textContent = d.row[i];
    });
  }
  }
});
"""


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
    live: gr.HTML
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
    batch_end: gr.State  # how a batch ended (run_end draws the whole board from it: see stream_outs)
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
    def stream_outs(self) -> list:
        """What a running batch updates. Few on purpose: Gradio rebuilds every output an update leaves out (a new
        component and its config, about 1 ms each), so a batch streams to these and the whole board follows once,
        when it ends (``end_outs``, from ``batch_end``)."""
        return [self.status, self.live, self.table, self.finals_note, self.preview_btn, self.finals_btn,
                self.stop_btn, self.batch_end]

    @property
    def end_outs(self) -> list:
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
              "batch_end": gr.State(None),
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
    # a finished shot's tile and row (JSON from BoardViews.shot_delta), patched into the page by LIVE_JS: the
    # gallery and table are sent whole only when the batch ends
    c["live"] = gr.HTML("", html_template="", js_on_load=LIVE_JS, elem_id="board-live", padding=False,
                        apply_default_css=False, container=False)
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
