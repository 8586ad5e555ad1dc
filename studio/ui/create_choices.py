"""The Create tab's choices, worked out without a browser: budget policies and the slider, the request the
controls make, which mode tabs a model serves (and which model to switch to), the prompt hints, the
shapes-world note, and the V2V context preview.

``create_layout`` shows them, ``generate`` (the tab's handlers) calls them; ``public_api`` uses ``off_world``.
"""

from __future__ import annotations

import gradio as gr

from ..engine import judge, media
from ..errors import StudioError
from ..engine.render import RenderRequest
from . import format as fmt
from . import header

MAX_CONTEXT_THUMBS = 6
MODES = ("t2v", "i2v", "v2v")
SHAPES_HINT = "Describe the shot: colour, shape, direction and background work best."
MODEL_HINT = "Describe the shot: the subject, what it does, the setting, the camera and the light."
CUSTOM = "custom"


def policy_choices(studio) -> list[tuple[str, str]]:
    return [(f"{p.name} · {fmt.steps_word(p.steps)}", p.name) for p in studio.policies.policies.values()] + [
        ("custom (slider)", CUSTOM)]


def policy_steps(studio, name):
    """The step count a policy sets on the slider (None for custom or an unknown name)."""
    policy = studio.policies.policies.get(name)
    return policy.steps if policy else None


def policy_for_steps(studio, name, steps):
    """The picker's value after the slider moved: kept if it still matches, else a policy of that
    many steps, else custom."""
    steps = int(steps or 0)
    if policy_steps(studio, name) == steps:
        return gr.skip()
    match = next((p.name for p in studio.policies.policies.values() if p.steps == steps), CUSTOM)
    return match if match != name else gr.skip()


def chosen_policy(studio, name, steps) -> str | None:
    """The policy a render records: the picked one if the slider still shows its steps, else None (custom)."""
    return name if name and name != CUSTOM and policy_steps(studio, name) == int(steps) else None


def build_request(mode, model, prompt, negative, image, video, steps, seed, random_seed, resolution, frames,
                  loras=()) -> RenderRequest:
    width, height = fmt.parse_resolution(resolution)
    use_seed = None if random_seed or seed in (None, "") else int(seed)
    return RenderRequest(
        prompt=prompt or "", mode=mode or "t2v", negative_prompt=negative or "",
        image=(image or None) if mode == "i2v" else None, video=(video or None) if mode == "v2v" else None,
        seed=use_seed, steps=int(steps), height=height, width=width,
        frames=int(frames) if frames not in (None, "") else None, model=model or None, loras=tuple(loras or ()),
    )


def mode_notes(studio, model_id: str) -> list:
    """For each mode tab: a notice (shown when the model can't serve it) and a 'switch model' button."""
    out_notes, out_buttons = [], []
    try:
        spec = studio.registry.get(model_id)
    except StudioError:
        spec = None
    rows = header.rows_by_id(studio)
    for mode in MODES:
        if spec is None or spec.serves(mode):
            out_notes.append(gr.Markdown(value="", visible=False))
            out_buttons.append(gr.Button(visible=False))
            continue
        others = studio.registry.serving(mode)
        others.sort(key=lambda s: (not rows[s.id]["available"], s.memory_gb))
        out_notes.append(gr.Markdown(value=fmt.not_served_note(mode, spec, others), visible=True))
        if others:
            out_buttons.append(gr.Button(value=f"Switch to {others[0].title or others[0].id}", visible=True))
        else:
            out_buttons.append(gr.Button(visible=False))
    return out_notes + out_buttons


def draws_shapes(studio, model_id) -> bool:
    try:
        return judge.speaks_shapes(studio.registry.get(model_id or studio.settings.default_model))
    except StudioError:
        return False


def hint_updates(studio, model_id) -> list:
    """The T2V hint and the shapes-world examples for the picked model: the shapes hints only where they apply."""
    shapes = draws_shapes(studio, model_id)
    return [SHAPES_HINT if shapes else MODEL_HINT] + [gr.Column(visible=shapes) for _ in MODES]


def off_world(studio, request: dict, frames) -> str | None:
    """A render by the embedded model of a prompt outside its shapes world: what it drew instead (else None)."""
    if frames is None or not len(frames) or not draws_shapes(studio, request.get("model")):
        return None
    return judge.off_world_note(request.get("prompt") or "", frames)


def switch_target(studio, mode: str) -> str | None:
    rows = header.rows_by_id(studio)
    others = sorted(studio.registry.serving(mode), key=lambda s: (not rows[s.id]["available"], s.memory_gb))
    return others[0].id if others else None


def context_preview(studio, video, model_id, frames, resolution):
    """What a V2V render will keep from the uploaded video, shown before rendering."""
    hidden = gr.Gallery(value=None, visible=False)
    if not video:
        return ("Upload a clip (or pick the example below). The studio keeps its first frames as context "
                "and continues the motion.", hidden)
    try:
        spec = studio.registry.get(model_id)
        if not spec.serves("v2v"):
            return "", hidden
        total = int(frames) if frames else spec.frames
        width, height = fmt.parse_resolution(resolution)
        width, height = width or spec.width, height or spec.height
        # Only what a render could keep: at most `total` frames, already at the model's fps and size
        # (the same bounded decode the engine uses, so a 4K or hours-long clip costs no more).
        clip = media.read_clip(video, width, height, spec.fps, max_frames=total)
        req = RenderRequest(prompt="-", mode="v2v", model=spec.id, frames=total, video=str(video))
        keep = studio.engine.context_frames_for(req, len(clip))
    except StudioError as exc:
        return f"⚠ {exc}", hidden
    if keep == 0:
        return (f"⚠ This clip is too short to continue: {len(clip)} frame(s) at {spec.fps} fps. "
                f"A {total}-frame render needs at least 1 context frame plus room to continue.", hidden)
    step = max(1, -(-keep // MAX_CONTEXT_THUMBS))
    shown = list(range(0, keep, step))
    if shown[-1] != keep - 1:
        shown.append(keep - 1)
    thumbs = [(clip[i], f"frame {i + 1}") for i in shown]
    text = (f"**Context:** the clip's first **{keep}** frames (read at {spec.fps} fps, "
            f"cropped to {width}×{height}); the model continues them to {total} frames, "
            f"{total - keep} new.")
    return text, gr.Gallery(value=thumbs, visible=True)
