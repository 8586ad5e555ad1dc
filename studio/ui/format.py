"""Pure formatting for the UI: labels, choices, markdown. No gradio, no engine calls."""

from __future__ import annotations

import html
from pathlib import Path

MODE_NAMES = {"t2v": "Text to video", "i2v": "Image to video", "v2v": "Video to video"}
MODE_SHORT = {"t2v": "T2V", "i2v": "I2V", "v2v": "V2V"}
NONCOMMERCIAL_NOTE = (
    "NVIDIA's AnyFlow weights are released under a **non-commercial licence**: "
    "fine for research and personal work, not for commercial use."
)
ANY = "Any"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 10:
        return f"{value:.2f} s"
    if value < 120:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {int(value % 60)} s"


def render_seconds(timings: dict | None) -> float | None:
    """Seconds spent on this budget alone (denoise, decode, write): model load and prompt encoding are one-off."""
    if not timings:
        return None
    parts = [timings.get(k) for k in ("denoise", "decode", "write")]
    if all(p is None for p in parts):
        return timings.get("total")
    return round(sum(p or 0.0 for p in parts), 3)


def steps_word(n: int) -> str:
    return f"{n} step" if int(n) == 1 else f"{n} steps"


def result_label(role: str, steps: int, timings: dict | None) -> str:
    name = {"preview": "Preview", "final": "Final", "single": "Result", "compare": "Result"}.get(role, role.title())
    return f"{name} · {steps_word(steps)} · {seconds(render_seconds(timings))}"


def modes_text(modes) -> str:
    return " · ".join(MODE_SHORT.get(m, m) for m in modes)


TEST_MODEL_MARK = "noise: for tests"


def is_test_model(row: dict) -> bool:
    """The random-weight models made for tests (they render noise): their title says "random weights"."""
    return "random weights" in str(row.get("title") or "").lower()


def model_choice_label(row: dict) -> str:
    state = "loaded" if row["loaded"] else ("on disk" if row["available"] else "not downloaded")
    mark = f" — {TEST_MODEL_MARK}" if is_test_model(row) else ""
    return f"{row['id']} — {modes_text(row['modes'])} — {state}{mark}"


def memory_text(row: dict) -> str:
    if row.get("loaded_gb") is not None:
        gb = row["loaded_gb"]
        return f"{gb:.1f} GB in memory" if gb >= 1 else f"{max(gb * 1024, 0.1):.1f} MB in memory"
    gb = row.get("memory_gb") or 0
    return f"about {gb:g} GB when loaded" if gb >= 1 else f"about {gb * 1024:.0f} MB when loaded"


def model_card(row: dict, spec) -> str:
    """Markdown for the header: what the chosen model does, its state, memory, licence."""
    if row["loaded"]:
        state = f"<span style='color:#16a34a'>●</span> loaded on {row.get('device') or 'device'}"
    elif row["available"]:
        state = "<span style='color:#94a3b8'>●</span> on disk, loads on the first render"
    else:
        state = "<span style='color:#dc2626'>●</span> weights not on this machine (Render or Load now says how to get them)"
    lines = [
        f"**{html.escape(spec.title or spec.id)}** &nbsp;`{spec.id}`",
        f"Modes: **{modes_text(spec.modes)}** · native {spec.width}×{spec.height}, {spec.frames} frames at {spec.fps} fps"
        f" · {spec.family} · {memory_text(row)}",
        f"State: {state}",
    ]
    if spec.notes:
        lines.append(f"_{html.escape(spec.notes)}_")
    if spec.is_noncommercial:
        lines.append(f"⚠ {NONCOMMERCIAL_NOTE}")
    elif spec.license:
        lines.append(f"Licence: {html.escape(spec.license)}")
    return "  \n".join(lines)


def resolution_choices(spec) -> list[tuple[str, str]]:
    """(label, "WxH") pairs the model can render: native first, then smaller and rotated sizes (multiples of 16)."""
    def r16(x: float) -> int:
        return max(16, int(round(x / 16.0)) * 16)

    w, h = spec.width, spec.height
    sizes = [(w, h)]
    if w != h:
        sizes.append((h, w))
    for scale in (0.75, 0.5):
        sizes.append((r16(w * scale), r16(h * scale)))
    out, seen = [], set()
    for i, (sw, sh) in enumerate(sizes):
        if (sw, sh) in seen:
            continue
        seen.add((sw, sh))
        tag = " (native)" if i == 0 else (" (portrait)" if sh > sw and w > h else "")
        out.append((f"{sw}×{sh}{tag}", f"{sw}x{sh}"))
    return out


def parse_resolution(value: str | None) -> tuple[int | None, int | None]:
    if not value:
        return None, None
    try:
        w, h = str(value).lower().replace("×", "x").split("x")[:2]
        return int(w), int(h.split()[0])
    except ValueError:
        return None, None


def frame_choices(spec) -> list[tuple[str, int]]:
    counts = spec.valid_frame_counts(spec.frames)
    if len(counts) > 12:  # long models: every other count, always keeping the native one
        counts = sorted(set(counts[::2]) | {spec.frames})
    return [(f"{n} frames · {n / spec.fps:.1f} s" + (" (native)" if n == spec.frames else ""), n) for n in counts
            if n >= 5 or n == spec.frames]


def not_served_note(mode: str, spec, others: list) -> str:
    names = ", ".join(f"**{o.title or o.id}**" for o in others) or "none registered"
    return (f"**{spec.title or spec.id}** can't do {MODE_NAMES[mode].lower()} ({MODE_SHORT[mode]}); it serves "
            f"{modes_text(spec.modes)}. Models that can: {names}.")


def gallery_caption(row: dict) -> str:
    """Steps first (renders of one prompt differ by budget), then status if not ok, then the prompt."""
    star = "★ " if row.get("accepted") else ""
    status = "" if row.get("status") == "ok" else f"{row.get('status')} · "
    prompt = (row.get("prompt") or "").strip()
    if len(prompt) > 60:
        prompt = prompt[:58] + "…"
    return f"{star}{status}{steps_word(row.get('steps') or 0)} · {MODE_SHORT.get(row.get('mode'), row.get('mode'))} · {prompt}"


def details_markdown(row: dict) -> str:
    """Every parameter and timing of one history row, compactly."""
    req = dict(row.get("request") or {})
    req["steps"] = row.get("steps")
    timings = row.get("timings") or {}
    when = (row.get("created_at") or "")[:19].replace("T", " ")
    lines = [
        f"### {'★ ' if row.get('accepted') else ''}{html.escape((row.get('prompt') or '').strip()[:160])}",
        f"**{row.get('status')}** · {when} UTC · `{row['id']}`"
        + (f" · {row.get('plan_kind')} plan, budget {int(row.get('budget_index') or 0) + 1}" if row.get("plan_kind") else ""),
    ]
    if row.get("error"):
        lines.append(f"> {html.escape(row['error'])}")
    params = [
        ("Mode", MODE_NAMES.get(req.get("mode"), req.get("mode"))), ("Model", req.get("model")),
        ("Steps", req.get("steps")),
        ("Budget", f"capped from {row.get('requested_steps')} steps" if row.get("capped") else None),
        ("Policy", row.get("policy")), ("Seed", req.get("seed")),
        ("Size", f"{req.get('width')}×{req.get('height')}" if req.get("width") else None),
        ("Frames", _frames_text(row, req)),
        ("Guidance", req.get("guidance_scale")), ("Negative prompt", req.get("negative_prompt")),
        ("First frame", Path(str(req["image"])).name if req.get("image") else None),
        ("Input video", Path(str(req["video"])).name if req.get("video") else None),
        ("Context frames", req.get("context_frames")),
    ]
    if req.get("loras"):  # a render with none says nothing about them (not "Loras []")
        params.append(("LoRAs", ", ".join(f"{Path(str(f)).name} ×{float(w):g}" for f, w in req["loras"])))
    # extends: History's lineage line says it (once); loras: above
    known = {"mode", "model", "steps", "seed", "width", "height", "frames", "fps", "guidance_scale", "negative_prompt",
             "image", "video", "context_frames", "prompt", "loras", "extends"}
    params += [(k.replace("_", " ").capitalize(), v) for k, v in sorted(req.items()) if k not in known]
    lines.append("")
    lines.append(" · ".join(f"**{name}** {html.escape(str(value))}" for name, value in params if value not in (None, "")))
    if timings:
        parts = [f"{k} {timings[k]:.2f}" for k in ("load", "encode", "denoise", "decode", "write") if timings.get(k)]
        lines += ["", f"**Time** {seconds(timings.get('total'))} in all ({', '.join(parts)} s)"]
    return "  \n".join(lines[:2]) + "\n" + "\n".join(lines[2:])


def plan_summary(results: list[dict]) -> str:
    """One line per finished budget: steps and seconds."""
    return " · ".join(f"{steps_word(r['steps'])}: {seconds(r['seconds'])}" for r in results)


def _frames_text(row: dict, req: dict) -> str | None:
    """The clip's frames: an extension's row counts the joined clip, its request only the new render."""
    if not req.get("frames"):
        return None
    text = f"{req.get('frames')} at {req.get('fps')} fps"
    joined = row.get("frames")
    return f"{joined} joined ({req['frames']} rendered) at {req.get('fps')} fps" if joined and joined != req["frames"] else text


def strip(frames, height: int = 96, count: int = 8):
    """A horizontal strip of up to ``count`` frames sampled evenly, each scaled to ``height`` (pixel-sharp)."""
    import numpy as np
    from PIL import Image

    frames = np.asarray(frames)
    idx = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    tiles = []
    for i in idx:
        img = Image.fromarray(frames[i])
        width = max(1, round(img.width * height / img.height))
        tiles.append(np.asarray(img.resize((width, height), Image.Resampling.NEAREST)))
        tiles.append(np.full((height, 3, 3), 255, dtype=np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def place(position: int, waiting: int) -> str:
    """A job's place in the render queue, e.g. "next (3 waiting)" or "3rd of 5"."""
    if position == 1:
        return f"next ({waiting} waiting)" if waiting > 1 else "next"
    suffix = "th" if 10 <= position % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(position % 10, "th")
    return f"{position}{suffix} of {waiting}"
