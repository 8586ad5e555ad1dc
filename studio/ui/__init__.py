"""AnyFlow Studio's Gradio UI: a thin layer over ``studio`` (the only package that imports gradio).

    demo = build_app(studio)
    demo.queue().launch(**launch_options(studio))

Modules: ``header`` (model picker), ``generate`` (Create: T2V/I2V/V2V), ``compare``,
``history``, ``session`` (per-session cancel, engine events to UI updates),
``format`` (labels and markdown), ``theme`` (CSS and the video-sync script).
"""

from __future__ import annotations

import gradio as gr

from ..config import ASSETS_DIR
from . import compare, generate, header, history, theme


def build_app(studio) -> gr.Blocks:
    """The Blocks app for an open Studio. Builds no model: models load on first use."""
    with gr.Blocks(title="AnyFlow Studio", fill_width=True) as demo:
        session = gr.State({})  # per browser session: the running render's cancel event
        model, model_info, load_btn, load_status = header.build(studio)
        with gr.Tabs(selected="create", elem_id="top-tabs") as top_tabs:
            with gr.Tab("Create", id="create", elem_id="tab-create"):
                create = generate.build(studio, model, model_info, session)
            with gr.Tab("Compare budgets", id="compare", elem_id="tab-compare"):
                compare.build(studio, model, session, top_tabs, create)
            with gr.Tab("History", id="history", elem_id="tab-history") as history_tab:
                hist = history.build(studio, top_tabs, create, model)

        def load_now(model_id):
            yield from header.load_model(studio, model_id)

        load_btn.click(load_now, model, [model, model_info, load_status], api_name="load_model",
                       concurrency_id="render")
        history_tab.select(hist["search"], hist["filters"], hist["listing"], api_visibility="private")
        demo.load(hist["search"], hist["filters"], hist["listing"], api_visibility="private")
    return demo


def launch_options(studio) -> dict:
    """Keyword arguments for ``launch``: Gradio 6 takes theme/css/head there, and the files it may serve."""
    return {
        "theme": theme.THEME,
        "css": theme.CSS,
        "head": theme.HEAD,
        "allowed_paths": [str(studio.settings.data_dir), str(ASSETS_DIR / "examples")],
    }
