"""The download panel under the header: for a hub model that is not on this machine, its download size and the
free disk space, a licence box where the licence is non-commercial, Download and Cancel, and a progress bar
(bytes, speed, time left) polled by a timer while the download runs in the background. Offline, the button is
off and says why. The download itself is ``studio.downloads`` (studio/models/downloads.py)."""

from __future__ import annotations

import html

import gradio as gr

from ..models import downloads as dl
from ..errors import StudioError
from . import header

POLL_S = 1.0
UNREACHABLE = "⚠ Offline: the size is unknown until the hub answers"
LICENCE_HINT = "Tick the licence box above to accept it, then press Download."


def free_disk() -> str:
    cache = dl.hub_cache_dir()
    return f"{dl.human_bytes(dl.disk_free(cache))} free in {html.escape(str(cache))}"


def start_error(exc: StudioError) -> str:
    """What the panel says when Download is refused: no raw network errors, no command-line flags."""
    text = str(exc)
    if "Could not reach the hub" in text:
        return f"{UNREACHABLE}; check the network and press Download again."
    if "--accept-license" in text:
        return text.split(" Read it", 1)[0].rstrip(".") + ". " + LICENCE_HINT
    return text


def _missing_spec(studio, model_id: str | None):
    """The chosen model's spec if it is a hub model whose weights are not here, else None."""
    if studio.downloads is None or not model_id:
        return None
    try:
        spec = studio.registry.get(model_id)
    except StudioError:
        return None
    return spec if spec.hub_repo and studio.models.cached_folder(spec) is None else None


def _bar(status) -> str:
    if status is None:
        return ""
    text = html.escape(status.describe())
    if not status.running:
        return f"<div class='dl-status'>{text}</div>"
    pct = f"{100 * status.fraction:.1f}%"
    return (f"<div class='dl-status'><div style='background:#e2e8f0;border-radius:4px;height:10px'>"
            f"<div style='width:{pct};background:#2563eb;height:10px;border-radius:4px'></div></div>"
            f"{pct} · {text}</div>")


def _info(studio, spec) -> str:
    reason = studio.downloads.offline_reason()
    lines = [f"**{html.escape(spec.id)}** is not on this machine ({html.escape(spec.hub_repo)})."]
    if reason is not None:
        lines.append(f"⚠ {html.escape(reason)} · {free_disk()}")
    else:
        try:
            plan = studio.downloads.plan(spec, max_age_s=120)
            lines.append(plan.describe() + ("" if plan.fits else " · ⚠ **not enough free space**"))
        except StudioError:  # the hub did not answer (no network): say so plainly, and show the disk anyway
            lines.append(UNREACHABLE + " · " + free_disk())
    if spec.is_noncommercial:
        lines.append(f"Licence: {html.escape(spec.license)}")
    return "  \n".join(lines)


def panel(studio, model_id: str | None) -> tuple:
    """Updates for (panel, info, licence box, Download, Cancel, progress, timer) for the chosen model."""
    spec = _missing_spec(studio, model_id)
    if spec is None:
        return (gr.Column(visible=False),) + (gr.skip(),) * 5 + (gr.Timer(active=False),)
    manager = studio.downloads
    status = manager.status(spec.id)
    running = status is not None and status.running
    reason = manager.offline_reason()
    off = "shared Space" if studio.settings.space else "offline"
    label = f"Download (off: {off})" if reason else "Download"
    return (gr.Column(visible=True), _info(studio, spec),
            gr.Checkbox(visible=manager.needs_licence(spec), value=False,
                        label=f"I have read and accept the licence: {spec.license}"),
            gr.Button(label, interactive=reason is None and not running), gr.Button(visible=running),
            _bar(status), gr.Timer(active=running))


def start(studio, model_id: str, accepted: bool) -> tuple:
    """Download pressed: start in the background (or say why not). Updates (Download, Cancel, progress, timer)."""
    try:
        job = studio.downloads.start(model_id, accept_license=bool(accepted))
    except StudioError as exc:
        message = html.escape(start_error(exc)).lstrip("⚠ ")
        return gr.skip(), gr.skip(), f"<div class='dl-status'>⚠ {message}</div>", gr.Timer(active=False)
    return gr.Button(interactive=False), gr.Button(visible=True), _bar(job.status()), gr.Timer(active=True)


def cancel(studio, model_id: str) -> None:
    """Cancel pressed: the download stops at its next chunk; the timer's next tick shows it stopped."""
    studio.downloads.cancel(model_id)


def poll(studio, model_id: str) -> tuple:
    """Timer tick: the progress; when the download ends, the header (dropdown, card) and this panel refreshed."""
    status = studio.downloads.status(model_id) if studio.downloads else None
    if status is not None and status.running:
        return (_bar(status),) + (gr.skip(),) * 5 + (gr.Timer(active=True),)
    dropdown, card = header.refresh(studio, model_id)
    visible = _missing_spec(studio, model_id) is not None
    return (_bar(status), dropdown, card, gr.Column(visible=visible), gr.Button(interactive=True),
            gr.Button(visible=False), gr.Timer(active=False))


def build(studio, demo: gr.Blocks, model: gr.Dropdown, model_info: gr.Markdown) -> dict:
    """The panel (hidden unless the chosen model must be downloaded), wired to the model picker."""
    with gr.Column(visible=False, elem_id="download-panel") as box:
        info = gr.Markdown(elem_id="download-info")
        with gr.Row():
            licence = gr.Checkbox(label="I accept the licence", visible=False, elem_id="download-licence")
            dl_btn = gr.Button("Download", variant="primary", size="sm", scale=0, min_width=140,
                               elem_id="download-btn")
            cancel_btn = gr.Button("Cancel download", size="sm", scale=0, min_width=140, visible=False,
                                   elem_id="download-cancel")
        progress = gr.HTML("", elem_id="download-progress")
        timer = gr.Timer(POLL_S, active=False)
    outputs = [box, info, licence, dl_btn, cancel_btn, progress, timer]
    show = dict(fn=lambda m: panel(studio, m), inputs=model, outputs=outputs, api_visibility="private")
    model.change(**show)
    demo.load(**show)
    dl_btn.click(lambda m, ok: start(studio, m, ok), [model, licence], [dl_btn, cancel_btn, progress, timer],
                 api_visibility="private")
    cancel_btn.click(lambda m: cancel(studio, m), model, None, api_visibility="private")
    timer.tick(lambda m: poll(studio, m), model, [progress, model, model_info, box, dl_btn, cancel_btn, timer],
               api_visibility="private")
    return {"panel": box, "download": dl_btn, "cancel": cancel_btn, "progress": progress, "timer": timer}
