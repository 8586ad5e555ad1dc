"""The History tab: gallery, full-text search, filters, details, re-run, star, delete with confirmation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from ..jobs import extend, following as jobs
from ..errors import StudioError
from ..store.history import Query
from . import format as fmt
from . import extend_action, guard, lora_picker, spacemode
from .size_controls import size_controls

PAGE = 60
STATUS_CHOICES = [fmt.ANY, "ok", "cancelled", "failed", "interrupted"]
EMPTY_DETAILS = "Select a render in the gallery to see every parameter, its timings, and what you can do with it."


def placeholder(studio, status: str) -> str:
    """A grey tile for renders without a thumbnail (cancelled, failed)."""
    path = Path(studio.settings.data_dir) / "ui" / f"placeholder-{status}-v2.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (256, 256), (52, 52, 58))
        draw = ImageDraw.Draw(img)
        try:
            font = ImageFont.load_default(size=30)
        except TypeError:  # Pillow < 10.1
            font = ImageFont.load_default()
        draw.text((128, 118), status, fill=(210, 210, 220), anchor="mm", font=font)
        img.save(path)
    return str(path)


def _none(value):
    return None if value in (None, "", fmt.ANY) else value


def mine(studio, rid, session) -> bool:
    """Space mode: is this render the session's own? (Always True outside Space mode.)"""
    if not studio.settings.space:
        return True
    row = studio.history.get(rid) if rid else None
    sid = spacemode.session_id(studio, session)
    return bool(row and sid and row.get("session") == sid)


def search(studio, text, mode, model, steps, status, starred, session=None, page=0):
    """One page of History, newest first: gallery items, their ids, a summary line, and the pager's state
    ({"page": n, "older": whether a later page exists})."""
    # Space mode: only this browser session's renders (an id-less session sees nothing, never everyone's).
    sid = spacemode.session_id(studio, session)
    scoped = studio.settings.space
    query = Query(
        text=text or "", mode=_none(mode), model=_none(model),
        steps=int(steps) if _none(steps) is not None else None, status=_none(status),
        accepted=True if starred else None, session=sid, limit=PAGE,
    )
    blocked = scoped and sid is None
    matching = 0 if blocked else studio.history.count_matching(query)
    page = max(0, min(int(page or 0), max(0, (matching - 1) // PAGE)))  # a deletion can empty the last page
    query.offset = page * PAGE
    rows = [] if blocked else studio.history.search(query)
    items = []
    allowed = guard.roots(studio)
    for row in rows:
        thumb = guard.servable(row.get("thumb_path"), allowed)  # a row can't point the server elsewhere
        items.append((str(thumb) if thumb else placeholder(studio, row.get("status") or "missing"),
                      fmt.gallery_caption(row)))
    ids = [row["id"] for row in rows]
    total = (studio.history.count_matching(Query(session=sid)) if sid else 0) if scoped else studio.history.count()
    filtered = matching != total
    if rows:
        first, last = query.offset + 1, query.offset + len(rows)
        shown = f"{len(rows)} render{'s' if len(rows) != 1 else ''} shown" if matching <= PAGE else (
            f"Renders {first}–{last} of {matching}, newest first")
        summary = shown + (f" · {matching} match" if filtered and matching <= PAGE else "") + (
            f" · {total} in History" if filtered or matching <= PAGE else "")
    elif total == 0:
        summary = "No renders yet. Everything you render in Create or Compare lands here."
    else:
        summary = "Nothing matches. Clear the search or set the filters back to Any."
    return items, ids, summary, {"page": page, "older": query.offset + len(rows) < matching}


def pager_buttons(nav):
    """Newer / Older: shown only when there is more than one page, each enabled where it leads somewhere."""
    nav = nav or {}
    many = bool(nav.get("page") or nav.get("older"))
    return (gr.Button(visible=many, interactive=bool(nav.get("page"))),
            gr.Button(visible=many, interactive=bool(nav.get("older"))))


def lineage(studio, row) -> str:
    """Extensions: the render this one continues, and those that continue it."""
    children = [c["id"] for c in studio.history.children(row["id"])]
    lines = ([f"Extends `{row['parent_id']}`"] if row.get("parent_id") else []) + (
        [f"Extended by {', '.join(f'`{c}`' for c in children)}"] if children else [])
    return "\n\n" + " · ".join(lines) if lines else ""


def filter_choices(studio):
    models = [fmt.ANY] + studio.registry.ids()
    steps = [fmt.ANY] + [str(s) for s in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)]
    return models, steps


def rerun(studio, rid) -> tuple:
    """Re-run in Create: the values of Create's controls (``rerun_outputs`` in ``build``) for the render ``rid``,
    its LoRAs included (the picker's rows and the State a render reads)."""
    row = studio.history.get(rid) if rid else None
    if row is None:
        return (gr.skip(),) * (17 + 2 * lora_picker.ROWS)
    if extend.is_extension(row):
        rerun_extension(studio, row)
        return (gr.skip(),) * (17 + 2 * lora_picker.ROWS)
    req = dict(row.get("request") or {})
    mode_v = req.get("mode") or "t2v"
    model_v = req.get("model") or studio.settings.default_model
    res_value = f"{req['width']}x{req['height']}" if req.get("width") and req.get("height") else None
    res_dd, frames_dd = size_controls(studio, model_v, res_value, req.get("frames"))
    inputs_ok = guard.input_roots(studio)  # only re-use inputs from the studio's and Gradio's own folders
    image = guard.servable(req.get("image"), inputs_ok)
    video_v = guard.servable(req.get("video"), inputs_ok)
    image, video_v = (str(image) if image else None), (str(video_v) if video_v else None)
    if (mode_v == "i2v" and not image) or (mode_v == "v2v" and not video_v):
        gr.Warning("The original input file is gone; upload it again before rendering.")
    else:
        gr.Info("Parameters loaded into Create. Press Render to run it again.")
    pending = {"model": model_v, "resolution": res_value, "frames": req.get("frames")}
    loras = [[str(f), float(s)] for f, s in req.get("loras") or ()]
    return (gr.Tabs(selected="create"), gr.Tabs(selected=mode_v), mode_v, pending, model_v, req.get("prompt") or "",
            req.get("negative_prompt") or "", image, video_v, int(row.get("steps") or req.get("steps") or 4),
            req.get("seed") or 0, False, res_dd, frames_dd,
            "Loaded from History: same prompt, seed and settings. Press **Render**.", gr.skip(),
            *lora_picker.fill(studio, loras), loras)


def rerun_extension(studio, row: dict) -> str | None:
    """Re-run of an extended clip: the extension is queued again (same source, new frames, prompt, seed and steps),
    not loaded into Create (whose controls cannot say "continue this clip"). Its job id, or None (said why)."""
    if studio.settings.space:
        gr.Warning("Use Extend on the original render to extend it again.")
        return None
    try:
        jid, plan = jobs.queue_extension_rerun(studio, row["id"])
    except StudioError as exc:
        gr.Warning(str(exc))
        return None
    gr.Info(f"Extending `{row.get('parent_id')}` again by {plan.new_frames} frames with the same prompt, seed and "
            f"steps (job {jid}): the clip appears in History when it is done.")
    return jid


def build(studio, top_tabs: gr.Tabs, create, model_picker: gr.Dropdown, session: gr.State | None = None) -> dict:
    h = _search_rows(studio)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            h.gallery = gr.Gallery(label="Renders", show_label=False, columns=4, height=560, object_fit="cover",
                                   fit_columns=False, allow_preview=False,
                                   elem_id="history-gallery", elem_classes=["pixelated"])
        _detail_panel(h)
    h.ids = gr.State([])
    h.selected = gr.State(None)
    h.nav = gr.State({"page": 0, "older": False})  # the pager: which page is shown, and whether an older one exists

    # the session State rides along last (hidden from the API): Space mode scopes every search to it
    h.filters = [h.text, h.mode, h.model, h.steps, h.status, h.starred] + ([session] if session is not None else [])
    h.listing = [h.gallery, h.ids, h.summary, h.nav]
    do_search, paged = _wire_search(studio, h)
    show, detail_outputs = _wire_details(studio, h, paged)

    rerun_outputs = [top_tabs, create.mode_tabs, create.mode, create.pending_size, model_picker, create.prompt, create.negative,
                     create.image, create.video, create.steps, create.seed, create.random_seed, create.resolution,
                     create.frames, create.status, create.details, *create.loras.rows, create.loras.value]
    h.rerun_btn.click(lambda rid: rerun(studio, rid), h.selected, rerun_outputs, api_name="history_rerun")
    extend_action.wire_history(studio, h.extend_row, h.selected, create.session, show, detail_outputs,
                               lambda nav_v, *values: search(studio, *values, page=_here(nav_v)), h.listing,
                               [h.nav, *h.filters], create.steps)
    return {"filters": h.filters, "listing": h.listing, "search": do_search, "paged": paged}


def _search_rows(studio) -> SimpleNamespace:
    """The search box and filters, and the pager."""
    h = SimpleNamespace()
    models, steps_choices = filter_choices(studio)
    with gr.Row(equal_height=False):
        h.text = gr.Textbox(label="Search prompts", placeholder="e.g. red circle", scale=4, elem_id="history-search")
        h.mode = gr.Dropdown([fmt.ANY, "t2v", "i2v", "v2v"], value=fmt.ANY, label="Mode", scale=1, min_width=100)
        h.model = gr.Dropdown(models, value=fmt.ANY, label="Model", scale=2, min_width=140)
        h.steps = gr.Dropdown(steps_choices, value=fmt.ANY, label="Steps", scale=1, min_width=90,
                              allow_custom_value=True)
        h.status = gr.Dropdown(STATUS_CHOICES, value=fmt.ANY, label="Status", scale=1, min_width=110)
        h.starred = gr.Checkbox(label="Starred only", value=False, scale=1, min_width=110)
        h.search_btn = gr.Button("Search", variant="primary", scale=1, min_width=90, elem_id="history-search-btn")
    with gr.Row(equal_height=True):
        h.summary = gr.Markdown("", elem_id="history-summary")
        h.newer_btn = gr.Button("◀ Newer", size="sm", visible=False, scale=0, min_width=90, elem_id="history-newer")
        h.older_btn = gr.Button("Older ▶", size="sm", visible=False, scale=0, min_width=90, elem_id="history-older")
    return h


def _detail_panel(h: SimpleNamespace) -> None:
    """Beside the gallery: the selected render, its actions (re-run, star, delete, extend) and details."""
    with gr.Column(scale=2, min_width=320):
        h.video = gr.Video(label="Selected render", interactive=False, loop=True, autoplay=True, height=240,
                           visible=False, elem_id="history-video", elem_classes=["pixelated"])
        with gr.Row(visible=False) as h.actions:
            h.rerun_btn = gr.Button("↻ Re-run in Create", variant="primary", size="sm", elem_id="history-rerun")
            h.star_btn = gr.Button("★ Star", size="sm", elem_id="history-star")
            h.delete_btn = gr.Button("Delete…", variant="stop", size="sm", elem_id="history-delete")
        with gr.Group(visible=False) as h.confirm_box:
            h.confirm_md = gr.Markdown("")
            with gr.Row():
                h.confirm_btn = gr.Button("Yes, delete it and its files", variant="stop", size="sm",
                                          elem_id="history-confirm-delete")
                h.keep_btn = gr.Button("Keep it", size="sm")
        h.extend_row = extend_action.build("history")
        h.details = gr.Markdown(EMPTY_DETAILS, elem_id="history-details")


def _here(nav_v) -> int:  # the page shown
    return int((nav_v or {}).get("page") or 0)


def _wire_search(studio, h):
    """Search, filters and the pager; returns (the search handler, ``paged``: an event then the pager buttons)."""
    pager = [h.newer_btn, h.older_btn]

    def do_search(*values):  # a new search or filter starts at the newest page
        return search(studio, *values)

    def paged(event):
        return event.then(pager_buttons, h.nav, pager, api_visibility="private", queue=False)

    paged(h.search_btn.click(do_search, h.filters, h.listing, api_name="history_search"))
    paged(h.text.submit(do_search, h.filters, h.listing, api_visibility="private"))
    for f in (h.mode, h.model, h.steps, h.status, h.starred):
        paged(f.change(do_search, h.filters, h.listing, api_visibility="private"))

    def turn(delta):
        def go(nav_v, *values):
            return search(studio, *values, page=_here(nav_v) + delta)
        return go

    paged(h.newer_btn.click(turn(-1), [h.nav, *h.filters], h.listing, api_visibility="private"))
    paged(h.older_btn.click(turn(+1), [h.nav, *h.filters], h.listing, api_visibility="private"))
    return do_search, paged


def _wire_details(studio, h, paged):
    """Selecting a render shows it; star and delete (with a confirmation). Returns (show, its outputs)."""
    def show(rid):
        row = studio.history.get(rid) if rid else None
        if row is None:
            return (None, gr.Video(value=None, visible=False), EMPTY_DETAILS, gr.Row(visible=False),
                    gr.Button(), gr.Group(visible=False))
        recorded = row.get("video_path")
        video_file = guard.servable(recorded, guard.roots(studio))  # a row can't point the server elsewhere
        details_md = fmt.details_markdown(row) + lineage(studio, row)
        if recorded and video_file is None:
            details_md = (guard.NOT_SERVED if Path(str(recorded)).exists() else
                          "⚠ This render's video file is missing (deleted or moved).") + "\n\n" + details_md
        return (rid, gr.Video(value=str(video_file) if video_file else None, visible=video_file is not None),
                details_md, gr.Row(visible=True),
                gr.Button(value="☆ Unstar" if row.get("accepted") else "★ Star"), gr.Group(visible=False))

    detail_outputs = [h.selected, h.video, h.details, h.actions, h.star_btn, h.confirm_box]

    def on_select(ids_v, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else (evt.index or [0])[0]
        return show(ids_v[index] if 0 <= index < len(ids_v) else None)

    h.gallery.select(on_select, h.ids, detail_outputs, api_visibility="private")
    # For scripts and tests: open a record by id.
    rid_box = gr.Textbox(visible=False)
    rid_box.change(lambda rid, *s: show(rid if mine(studio, rid, *s) else None), [rid_box, *h.filters[6:]],
                   detail_outputs, api_name="history_details")

    def toggle_star(rid, nav_v, *values):
        row = studio.history.get(rid) if rid else None
        if row is None:
            return (*show(None), *search(studio, *values, page=_here(nav_v)))
        studio.history.set_accepted(rid, not row.get("accepted"))
        return (*show(rid), *search(studio, *values, page=_here(nav_v)))

    paged(h.star_btn.click(toggle_star, [h.selected, h.nav, *h.filters], [*detail_outputs, *h.listing],
                           api_visibility="private"))
    _wire_delete(studio, h, show, detail_outputs, paged)
    return show, detail_outputs


def _wire_delete(studio, h, show, detail_outputs, paged) -> None:
    def ask_delete(rid):
        row = studio.history.get(rid) if rid else None
        if row is None:
            return gr.Group(visible=False), ""
        files = [Path(p).name for p in (row.get("video_path"), row.get("thumb_path"))
                 if p and guard.servable(p, guard.roots(studio))]
        what = f" and its files ({', '.join(files)})" if files else ""
        return gr.Group(visible=True), f"Delete `{rid}`{what}? This can't be undone."

    h.delete_btn.click(ask_delete, h.selected, [h.confirm_box, h.confirm_md], api_visibility="private", queue=False)
    h.keep_btn.click(lambda: gr.Group(visible=False), None, h.confirm_box, api_visibility="private", queue=False)

    def do_delete(rid, nav_v, *values):
        if rid:
            studio.history.delete(rid)
            gr.Info("Deleted the render and its files.")
        return (*show(None), *search(studio, *values, page=_here(nav_v)))

    paged(h.confirm_btn.click(do_delete, [h.selected, h.nav, *h.filters], [*detail_outputs, *h.listing],
                              api_name="history_delete"))
