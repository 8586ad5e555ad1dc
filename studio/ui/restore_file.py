"""Create's "Restore from a file": drop a studio mp4 or PNG thumbnail, and its settings fill the Create controls."""

from __future__ import annotations

import gradio as gr

from ..engine import lora, restore
from ..errors import StudioError
from . import format as fmt
from . import guard, lora_picker, spacemode
from .session import friendly_error
from .size_controls import size_controls


def build() -> gr.File:
    with gr.Accordion("Restore from a file", open=False, elem_id="restore-accordion"):
        gr.Markdown("Drop a studio mp4 or PNG thumbnail: its prompt, seed and settings come back.",
                    elem_classes=["hint"])  # a long label was cut off in the file box
        return gr.File(label="Studio mp4 or PNG", file_types=[".mp4", ".png"], type="filepath", height=110,
                       elem_id="restore-file")


STATUS_AT, COUNT = 13, 14 + 2 * lora_picker.ROWS  # where the status is in ``outputs``, and how many


def outputs(c) -> list:
    """The Create components a restore sets, in the order ``on_restore`` returns them."""
    return [c.mode_tabs, c.mode, c.pending_size, c.model, c.prompt, c.negative, c.image, c.video, c.steps, c.seed,
            c.random_seed, c.resolution, c.frames, c.status, *c.loras.rows]


def on_restore(studio, path, session=None) -> list:
    if not path:
        return [gr.skip()] * COUNT
    try:
        inputs_ok = guard.input_roots(studio)  # the same folders History's re-run re-uses inputs from
        req, notes = restore.restore(path, studio.history, accept=lambda p: guard.servable(p, inputs_ok),
                                     session=spacemode.session_id(studio, session))
        model_v = studio.registry.get(req.model or studio.settings.default_model).id
    except StudioError as exc:
        message = friendly_error(exc)
        gr.Warning(message)
        return [gr.skip()] * STATUS_AT + [f"⚠ {message}"] + [gr.skip()] * (COUNT - STATUS_AT - 1)
    res_value = f"{req.width}x{req.height}" if req.width and req.height else None
    res_dd, frames_dd = size_controls(studio, model_v, res_value, req.frames)
    offered = [v for _, v in fmt.resolution_choices(studio.registry.get(model_v))]
    if res_value and res_value not in offered:
        notes.append(f"Create does not offer {res_value} for {model_v}: the size is {offered[0]} now.")
    have = set(lora.listing(studio.settings.loras_dir))
    notes += [f"LoRA {f} is not in the loras folder." for f, _ in req.loras if f not in have]
    status = "Restored from the file: same prompt, seed and settings. Press **Render**."
    if notes:
        gr.Warning(" ".join(notes))
        status += "  \n⚠ " + " ".join(notes)
    pending = {"model": model_v, "resolution": res_value, "frames": req.frames}
    return [gr.Tabs(selected=req.mode), req.mode, pending, model_v, req.prompt, req.negative_prompt or "",
            req.image, req.video, req.steps, req.seed or 0, False, res_dd, frames_dd, status,
            *lora_picker.fill(studio, req.loras)]


def wire(studio, c, restore_file: gr.File) -> None:
    restore_file.upload(lambda p, s: on_restore(studio, p, s), [restore_file, c.session], outputs(c),
                        api_name="restore_from_file")
