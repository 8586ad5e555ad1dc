"""Serving the Blocks app to many people: queue concurrency, and inputs that fail with a message.

    demo = build_app(studio)                      # build_app calls harden_inputs(demo)
    set_concurrency(demo, 2)                      # renders run 2 at a time, the rest wait in the queue
    demo.launch(**launch_options(studio, max_upload_mb=200))

Every render-like event (Create, Compare, load model, storyboard batches) shares the
``concurrency_id="render"`` queue; ``set_concurrency`` sets that queue's limit (Gradio takes the
lowest limit any event of a concurrency id asks for, so it is set on each of them). A render event only queues
a job and follows it, so the app sets that limit to FOLLOWERS: the studio's own queue (dispatcher.py) decides
what runs, and counts what waits for the queue-aware caps.
"""

from __future__ import annotations

import functools

import gradio as gr

RENDER_QUEUE = "render"
FOLLOWERS = 16  # browser renders Gradio hands to the studio's queue at once; each waits there as a queued job


def auto_concurrency(device: str | None) -> int:
    """Renders at once when not told: 1. One pipeline serves one render at a time (ModelManager.lend), so on
    CPU more would only split the cores; on a GPU a second slot only overlaps work of a different model."""
    return 1


def set_concurrency(demo: gr.Blocks, limit: int) -> gr.Blocks:
    """Renders at once (``limit`` >= 1) for every event in the render queue, and as the queue's default."""
    limit = max(1, int(limit))
    for fn in demo.fns.values():
        if getattr(fn, "concurrency_id", None) == RENDER_QUEUE:
            fn.concurrency_limit = limit
    demo.queue(default_concurrency_limit=limit)
    return demo


def render_concurrency(demo: gr.Blocks) -> int | None:
    """The limit the render queue will run with (the lowest any of its events asks for)."""
    limits = []
    default = getattr(getattr(demo, "_queue", None), "default_concurrency_limit", 1)
    for fn in demo.fns.values():
        if getattr(fn, "concurrency_id", None) == RENDER_QUEUE:
            limit = fn.concurrency_limit
            limits.append(default if limit == "default" else limit)
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


# ---- inputs that Gradio itself rejects ------------------------------------------------
def _label(block) -> str:
    return getattr(block, "label", None) or type(block).__name__


def _safe_file_preprocess(block, original, payload):
    """gr.Image(type="filepath") opens the upload with Pillow before our handler runs; a damaged, empty or
    non-image file then fails inside Gradio with no message the user can act on. Hand the handler the
    uploaded path instead: the engine reads it and says what is wrong (and History records the attempt)."""
    try:
        return original(payload)
    except gr.Error:
        raise
    except Exception as exc:
        path = getattr(payload, "path", None) or (payload.get("path") if isinstance(payload, dict) else None)
        if getattr(block, "type", None) == "filepath" and path:
            return str(path)
        raise gr.Error(f"{_label(block)}: this file could not be read ({type(exc).__name__}). "
                       "Upload a PNG or JPEG image.", print_exception=False) from None


def _safe_number_preprocess(block, original, payload):
    """Sliders and numbers refuse out-of-range values with gr.Error (and a server traceback): keep the
    refusal, name the control, and leave the log clean."""
    try:
        return original(payload)
    except gr.Error as exc:
        raise gr.Error(f"{_label(block)}: {exc.message}", print_exception=False) from None
    except (TypeError, ValueError):
        raise gr.Error(f"{_label(block)}: {payload!r} is not a number.", print_exception=False) from None


def harden_inputs(demo: gr.Blocks) -> gr.Blocks:
    """Wrap the preprocess step of image, slider and number inputs (see above). Idempotent."""
    for block in list(demo.blocks.values()):
        if getattr(block, "_studio_hardened", False):
            continue
        if isinstance(block, gr.Image):
            wrap = _safe_file_preprocess
        elif isinstance(block, (gr.Slider, gr.Number)):
            wrap = _safe_number_preprocess
        else:
            continue
        block.preprocess = functools.partial(wrap, block, block.preprocess)
        block._studio_hardened = True
    return demo
