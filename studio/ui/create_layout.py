"""The Create tab's components: the T2V / I2V / V2V sub-tabs with their examples, the render settings, and
the result column, held in ``CreateControls`` (which Compare and History fill in too).

``layout`` only makes components; the handlers and their wiring are in ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..config import ASSETS_DIR
from ..engine import judge
from . import format as fmt
from . import extend_action, lora_picker, restore_file
from .create_choices import (CUSTOM, MAX_CONTEXT_THUMBS, MODEL_HINT, MODES, SHAPES_HINT, context_preview,
                             policy_choices)

EXAMPLES_DIR = ASSETS_DIR / "examples"
EXAMPLE_VIDEO = EXAMPLES_DIR / "blue_square_moving_right.mp4"
T2V_EXAMPLES = [
    "a red circle moving left on a black background",
    "a yellow triangle moving up on a gray background",
    "a green square moving right on a white background",
]
# The first frames sit where a clip of their caption starts (the embedded model reads the direction partly from
# there): 12 of 12 seeds right at 2-16 steps, against 6 of 12 for "down" from a centred circle.
I2V_EXAMPLES = [["a red circle moving right on a black background", str(EXAMPLES_DIR / "red_circle_start_left.png")],
                ["a red circle moving down on a black background", str(EXAMPLES_DIR / "red_circle_start_top.png")]]
V2V_EXAMPLES = [["a blue square moving right on a white background", str(EXAMPLE_VIDEO)]]
IDLE_STATUS = "Ready. Write a prompt and press **Render** — a quick preview appears first, then the refined video."


@dataclass
class CreateControls:
    """Every component of the tab. Compare and History fill some of them in (a budget to use, a re-run)."""

    mode: gr.Radio
    mode_tabs: gr.Tabs
    prompt: gr.Textbox
    negative: gr.Textbox
    image: gr.Image
    video: gr.Video
    steps: gr.Slider
    seed: gr.Number
    random_seed: gr.Checkbox
    resolution: gr.Dropdown
    frames: gr.Dropdown
    refine: gr.Checkbox
    preview_steps: gr.Slider
    render_btn: gr.Button
    cancel_btn: gr.Button
    output: gr.Video
    status: gr.Markdown
    details: gr.Markdown
    info: gr.JSON
    notes: dict
    switches: dict
    context_md: gr.Markdown
    context_gallery: gr.Gallery
    pending_size: gr.State
    # used inside the tab only
    tabs: dict  # mode -> its gr.Tab
    budget: gr.Dropdown
    live: gr.Image
    progress_bar: gr.HTML
    star_btn: gr.Button
    shown_model: gr.State  # the model the size controls were made for
    t2v_hint: gr.Markdown  # the embedded model's prompt hints, or a real model's
    world_examples: list  # the shapes-world examples (one column per mode tab): only with a model that draws them
    loras: lora_picker.LoraPicker
    restore: gr.File
    extend: extend_action.ExtendControls  # continue the result by N frames
    # made outside the tab
    model: gr.Dropdown
    model_info: gr.Markdown
    session: gr.State


# ---- layout --------------------------------------------------------------------------------
def layout(studio, model: gr.Dropdown, model_info: gr.Markdown, session: gr.State) -> CreateControls:
    """The tab's components: the mode tabs and render settings (left), the result (right)."""
    spec = studio.registry.get(studio.settings.default_model)
    # made first and placed later: the examples inside the mode tabs fill them in
    prompt = gr.Textbox(label="Prompt", lines=3, max_lines=8, render=False, elem_id="prompt",
                        placeholder="e.g. a red circle moving left on a black background")
    image = gr.Image(label="First frame", type="filepath", sources=["upload", "clipboard"], height=220,
                     render=False, elem_id="i2v-image")
    video = gr.Video(label="Clip to continue", sources=["upload"], height=220, render=False, elem_id="v2v-video")
    mode = gr.Radio(choices=list(MODES), value="t2v", visible=False, label="mode", elem_id="mode")

    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=360):
            left = _mode_tabs(studio, spec, prompt, image, video)
            prompt.render()
            left.update(_settings(studio, spec))
        with gr.Column(scale=6, min_width=360):
            right = _result_column()
    pending_size = gr.State(None)  # set by History's re-run: the size to keep when the model changes
    shown_model = gr.State(spec.id)  # the model the size controls were made for
    return CreateControls(mode=mode, prompt=prompt, image=image, video=video, pending_size=pending_size,
                          shown_model=shown_model, model=model, model_info=model_info, session=session,
                          **left, **right)


def _mode_tabs(studio, spec, prompt, image, video) -> dict:
    """One tab per mode, each with its not-served notice, its switch-model button and its examples."""
    notes, switches, tabs = {}, {}, {}
    with gr.Tabs(selected="t2v", elem_id="mode-tabs") as mode_tabs:
        with gr.Tab("Text → Video", id="t2v", elem_id="tab-t2v") as tabs["t2v"]:
            notes["t2v"] = gr.Markdown(visible=False, elem_classes=["mode-note"])
            switches["t2v"] = gr.Button(visible=False, size="sm")
            shapes = judge.speaks_shapes(spec)
            t2v_hint = gr.Markdown(SHAPES_HINT if shapes else MODEL_HINT, elem_classes=["hint"], elem_id="t2v-hint")
            world = [gr.Column(visible=shapes, elem_id="t2v-examples")]
            with world[0]:
                gr.Examples(T2V_EXAMPLES, inputs=[prompt], label="Try a prompt")
        with gr.Tab("Image → Video", id="i2v", elem_id="tab-i2v") as tabs["i2v"]:
            notes["i2v"] = gr.Markdown(visible=False, elem_classes=["mode-note"])
            switches["i2v"] = gr.Button(visible=False, size="sm")
            image.render()
            gr.Markdown("The image becomes the first frame (centre-cropped to the render size); "
                        "the prompt says how it moves.", elem_classes=["hint"])
            world.append(gr.Column(visible=shapes, elem_id="i2v-examples"))
            with world[-1]:
                gr.Examples(I2V_EXAMPLES, inputs=[prompt, image], label="Try an example")
        with gr.Tab("Video → Video", id="v2v", elem_id="tab-v2v") as tabs["v2v"]:
            notes["v2v"] = gr.Markdown(visible=False, elem_classes=["mode-note"])
            switches["v2v"] = gr.Button(visible=False, size="sm")
            video.render()
            context_md = gr.Markdown(context_preview(studio, None, spec.id, spec.frames, None)[0],
                                     elem_id="context-note")
            context_gallery = gr.Gallery(label="Context frames", show_label=False, visible=False,
                                         columns=MAX_CONTEXT_THUMBS, height=130, object_fit="contain",
                                         allow_preview=False, fit_columns=False,
                                         elem_id="context-frames", elem_classes=["pixelated"])
            world.append(gr.Column(visible=shapes, elem_id="v2v-examples"))
            with world[-1]:
                gr.Examples(V2V_EXAMPLES, inputs=[prompt, video], label="Try an example")
    return {"mode_tabs": mode_tabs, "tabs": tabs, "notes": notes, "switches": switches, "context_md": context_md,
            "context_gallery": context_gallery, "t2v_hint": t2v_hint, "world_examples": world}


def _settings(studio, spec) -> dict:
    """Render and Cancel, then the budget, seed, size and advanced settings."""
    c = {}
    res_choices = fmt.resolution_choices(spec)
    with gr.Row():
        c["render_btn"] = gr.Button("Render", variant="primary", size="lg", elem_id="render-btn", scale=3)
        c["cancel_btn"] = gr.Button("Cancel", variant="stop", size="lg", interactive=False,
                                    elem_id="cancel-btn", scale=1)
    with gr.Row(equal_height=True):
        c["budget"] = gr.Dropdown(policy_choices(studio), value=CUSTOM, label="Budget policy", scale=1,
                                  min_width=150, elem_id="budget-policy",
                                  info="Named step budgets; custom = the slider")
        c["steps"] = gr.Slider(1, 64, value=8, step=1, label="Steps", scale=2,
                               info="More steps: more detail, more time. Any count works.", elem_id="steps")
    with gr.Row():
        c["refine"] = gr.Checkbox(value=True, label="Preview first", scale=1, min_width=140,
                                  info="Quick low-step render, then the full one (same seed)")
        c["preview_steps"] = gr.Slider(1, 16, value=2, step=1, label="Preview steps", scale=2)
    with gr.Row():
        c["seed"] = gr.Number(value=0, precision=0, minimum=0, label="Seed", scale=2, min_width=120)
        c["random_seed"] = gr.Checkbox(value=True, label="New seed each render", scale=1, min_width=140,
                                       info="Untick to lock the seed")
    with gr.Row():
        c["resolution"] = gr.Dropdown(choices=res_choices, value=res_choices[0][1], label="Resolution")
        c["frames"] = gr.Dropdown(choices=fmt.frame_choices(spec), value=spec.frames, label="Length")
    with gr.Accordion("Advanced", open=False):
        c["negative"] = gr.Textbox(label="Negative prompt", lines=2, placeholder="what to avoid, e.g. blurry, flicker")
    c["loras"] = lora_picker.build(studio)
    c["restore"] = restore_file.build()
    return c


def _result_column() -> dict:
    c = {}
    c["output"] = gr.Video(label="Result", interactive=False, autoplay=True, loop=True, height=420,
                           elem_id="result-video", elem_classes=["pixelated"], buttons=["download"])
    c["live"] = gr.Image(label="Live", interactive=False, visible=False, height=110, elem_id="live-strip",
                         elem_classes=["pixelated"], buttons=[], show_label=True)
    c["progress_bar"] = gr.HTML("", elem_id="render-progress", padding=False)
    c["status"] = gr.Markdown(IDLE_STATUS, elem_id="render-status")
    c["details"] = gr.Markdown("", elem_id="render-details")
    c["star_btn"] = gr.Button("★ Star this render", size="sm", visible=False, elem_id="star-current")
    c["extend"] = extend_action.build("create")
    c["info"] = gr.JSON(visible=False, label="last result")
    return c
