"""The LoRA picker in Create (used by Compare too): a few rows of (file from the loras folder, strength).

Its ``value`` State holds the picked LoRAs as [[file, strength], ...], the request's ``loras`` field; Create and
Compare read it as an input, Restore fills the rows in.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..engine import lora

ROWS = 3


@dataclass
class LoraPicker:
    files: list  # a gr.Dropdown per row
    strengths: list  # a gr.Slider per row
    value: gr.State  # [[file, strength], ...]: what a render uses
    refresh: gr.Button

    @property
    def rows(self) -> list:
        """The row components in (file, strength) order: the outputs ``fill`` updates."""
        return [c for pair in zip(self.files, self.strengths) for c in pair]


def collect(*values) -> list[list]:
    """(file1, strength1, file2, strength2, ...) -> [[file, strength], ...], rows without a file left out."""
    pairs = zip(values[0::2], values[1::2])
    return [[str(f).strip(), float(s if s is not None else 1.0)] for f, s in pairs if f and str(f).strip()]


def choices(studio) -> list[str]:
    return lora.listing(studio.settings.loras_dir)


def fill(studio, loras) -> list:
    """Updates for the rows (file, strength, ...) showing ``loras``; rows beyond them emptied."""
    names = choices(studio)
    picked = list(loras or [])[:ROWS]
    out = []
    for i in range(ROWS):
        file, strength = picked[i] if i < len(picked) else (None, 1.0)
        out += [gr.Dropdown(choices=sorted(set(names) | ({file} if file else set())), value=file),
                gr.Slider(value=float(strength))]
    return out


def build(studio) -> LoraPicker:
    """The accordion of LoRA rows; in Space mode only files from the studio's loras folder can be picked."""
    folder = studio.settings.loras_dir
    files, strengths = [], []
    with gr.Accordion("LoRA adapters", open=False, elem_id="lora-picker"):
        gr.Markdown(f"Style adapters (Wan / diffusers LoRA, .safetensors) from `{folder}`"
                    + ("." if studio.settings.space else ", or type a file's path."), elem_classes=["hint"])
        for i in range(ROWS):
            with gr.Row(equal_height=True):
                files.append(gr.Dropdown(choices=choices(studio), value=None, label=f"LoRA {i + 1}", scale=3,
                                         allow_custom_value=not studio.settings.space, elem_id=f"lora-file-{i}"))
                strengths.append(gr.Slider(lora.MIN_STRENGTH, lora.MAX_STRENGTH, value=1.0, step=0.05,
                                           label="Strength", scale=2, elem_id=f"lora-strength-{i}"))
        refresh = gr.Button("↻ Rescan the loras folder", size="sm")
    picker = LoraPicker(files, strengths, gr.State([]), refresh)
    wire(studio, picker)
    return picker


def wire(studio, p: LoraPicker) -> None:
    for component in p.rows:
        component.change(collect, p.rows, p.value, api_visibility="private", queue=False)
    p.refresh.click(lambda *v: fill(studio, collect(*v)), p.rows, p.rows, api_visibility="private", queue=False)
