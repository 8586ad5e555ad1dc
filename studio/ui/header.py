"""Header: the model picker with each model's modes, load state, memory and licence."""

from __future__ import annotations

import gradio as gr

from ..errors import StudioError
from . import format as fmt


def rows_by_id(studio) -> dict[str, dict]:
    return {row["id"]: row for row in studio.models.describe()}


def model_choices(studio) -> list[tuple[str, str]]:
    return [(fmt.model_choice_label(row), row["id"]) for row in studio.models.describe()]


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
