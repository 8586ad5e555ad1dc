"""Header: the model picker with each model's modes, load state, memory and licence."""

from __future__ import annotations

import gradio as gr

from ..errors import StudioError
from . import format as fmt

FOLLOW_S = 3.0  # how often an open page checks what is loaded


def rows_by_id(studio) -> dict[str, dict]:
    return {row["id"]: row for row in studio.models.describe()}


def model_choices(studio) -> list[tuple[str, str]]:
    rows = sorted(studio.models.describe(), key=fmt.is_test_model)  # the random-weight test models last
    return [(fmt.model_choice_label(row), row["id"]) for row in rows]


def card(studio, model_id: str | None) -> str:
    model_id = model_id or studio.settings.default_model
    try:
        spec = studio.registry.get(model_id)
    except StudioError as exc:
        return f"⚠ {exc}"
    return fmt.model_card(rows_by_id(studio)[spec.id], spec)


def refresh(studio, model_id: str | None):
    """Dropdown (labels carry load state) and card for the chosen model."""
    return gr.Dropdown(choices=model_choices(studio), value=model_id), card(studio, model_id)


def loaded_ids(studio) -> list[str]:
    return sorted(studio.models.loaded_state())


def follow(studio, model_id: str | None, seen):
    """Page load and every few seconds after: the picker's labels and the card from the model manager, updated
    only when what is loaded changed since this page last looked (``seen``). So a page opened mid-render, or left
    open while the CLI or another tab loads or frees a model, says what is really loaded."""
    now = loaded_ids(studio)
    if seen == now:
        return gr.skip(), gr.skip(), gr.skip()
    dropdown, text = refresh(studio, model_id)
    return dropdown, text, now


def wire(studio, demo: gr.Blocks, model: gr.Dropdown, model_info: gr.Markdown) -> None:
    """Keep the header true to the model manager: at page load, then on a timer."""
    seen = gr.State(None)  # the loaded ids this page shows
    timer = gr.Timer(FOLLOW_S)
    follow_now = dict(fn=lambda m, s: follow(studio, m, s), inputs=[model, seen], outputs=[model, model_info, seen],
                      api_visibility="private", queue=False, show_progress="hidden")
    demo.load(**follow_now)
    timer.tick(**follow_now)


def load_model(studio, model_id: str):
    """Load the chosen model now (it would otherwise load on the first render), showing progress."""
    spec_title = model_id
    try:
        spec_title = studio.registry.get(model_id).title or model_id
        if studio.models.is_loaded(model_id):
            yield gr.skip(), card(studio, model_id), f"{spec_title} is already loaded."
            return
        yield gr.skip(), card(studio, model_id), f"… Loading **{spec_title}**… (first use takes a few seconds)"
        entry = studio.models.get(model_id)
        dd, text = refresh(studio, model_id)
        yield dd, text, f"✓ Loaded **{spec_title}** in {fmt.seconds(entry.load_seconds)}."
    except StudioError as exc:
        gr.Warning(str(exc))
        yield gr.skip(), card(studio, model_id), f"⚠ {exc}"


def build(studio):
    """Render the header; returns (model dropdown, card markdown, load button, load status)."""
    with gr.Row(elem_id="studio-header", equal_height=False):
        with gr.Column(scale=3, min_width=260):
            gr.Markdown("## AnyFlow Studio\nAny-step video: draft in a few steps, refine with more.",
                        elem_id="studio-title")
        with gr.Column(scale=5, min_width=320):
            model = gr.Dropdown(
                choices=model_choices(studio), value=studio.settings.default_model, label="Model",
                info="Modes it serves and whether it is loaded. Models load on first use.",
                elem_id="model-picker", interactive=True,
            )
            with gr.Row():
                load_btn = gr.Button("Load now", size="sm", variant="secondary", scale=0, min_width=110)
                load_status = gr.Markdown("", elem_id="load-status")
        with gr.Column(scale=6, min_width=320):
            model_info = gr.Markdown(card(studio, studio.settings.default_model), elem_id="model-card")
    return model, model_info, load_btn, load_status
