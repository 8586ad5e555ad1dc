"""`python -m studio sweep ...`: run a sweep, resume it, report it, propose (and write) policies from it.

    sweep run --prompts FILE [--budgets 1,2,4,8,16] [--seeds 2] [--mode i2v --images DIR] [--model ID ...] [--json]
    sweep resume ID | sweep report ID [--json] | sweep policies ID [--write] | sweep list [--json]

`run` and `resume` go to the studio that owns the data folder when one runs (like `render`: its queue, its farm),
else run here. `report`, `policies` and `list` read the history without loading a model (no torch); with a studio
running, `policies --write` goes through it, so it uses the new policies at once. stdout: the table (or JSON with
--json); progress and messages on stderr. Prompts FILE: one prompt per line (blank lines and lines starting with
# are skipped), or a JSON list of prompts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from ..app import owner_client
from .args import STANDALONE_HELP, budgets, folder_settings, read_rows
from ..errors import EXIT_USER_ERROR, StudioError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".gif")
TABLE_METRICS = (("convergence_ssim", "conv SSIM", "{:.3f}"), ("flicker", "flicker", "{:.4f}"),
                 ("change", "change", "{:.4f}"), ("sharpness", "sharp", "{:.0f}"), ("i2v_psnr", "I2V dB", "{:.1f}"),
                 ("v2v_context_psnr", "V2V dB", "{:.1f}"), ("judge_all", "judge", "{:.2f}"))


def add_parser(sub, common) -> None:
    s = sub.add_parser("sweep", help="measure what each step budget buys on your prompts; find cliffs; set policies")
    ssub = s.add_subparsers(dest="sweep_command", required=True)
    r = ssub.add_parser("run", help="render prompts x seeds x models x budgets, measure, report")
    common(r, many_models=True)
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", metavar="FILE", help="one prompt per line, or a JSON list")
    source.add_argument("--board", metavar="FILE", help="a storyboard file (board JSON): its shots' prompts, and "
                                                        "their images (i2v) or clips (v2v)")
    r.add_argument("--budgets", type=budgets, metavar="B1,B2,...", help="default 1,2,4,8,12,16,32")
    r.add_argument("--seeds", type=int, default=2, help="seeds per prompt (default 2: seeds 0 and 1)")
    r.add_argument("--mode", choices=["t2v", "i2v", "v2v"], default="t2v")
    r.add_argument("--images", metavar="DIR", help="i2v: one image per prompt (in name order), or one for all")
    r.add_argument("--videos", metavar="DIR", help="v2v: one clip per prompt (in name order), or one for all")
    r.add_argument("--frames", type=int, help="frames per render (default: the model's)")
    r.add_argument("--name", help="a name for the sweep")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--standalone", action="store_true", help=STANDALONE_HELP)
    for name, text in (("resume", "render what a sweep still lacks, then report"),
                       ("report", "a sweep's report (and its exports)"),
                       ("policies", "draft/preview/final budgets proposed from a sweep")):
        c = ssub.add_parser(name, help=text)
        common(c)
        c.add_argument("id", help="the sweep id (see `sweep list`)")
        c.add_argument("--json", action="store_true")
        if name == "resume":
            c.add_argument("--quiet", action="store_true")
            c.add_argument("--standalone", action="store_true", help=STANDALONE_HELP)
        if name == "policies":
            c.add_argument("--write", action="store_true", help="write them to <data dir>/policies.toml")
    ls = ssub.add_parser("list", help="the sweeps, newest first")
    common(ls)
    ls.add_argument("--json", action="store_true")


# ---- the spec from the flags ----------------------------------------------------------------------------------
def read_prompts(path: str) -> list[str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudioError(f"prompts file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudioError(f"cannot read the prompts file {p.name}: {exc}") from None
    if text.lstrip().startswith("["):
        try:
            prompts = json.loads(text)
        except ValueError as exc:
            raise StudioError(f"{p.name} is not a valid JSON list of prompts: {exc}") from None
        if not isinstance(prompts, list) or not all(isinstance(x, str) for x in prompts):
            raise StudioError(f"{p.name}: a JSON prompts file is a list of strings")
        return prompts
    prompts = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise StudioError(f"{p.name} has no prompts (one per line)")
    return prompts


def _inputs(folder: str | None, suffixes: tuple, count: int, flag: str) -> list[str]:
    if not folder:
        raise StudioError(f"{flag} DIR is needed for this mode: one file per prompt, or one for all")
    d = Path(folder)
    if not d.is_dir():
        raise StudioError(f"{flag}: not a folder: {d}")
    files = sorted(str(f) for f in d.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
    if len(files) == 1:
        return files * count
    if len(files) != count:
        raise StudioError(f"{flag} {d} holds {len(files)} files for {count} prompts: give one per prompt, or one")
    return files


def board_prompts(path: str, mode: str) -> list[dict]:
    """A storyboard file's shots as a sweep's prompts (with each shot's image or clip, relative to the file)."""
    from .render_jobs import board_job

    board = board_job(SimpleNamespace(file=path, export_dir=None, stage="preview"))["board"]
    shots = board.get("shots") if isinstance(board, dict) else None
    if not isinstance(shots, list) or not shots:
        raise StudioError(f"{Path(path).name}: a board file has a list of shots")
    key = {"i2v": "image", "v2v": "video"}.get(mode)
    prompts = []
    for shot in shots:
        entry = {"prompt": shot.get("prompt") if isinstance(shot, dict) else None}
        if key and isinstance(shot, dict) and isinstance(shot.get(key), str):
            entry[key] = str(Path(path).resolve().parent / shot[key])
        prompts.append(entry)
    return prompts


def sweep_spec(args) -> dict:
    if args.board:
        spec = {"prompts": board_prompts(args.board, args.mode), "mode": args.mode, "seeds": args.seeds,
                "models": args.model or [], "name": args.name or Path(args.board).stem}
        return dict(spec, **({"budgets": args.budgets} if args.budgets else {}),
                    **({"frames": args.frames} if args.frames else {}))
    prompts: list = read_prompts(args.prompts)
    if args.mode in ("i2v", "v2v"):
        key, folder, suffixes, flag = (("image", args.images, IMAGE_SUFFIXES, "--images") if args.mode == "i2v"
                                       else ("video", args.videos, VIDEO_SUFFIXES, "--videos"))
        files = _inputs(folder, suffixes, len(prompts), flag)
        prompts = [{"prompt": p, key: f} for p, f in zip(prompts, files)]
    spec = {"prompts": prompts, "mode": args.mode, "seeds": args.seeds, "models": args.model or [],
            "name": args.name or Path(args.prompts).stem}
    if args.budgets:
        spec["budgets"] = args.budgets
    if args.frames:
        spec["frames"] = args.frames
    return spec


def _attach(spec: dict, limit_mb: float) -> dict:
    """Each prompt's image or clip sent along to the owning studio (each under its upload limit)."""
    prompts = [dict(p, **{k: owner_client.attach(p[k], f"prompt {k}", limit_mb) for k in ("image", "video")
                          if p.get(k)})
               if isinstance(p, dict) else p for p in spec["prompts"]]
    return dict(spec, prompts=prompts)


# ---- running ----------------------------------------------------------------------------------------------------
def run(args, open_studio) -> int:
    command = args.sweep_command
    if command in ("run", "resume"):
        return _run_or_resume(args, open_studio)
    if command == "list":
        return _list(args)
    if command == "report":
        report = _light_or_owner(args, "sweep-report", {"id": args.id}, lambda s: _report(s, args.id))
        print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
        return 0
    answer = _light_or_owner(args, "sweep-policies", {"id": args.id, "write": args.write},
                             lambda s: _policies(s, args.id, args.write))
    print(json.dumps(answer, indent=2, ensure_ascii=False) if args.json else format_policies(answer))
    return 0


def _run_or_resume(args, open_studio) -> int:
    from . import render_jobs as cli_jobs
    from ..jobs import sweep_run

    args.open_studio = open_studio
    if args.sweep_command == "run":
        job, route = sweep_spec(args), "sweep-run"
        run_here = sweep_run.run_events
    else:
        job, route = {"id": args.id}, "sweep-resume"
        run_here = lambda studio, j: sweep_run.resume_events(studio, j["id"])  # noqa: E731
    printer = SweepPrinter(args.json, args.quiet)
    events = cli_jobs._events(args, route, job, _attach if route == "sweep-run" else (lambda j, _limit: j), run_here)
    try:
        for event in events:
            printer.show(event)
    except KeyboardInterrupt:
        printer.error = printer.error or "Interrupted: the sweep's remaining renders were cancelled; resume it " \
                                         "with `python -m studio sweep resume ID`."
    finally:
        events.close()
        printer.close()
    return printer.finish()


def _light_or_owner(args, route: str, body: dict, here):
    """Ask the studio that owns the folder, or do it here on the history alone (no model, no torch)."""
    from ..store.history import HistoryStore

    settings = folder_settings(args)
    owner = owner_client.find_studio(settings.data_dir)
    if owner is not None:
        for event in owner_client.send(owner, route, body):
            if event.get("type") == "error":
                raise StudioError(event["message"])
            return event.get("answer")
        raise StudioError(f"the studio at {owner.url} gave no answer")
    history = HistoryStore(settings.history_path)
    try:
        return here(SimpleNamespace(history=history, settings=settings))
    finally:
        history.close()


def _report(studio, sid: str) -> dict:
    from ..jobs import sweep_run

    return sweep_run.report(studio, sid)


def _policies(studio, sid: str, write: bool) -> dict:
    from ..jobs import sweep_run

    return sweep_run.policies(studio, sid, write)


def _list(args) -> int:
    from ..store.sweeps import SweepStore

    rows, printed = read_rows(args, lambda history: SweepStore(history).list())
    if printed:
        return 0
    if not rows:
        print("no sweeps yet: `python -m studio sweep run --prompts FILE`", file=sys.stderr)
    for r in rows:
        print(f"{r['id']}  {r['status']:<10} {r['rendered']}/{r['items']} rendered, {r['reviewed']} reviewed  "
              f"{r['name']}")
    return 0


# ---- printing ---------------------------------------------------------------------------------------------------
def _fmt(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def format_report(report: dict) -> str:
    """The summary table, the cliffs, what is off and where the exports are."""
    summary = report["summary"]
    shown = [m for m in TABLE_METRICS if any(m[0] in g["metrics"] for g in summary)]
    head = f"{'model':<22} {'steps':>5} {'n':>3} {'median s':>9} {'p90 s':>7} {'peak GB':>12}"
    head += "".join(f" {label:>9}" for _, label, _ in shown) + f" {'accepted':>16}"
    lines = [f"sweep {report['id']} ({report['status']}): {report['counts']['rendered']}/"
             f"{report['counts']['items']} rendered, {report['counts']['reviewed']} reviewed", head]
    for g in summary:
        acc = g["accepted"]
        accepted = (f"{acc['rate']:.0%} [{acc['low']:.0%}-{acc['high']:.0%}] n={acc['reviewed']}"
                    if acc["reviewed"] else "not reviewed")
        line = (f"{g['model'][:22]:<22} {g['steps']:>5} {g['renders']:>3} {_fmt(g['seconds'].get('median'), '{:.2f}'):>9}"
                f" {_fmt(g['seconds'].get('p90'), '{:.2f}'):>7} {str(g['peak_memory_gb']):>12}")
        line += "".join(f" {_fmt(g['metrics'].get(m, {}).get('mean'), pat):>9}" for m, _, pat in shown)
        lines.append(line + f" {accepted:>16}")
    lines.append("cliffs: " + ("none" if not report["cliffs"] else ""))
    for c in report["cliffs"]:
        lines.append(f"  {c['model']}: {c['label']} worse at {c['at_steps']} steps than at {c['from_steps']} "
                     f"(by {c['drop']:.3g}, noise {c['noise']:.3g})")
    for name, why in report.get("off", {}).items():
        lines.append(f"{name}: {why}")
    if report.get("exports"):
        lines.append(f"exports: {Path(report['exports']['summary_json']).parent}")
    lines.append(f"policies: python -m studio sweep policies {report['id']}")
    return "\n".join(lines)


def format_policies(answer: dict) -> str:
    proposal = answer["proposal"]
    lines = [f"proposed from sweep {answer['id']} ({proposal['model']}, by {proposal['signal'] or 'nothing'}):"]
    for p in proposal["policies"]:
        lines.append(f"  {p['name']:<8} {p['steps']:>3} steps  {p['reason']}")
    if proposal.get("note"):
        lines.append(f"note: {proposal['note']}")
    lines.append(f"written to {answer['written']}" if answer.get("written")
                 else "not written: add --write to put them in your policies.toml")
    return "\n".join(lines)


class SweepPrinter:
    def __init__(self, as_json: bool, quiet: bool):
        self.as_json, self.quiet = as_json, quiet
        self.report: dict | None = None
        self.error: str | None = None
        self.failed = 0
        self.bar = None

    def show(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "sweep":
            print(f"sweep {event['id']}: {event['items']} renders, {event['done']} done, {event['todo']} to do",
                  file=sys.stderr)
            if not self.quiet:
                from tqdm import tqdm

                self.bar = tqdm(total=event["items"], initial=event["done"], unit="render", file=sys.stderr)
        elif kind == "render" and self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{event['steps']} steps, {event['seconds'] or 0:.2f} s")
        elif kind == "render_failed":
            self.failed += 1
            print(f"render {event['item']} ({event['steps']} steps) failed: {event['message']}", file=sys.stderr)
        elif kind == "report":
            self.report = {k: v for k, v in event.items() if k != "type"}
        elif kind == "error":
            self.error = event["message"]

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finish(self) -> int:
        if self.report is None:
            print(f"error: {self.error or 'the sweep did not finish'}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(json.dumps(self.report, indent=2, ensure_ascii=False) if self.as_json else format_report(self.report))
        return 0 if self.report["status"] == "done" else EXIT_USER_ERROR
