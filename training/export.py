"""Stage 4: assemble and save the shipped pipelines. ``python -m training.export [--workdir runs]``

Writes ``assets/models/anyflow-shapes`` (student: the studio default) and ``assets/models/anyflow-shapes-teacher``
(same VAE / text encoder / tokenizer / scheduler, teacher transformer), each an ``AnyFlowPipeline`` folder saved
with ``save_pretrained``. Uses whatever EMA weights exist, so it can also export intermediate models.
Checks that each folder reloads with ``DiffusionPipeline.from_pretrained`` offline and renders.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from .common import ASSETS, Log, build_scheduler, save_json, workdir

README = """# {name}

A small any-step video model trained on CPU by `training/` of AnyFlow Studio (issue 4): one shape of one colour
moving in a straight line on a plain background. Prompts of the form
`a {{colour}} {{shape}} moving {{direction}} on a {{background}} background` (colour: red, green, blue, yellow;
shape: circle, square, triangle; direction: left, right, up, down; background: black, white, gray).

- Pipeline: `AnyFlowPipeline` ({role}); bidirectional, serves T2V, I2V (`video` = 1 frame) and V2V (`video` =
  4k+1 frames, continued).
- Native size 64x64, 17 frames. The VAE has no temporal compression (`scale_factor_temporal=1`), so the pipeline
  rounds `num_frames` up by one: pass `num_frames=16` to get 17 frames (it logs a warning).
- `guidance_scale=1.0`, any `num_inference_steps` (1, 2, 4, 8, 16 measured).
- Run the VAE in float32 or bfloat16, not float16.
- **Text-to-video is keyframe-first** (the studio's registry says `t2v = "keyframe"`): the transformer has only
  relative (rotary) positions, so from pure noise nothing says which frame comes first, and a single call gets the
  sign of the motion wrong more often (see the studio's README for figures). Render the first frame alone, then
  continue it as image-to-video, with the same noise:

  ```python
  noise = torch.randn(1, 16, 17, 8, 8, generator=torch.Generator().manual_seed(0))
  kw = dict(height=64, width=64, num_inference_steps=8, guidance_scale=1.0)
  key = pipe(prompt, latents=noise[:, :, :1].clone(), num_frames=0, output_type="latent", **kw).frames
  video = pipe(prompt, latents=noise, video_latents=key.permute(0, 2, 1, 3, 4), num_frames=16, **kw).frames[0]
  ```

{extra}
"""


STUDENT_GRID = """- **Budgets above 4 steps: keep the last step's jump from sigma 0.5.** The studio's catalogue gives this model
  `last_jump_sigma = 0.5` (`studio/engine/schedule.py`): on the scheduler's own grid its short low-noise segments soften the
  edges (shape 0.88 at 4 steps, 0.79 at 16, seen combinations), while jumping from sigma 0.5 straight to the clip
  keeps them (0.88 at 16). With the bare pipeline, pass the unshifted sigmas (the scheduler applies `shift=3` and
  appends 0) in both calls instead of `num_inference_steps`:

  ```python
  n, floor = 16, 0.25  # 0.25 is sigma 0.5 before the shift
  kw = dict(height=64, width=64, sigmas=[1 - (1 - floor) * i / (n - 1) for i in range(n)], guidance_scale=1.0)
  ```

"""


def build_pipeline(work: Path, transformer_dir: Path, text_dir: Path):
    from diffusers import AnyFlowPipeline, AnyFlowTransformer3DModel, AutoencoderKLWan
    from transformers import T5Tokenizer, UMT5EncoderModel

    return AnyFlowPipeline(
        tokenizer=T5Tokenizer.from_pretrained(text_dir.parent / "tokenizer"),
        text_encoder=UMT5EncoderModel.from_pretrained(text_dir),
        transformer=AnyFlowTransformer3DModel.from_pretrained(transformer_dir),
        vae=AutoencoderKLWan.from_pretrained(work / "vae"),
        scheduler=build_scheduler(),
    )


def export_one(work: Path, src: Path, dest: Path, role: str, extra: str, log: Log):
    pipe = build_pipeline(work, src / "transformer", work / "teacher" / "ema" / "text_encoder")
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    pipe.save_pretrained(tmp)
    (tmp / "README.md").write_text(README.format(name=dest.name, role=role, extra=extra))
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    check = reload_and_render(dest)
    log(f"exported {dest} ({size / 1e6:.2f} MB): {check}")
    return size


def reload_and_render(folder: Path) -> str:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from diffusers import DiffusionPipeline

    t0 = time.time()
    pipe = DiffusionPipeline.from_pretrained(folder)
    t1 = time.time()
    out = pipe("a red circle moving right on a black background", num_frames=16, height=64, width=64,
               num_inference_steps=8, guidance_scale=1.0, generator=torch.Generator().manual_seed(0)).frames[0]
    return f"{type(pipe).__name__} reload {t1 - t0:.2f}s, 8-step render {time.time() - t1:.2f}s, frames {out.shape}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--dest", default=str(ASSETS))
    args, _ = ap.parse_known_args(argv)
    work = workdir(args.workdir)
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    log = Log(work / "export" / "log.txt")
    info = {}
    for which, name, role in (("teacher", "anyflow-shapes-teacher", "teacher: flow matching, before distillation"),
                              ("student", "anyflow-shapes", "student: any-step flow map, the studio default")):
        src = work / which / "ema"
        note = ""
        if which == "student" and not (src / "transformer").exists():
            src = work / "teacher" / "ema"  # no student yet: ship the teacher's weights under the default name
            note = " The student is not trained yet: this folder holds the teacher's weights."
        if not (src / "transformer").exists():
            log(f"no weights yet in {src}; skipped")
            continue
        step = json.loads((src / "step.json").read_text())
        grid = STUDENT_GRID if which == "student" and not note else ""
        extra = (f"{grid}Training state: {src.parent.name} step {step['step']}"
                 f"{' (final)' if step.get('final') else ' (intermediate)'}.{note}")
        info[name] = {"step": step, "bytes": export_one(work, src, dest / name, role, extra, log)}
    save_json(work / "export" / "done.json", info)


if __name__ == "__main__":
    main()
