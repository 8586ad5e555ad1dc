"""A sweep's exports: every render and the summary as CSV and JSON, and the grid PNG (prompts x budgets, the first
and middle frame of each render), written into the sweep's folder. No torch, no gradio.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .sweep_report import METRICS, load_signature

RENDER_COLUMNS = ("item", "prompt_index", "prompt", "seed", "model", "steps", "status", "render_id", "video",
                  "seconds", "load", "encode", "denoise", "decode", "write", "peak_memory_gb", "review")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def render_rows(items: list[dict], prompts: list[str]) -> list[dict]:
    """One flat dict per item (a render asked for): what it was, how it went, its metrics and review."""
    rows = []
    for i in items:
        t = i.get("timings") or {}
        peak = t.get("peak_memory_bytes")
        row = {"item": i["id"], "prompt_index": i["prompt_index"], "prompt": prompts[i["prompt_index"]],
               "seed": i["seed"], "model": i["model"], "steps": i["steps"],
               "status": i.get("render_status") or i.get("job_state") or "not queued",
               "render_id": i.get("render_id"), "video": i.get("video_path"), "seconds": i.get("seconds"),
               **{k: t.get(k) for k in ("load", "encode", "denoise", "decode", "write")},
               "peak_memory_gb": round(peak / 2**30, 3) if isinstance(peak, (int, float)) else "not measured",
               "review": {1: "accepted", 0: "rejected"}.get(i.get("review"), "")}
        row.update({m: (i.get("metrics") or {}).get(m) for m in METRICS})
        rows.append(row)
    return rows


def summary_rows(summary: list[dict]) -> list[dict]:
    """The summary flattened for CSV: one row per model and budget."""
    rows = []
    for g in summary:
        row = {"model": g["model"], "steps": g["steps"], "renders": g["renders"],
               "median_seconds": g["seconds"].get("median"), "p90_seconds": g["seconds"].get("p90"),
               "peak_memory_gb": g["peak_memory_gb"], "accepted_rate": g["accepted"]["rate"],
               "accepted_low": g["accepted"]["low"], "accepted_high": g["accepted"]["high"],
               "reviewed": g["accepted"]["reviewed"]}
        for m, st in g["metrics"].items():
            row.update({m: st["mean"], f"{m}_low": st["low"], f"{m}_high": st["high"]})
        rows.append(row)
    return rows


def _csv(rows: list[dict]) -> bytes:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def write_exports(folder: Path, report: dict, items: list[dict]) -> dict:
    """renders.csv/json, summary.csv/json and grid.png in ``folder``; {name: path}."""
    folder = Path(folder)
    prompts = [p["prompt"] for p in report["spec"]["prompts"]]
    renders = render_rows(items, prompts)
    paths = {"renders_csv": folder / "renders.csv", "renders_json": folder / "renders.json",
             "summary_csv": folder / "summary.csv", "summary_json": folder / "summary.json",
             "grid_png": folder / "grid.png"}
    _atomic_write(paths["renders_csv"], _csv(renders))
    _atomic_write(paths["renders_json"], json.dumps(renders, indent=1, ensure_ascii=False).encode("utf-8"))
    _atomic_write(paths["summary_csv"], _csv(summary_rows(report["summary"])))
    public = {k: v for k, v in report.items() if k != "exports"}
    _atomic_write(paths["summary_json"], json.dumps(public, indent=1, ensure_ascii=False).encode("utf-8"))
    grid(items, prompts, report["spec"]["budgets"], paths["grid_png"])
    return {k: str(v) for k, v in paths.items()}


# ---- the grid ---------------------------------------------------------------------------------------------------
CELL, PAD, LABEL_W, HEAD_H = 96, 6, 150, 22


def _font():
    try:
        return ImageFont.truetype("DejaVuSans.ttf", 12)
    except OSError:
        return ImageFont.load_default()


def _cell(item: dict | None) -> Image.Image:
    """First and middle frame side by side (grey when the render is missing)."""
    img = Image.new("RGB", (2 * CELL + 2, CELL), (60, 60, 66))
    if item is None or not item.get("signature") or not Path(item["signature"]).is_file():
        return img
    sig = load_signature(item["signature"])
    for k, key in enumerate(("first", "middle")):
        frame = Image.fromarray(np.asarray(sig[key], dtype=np.uint8))
        frame.thumbnail((CELL, CELL), Image.Resampling.LANCZOS)
        if max(frame.size) < CELL:
            scale = CELL / max(frame.size)
            frame = frame.resize((max(1, round(frame.width * scale)), max(1, round(frame.height * scale))),
                                 Image.Resampling.NEAREST)
        img.paste(frame, (k * (CELL + 2), 0))
    return img


def grid(items: list[dict], prompts: list[str], budgets: list[int], path: Path) -> Path:
    """Rows: each prompt (and model, when there are several) at its first seed; columns: the budgets."""
    models = list(dict.fromkeys(i["model"] for i in items))
    rows = [(p, m) for p in range(len(prompts)) for m in models]
    chosen = {(i["prompt_index"], i["model"], i["steps"]): i for i in items
              if i["seed_index"] == 0 and i.get("render_status") == "ok"}
    width = LABEL_W + len(budgets) * (2 * CELL + 2 + PAD) + PAD
    height = HEAD_H + len(rows) * (CELL + PAD) + PAD
    sheet = Image.new("RGB", (width, height), (24, 24, 28))
    draw, font = ImageDraw.Draw(sheet), _font()
    for c, steps in enumerate(budgets):
        draw.text((LABEL_W + c * (2 * CELL + 2 + PAD), 4), f"{steps} steps (first | middle)", fill=(235, 235, 235),
                  font=font)
    for r, (p, model) in enumerate(rows):
        y = HEAD_H + r * (CELL + PAD)
        label = f"#{p + 1} {prompts[p][:64]}" + (f"\n{model[:22]}" if len(models) > 1 else "")
        draw.multiline_text((PAD, y + 4), _wrap(label), fill=(235, 235, 235), font=font)
        for c, steps in enumerate(budgets):
            sheet.paste(_cell(chosen.get((p, model, steps))), (LABEL_W + c * (2 * CELL + 2 + PAD), y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    _atomic_write(Path(path), buf.getvalue())
    return Path(path)


def _wrap(text: str, width: int = 20) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines[:5])
