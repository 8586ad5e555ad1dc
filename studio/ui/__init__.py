"""AnyFlow Studio's Gradio UI: a thin layer over ``studio`` (the only package that imports gradio).

    demo = build_app(studio)
    demo.queue().launch(**launch_options(studio))

Modules: ``header`` (model picker), ``generate`` (Create: T2V/I2V/V2V), ``compare``,
``history``, ``session`` (per-session cancel, engine events to UI updates),
``format`` (labels and markdown), ``theme`` (CSS and the video-sync script).
"""

from __future__ import annotations

import gradio as gr

from . import (analytics, board_tab, compare, downloads, generate, guard, header, history, host_check, public_api,
               queue_tab, serving, spacemode, sweep_review_tab, sweeps_tab, theme)


def build_app(studio) -> gr.Blocks:
    """The Blocks app for an open Studio. Builds no model: models load on first use."""
    with gr.Blocks(title="AnyFlow Studio", fill_width=True, delete_cache=spacemode.upload_cache(studio)) as demo:
        session = gr.State({})  # per browser session: the running render's cancel event
        model, model_info, load_btn, load_status = header.build(studio)
        header.wire(studio, demo, model, model_info)  # the card follows the model manager (page load, timer)
        downloads.build(studio, demo, model, model_info)  # a model not on this machine: size, Download, progress
        if studio.settings.space:  # a shared Space: say what is private, kept and capped
            gr.Markdown(spacemode.banner(studio), elem_id="space-banner")
        with gr.Tabs(selected="create", elem_id="top-tabs") as top_tabs:
            with gr.Tab("Create", id="create", elem_id="tab-create") as create_tab:
                create = generate.build(studio, model, model_info, session)
            with gr.Tab("Compare budgets", id="compare", elem_id="tab-compare") as compare_tab:
                compare.build(studio, model, session, top_tabs, create, model_info)
            with gr.Tab("Storyboard", id="storyboard", elem_id="tab-storyboard") as storyboard_tab:
                boards = board_tab.build(studio, model, session)
            with gr.Tab("History", id="history", elem_id="tab-history") as history_tab:
                hist = history.build(studio, top_tabs, create, model, session=session)
            with gr.Tab("Analytics", id="stats", elem_id="tab-stats") as stats_tab:
                stats = analytics.build(studio, session)
            with gr.Tab("Queue", id="queue", elem_id="tab-queue") as queue_view:
                jobs = queue_tab.build(studio, session)
            if not studio.settings.space:  # sweeps measure on your own machine, not on a shared Space
                with gr.Tab("Sweeps", id="sweeps", elem_id="tab-sweeps") as sweeps_view:
                    sweeps = sweeps_tab.build(studio, studio.settings.default_model)
                sweeps_view.select(sweeps["refresh"], None, sweeps["picker"], api_visibility="private")

        def load_now(model_id):
            yield from header.load_model(studio, model_id)

        load_btn.click(load_now, model, [model, model_info, load_status], api_name="load_model",
                       concurrency_id="load", concurrency_limit=1)  # one load at a time, beside the renders
        hist["paged"](history_tab.select(hist["search"], hist["filters"], hist["listing"], api_visibility="private"))
        hist["paged"](demo.load(hist["search"], hist["filters"], hist["listing"], api_visibility="private"))
        # Space mode: the session id is made on the first event that needs it (spacemode.session_id).
        demo.load(lambda s: spacemode.init_session(studio, s), session, session, api_visibility="private")
        storyboard_tab.select(boards["refresh"], boards["inputs"], boards["outputs"], api_visibility="private")
        demo.load(boards["refresh"], boards["inputs"], boards["outputs"], api_visibility="private")
        stats_tab.select(stats["refresh"], stats["inputs"], stats["outputs"], api_visibility="private")
        queue_view.select(jobs["refresh"], jobs["inputs"], jobs["outputs"], api_visibility="private")
        queue_view.select(lambda: gr.Timer(active=True), None, jobs["timer"], queue=False, api_visibility="private")
        for other in (create_tab, compare_tab, storyboard_tab, history_tab, stats_tab):
            other.select(lambda: gr.Timer(active=False), None, jobs["timer"], queue=False, api_visibility="private")
        public_api.register(studio)  # /generate, /compare, /extend, /history, /models: see docs/api.md
    public_api.hide_ui_handlers(demo)  # the page's own handlers stay off the API page (view_api)
    if studio.settings.space:  # renders past their time to live are deleted on a schedule
        demo.studio_janitor = spacemode.start_janitor(studio, boards=boards["ui"].boards)
    serving.harden_inputs(demo)  # damaged uploads and out-of-range numbers get a message, not a traceback
    return demo


def launch_options(studio, max_upload_mb: float = guard.MAX_UPLOAD_MB, host: str | None = "127.0.0.1",
                   share: bool = False) -> dict:
    """Keyword arguments for ``launch``: Gradio 6 takes theme/css/head there, the files it may serve
    (renders, placeholders, examples: never the history database or settings), the upload limit, and the Host
    check (``host``: the address it binds, as given to ``launch``; only the names it serves get answers)."""
    return {
        "app_kwargs": {"lifespan": host_check.lifespan(host_check.allowed_hosts(host, share))},
        "theme": theme.THEME,
        "css": theme.CSS,
        "head": theme.HEAD + sweep_review_tab.KEYS_JS,
        "allowed_paths": [str(p) for p in guard.roots(studio)],
        "blocked_paths": guard.blocked(studio),
        "max_file_size": int(max_upload_mb * 1024 * 1024),
    }
