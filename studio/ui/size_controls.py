"""The resolution and frame-count dropdowns a model allows: Create, History's re-run and Restore from a file set them."""

from __future__ import annotations

import gradio as gr

from ..errors import StudioError
from . import format as fmt


def size_controls(studio, model_id: str, resolution=None, frames=None):
    """Resolution and frame-count dropdowns valid for the model: keeps the current values if valid, else native."""
    try:
        spec = studio.registry.get(model_id)
    except StudioError:
        return gr.Dropdown(), gr.Dropdown()
    res = fmt.resolution_choices(spec)
    counts = fmt.frame_choices(spec)
    res_value = resolution if resolution in [v for _, v in res] else res[0][1]
    frames_value = int(frames) if frames not in (None, "") and int(frames) in [v for _, v in counts] else spec.frames
    return gr.Dropdown(choices=res, value=res_value), gr.Dropdown(choices=counts, value=frames_value)
