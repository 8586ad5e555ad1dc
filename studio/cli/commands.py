"""``python -m studio``: headless renders, comparisons, history and the model list.

stdout carries results (one mp4 path per line, or JSON with --json); progress and
messages go to stderr. A StudioError prints one line and exits 2.

`render` and `board run` go to the studio that owns the data folder when one runs (cli_jobs.py). The read-only
commands (history, stats, models, policies) import neither torch, diffusers nor gradio, and change nothing.
"""

from __future__ import annotations

import argparse
import sys

from .args import STANDALONE_HELP, budgets, folder_settings, json_rows, read_rows
from ..errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, StudioError


def _folder_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the commands that only read the data folder (history, stats, policies): no GPU, no models."""
    p.add_argument("--data-dir", help="where history and renders live (default: $STUDIO_DATA_DIR or a per-user folder)")
    p.add_argument("--models-file", help="extra model entries (TOML); default <data dir>/models.toml")


def _common(p: argparse.ArgumentParser, many_models: bool = False) -> None:
    _folder_flags(p)
    p.add_argument("--model", help="model id (see `python -m studio models`), model folder, or hub repo id owner/name"
                   + ("; repeat it to compare models" if many_models else ""),
                   action="append" if many_models else "store")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--offload", choices=["auto", "none", "model", "group", "sequential"],
                   help="GPU memory mode (default auto: chosen from free memory and the model's needs)")
    p.add_argument("--vae-tiling", choices=["auto", "on", "off"], help="tile the VAE decode (saves GPU memory)")
    p.add_argument("--compile", action="store_true", default=None, help="regionally compile the transformer (GPU)")
    p.add_argument("--memory-budget", type=float, metavar="GB", help="memory budget for loaded models")
    net = p.add_mutually_exclusive_group()
    net.add_argument("--allow-download", action="store_true", default=None, help="allow hub downloads")
    net.add_argument("--offline", dest="allow_download", action="store_false", help="never download (default)")
    p.add_argument("--farm", choices=["local", "ray"], help="local (default: in this process) | ray (render farm)")
    p.add_argument("--workers", type=int, metavar="N", help="farm: workers per GPU-less node (required on a CPU)")
    p.add_argument("--ray-address", metavar="HOST:PORT", help="farm: join this Ray cluster (or auto); default local")


def _render_flags(r: argparse.ArgumentParser) -> None:
    """Every render flag (`render` and `queue add`)."""
    r.add_argument("--prompt", help="what to render (required unless --from gives it; --extend: the original's)")
    r.add_argument("--from", dest="from_file", metavar="FILE",
                   help="restore the settings of a studio mp4 or PNG thumbnail; flags given alongside override them")
    r.add_argument("--lora", action="append", metavar="FILE[:STRENGTH]",
                   help="a LoRA (a name in <data dir>/loras/ or a path), strength -2..2 (default 1); repeatable")
    r.add_argument("--mode", choices=["t2v", "i2v", "v2v"], help="default t2v")
    r.add_argument("--negative-prompt")
    r.add_argument("--image", help="first frame for --mode i2v")
    r.add_argument("--video", help="clip to continue for --mode v2v")
    r.add_argument("--context-frames", type=int, help="v2v: use at most this many input frames as context")
    r.add_argument("--extend", metavar="MP4_OR_HISTORY_ID",
                   help="continue a finished render; --frames is then the number of new frames")
    r.add_argument("--seed", help="integer seed (default: random, printed)")
    r.add_argument("--steps", help="step budget (1-128, default 4)")
    r.add_argument("--height")
    r.add_argument("--width")
    r.add_argument("--frames")
    r.add_argument("--fps")
    r.add_argument("--guidance-scale", type=float, help="keep 1.0 for AnyFlow (guidance is distilled)")
    plan = r.add_mutually_exclusive_group()
    plan.add_argument("--preview", type=int, metavar="STEPS", help="render a cheap preview first, then --steps")
    plan.add_argument("--compare", type=budgets, metavar="B1,B2,...", help="render the same seed at several budgets")
    r.add_argument("--policy", help="a budget policy by name (presets/policies.toml): its steps, size, frames")
    r.add_argument("--gif", action="store_true", help="also write a GIF next to each mp4")
    r.add_argument("--json", action="store_true", help="print a JSON summary instead of paths")
    r.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio", description="AnyFlow Studio from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render a video (or a preview/refine or comparison plan)")
    _common(r)
    _render_flags(r)
    r.add_argument("--standalone", action="store_true", help=STANDALONE_HELP)

    h = sub.add_parser("history", help="list or search past renders")
    _folder_flags(h)
    h.add_argument("--model", help="only renders of this model id")
    h.add_argument("--search", default="", help="full-text search over prompts")
    h.add_argument("--mode", choices=["t2v", "i2v", "v2v"])
    h.add_argument("--steps", type=int)
    h.add_argument("--status", choices=["running", "ok", "failed", "cancelled", "interrupted"])
    h.add_argument("--limit", type=int, default=20)
    h.add_argument("--offset", type=int, default=0, help="skip this many of the newest matches (paging)")
    h.add_argument("--json", action="store_true")

    m = sub.add_parser("models", help="models in the catalogue: available locally, cached, memory")
    _common(m)
    m.add_argument("--json", action="store_true")
    md = m.add_subparsers(dest="models_command").add_parser("download", help="download a hub model, with progress")
    _common(md)
    md.add_argument("id", help="a model id from the catalogue, or a hub repo (org/name)")
    md.add_argument("--accept-license", action="store_true", help="accept a non-commercial licence (remembered)")

    st = sub.add_parser("stats", help="what each step budget bought: renders, starred rate, median seconds")
    _folder_flags(st)
    st.add_argument("--json", action="store_true")

    pol = sub.add_parser("policies", help="the budget policies and the queue cap")
    _folder_flags(pol)

    b = sub.add_parser("board", help="storyboards from a JSON file (headless, resumable)")
    bsub = b.add_subparsers(dest="board_command", required=True)
    br = bsub.add_parser("run", help="render a board file's shots at the preview or final stage")
    _common(br)
    br.add_argument("file", help="board JSON: {name, model?, preview_policy?, final_policy?, shots: [{prompt, ...}]}")
    br.add_argument("--stage", choices=["preview", "final"], default="preview")
    br.add_argument("--export-dir", help="also write contact sheet, joined finals and board JSON here")
    br.add_argument("--quiet", action="store_true")
    br.add_argument("--standalone", action="store_true", help=STANDALONE_HELP)

    from .queue_commands import add_parser as add_queue_parser

    add_queue_parser(sub, _common, _render_flags)
    from .sweep_commands import add_parser as add_sweep_parser

    add_sweep_parser(sub, _common)
    return parser


def _open(args):
    from ..app.services import Studio

    return Studio.open(
        data_dir=args.data_dir,
        default_model=None,
        device=args.device,
        offload=args.offload,
        vae_tiling=args.vae_tiling,
        compile=args.compile,
        memory_budget_gb=args.memory_budget,
        allow_download=args.allow_download,
        models_file=args.models_file,
        farm=getattr(args, "farm", None), workers=getattr(args, "workers", None),
        ray_address=getattr(args, "ray_address", None),
    )


def _open_to_render(args):
    """Open the studio in this process for a job no studio takes (render, board run; see cli_jobs.py).

    No process owns the data folder: this one takes it for its lifetime (released by ``studio.close``) and first
    recovers after a crash. Another command-line render owns it: this one renders beside it on its own copy of the
    model, recovers nothing, and so never marks that process's running renders interrupted nor deletes the partial
    files it is writing. Read-only commands (history, stats, models, policies) open no studio at all."""
    studio = _open(args)
    try:
        from ..farm.ray_farm import attach

        attach(studio)  # --farm ray: the engine's GPU work runs on Ray workers
    except StudioError:
        studio.close()
        raise
    if studio.claim_data_folder(kind="cli"):
        report = studio.recover_after_crash()
        if report:
            print(f"note: recovered after a crash: {report.describe()}", file=sys.stderr)
    else:
        owner = studio.folder_owner()
        who = f"another process ({owner.describe()})" if owner else "another process"
        print(f"note: {who} owns {studio.settings.data_dir}; rendering in this process, leaving its renders alone",
              file=sys.stderr)
    return studio


def cmd_render(args) -> int:
    from .render_jobs import render

    if args.extend:  # sent to the studio that owns the folder, like any render; else run here
        from .render_jobs import extend

        _check_extend(args)
        return extend(args, _open_to_render)
    return render(args, _open_to_render)



# render flags an extension does not use: it continues the original's clip (v2v, its size, fps and LoRAs)
NOT_FOR_EXTEND = ("from_file", "lora", "mode", "image", "video", "height", "width", "fps", "preview", "compare",
                  "policy", "gif")


def _check_extend(args) -> None:
    """Refuse ``--extend`` with flags it would ignore; ``--frames`` becomes the number of new frames."""
    flag = {"from_file": "from"}
    bad = [f"--{flag.get(n, n)}" for n in NOT_FOR_EXTEND if getattr(args, n, None) not in (None, False)]
    args.frames = _new_frames(args.frames)  # before a model loads or anything is sent
    if bad:
        raise StudioError(f"{', '.join(bad)} {'does' if len(bad) == 1 else 'do'} not apply to --extend: an "
                               f"extension continues the original (its mode, size, fps and LoRAs); leave "
                               f"{'it' if len(bad) == 1 else 'them'} out.")


def _new_frames(text: str | None) -> int:
    """``--frames`` for ``--extend``: how many new frames, a whole number from 1 to MAX_FRAMES (the model's own
    limit on the whole clip it renders is checked with the request)."""
    from ..errors import InvalidRequest
    from ..engine.request import MAX_FRAMES

    try:
        frames = int(str(text).strip()) if text is not None else 0
    except ValueError:
        raise InvalidRequest({"frames": f"must be a whole number of new frames, got {str(text)[:40]!r}"}) from None
    if not 1 <= frames <= MAX_FRAMES:
        raise InvalidRequest({"frames": f"--extend needs --frames: the new frames, 1 to {MAX_FRAMES}; got "
                                        f"{frames}"})
    return frames


def cmd_history(args) -> int:
    from ..store.history import Query

    query = Query(text=args.search, mode=args.mode, model=args.model, steps=args.steps, status=args.status,
                  limit=args.limit, offset=max(0, args.offset))
    matching = []  # how many match in all, for the paging line

    def fetch(history):
        matching.append(history.count_matching(query))
        return history.search(query)

    rows, printed = read_rows(args, fetch)
    if printed:
        return 0
    if not rows:
        print("no renders found" + (f" past the first {matching[0]}" if matching and matching[0] else ""),
              file=sys.stderr)
        return 0
    for row in rows:
        total = (row.get("timings") or {}).get("total")
        secs = f"{total:6.2f}s" if isinstance(total, (int, float)) else "      -"
        print(f"{row['id']}  {row['status']:<9} {row['mode']}  {row['model']:<18} {row['steps']:>3} steps {secs}  "
              f"seed {row['seed']}  {row['prompt'][:60]!r}")
        if row.get("video_path"):
            print(f"    {row['video_path']}")
        if row.get("error"):
            print(f"    error: {row['error']}")
    shown_to = query.offset + len(rows)
    if matching and shown_to < matching[0]:
        print(f"{query.offset + 1}-{shown_to} of {matching[0]}; the next ones: --offset {shown_to}", file=sys.stderr)
    return 0


def cmd_models(args) -> int:
    if getattr(args, "models_command", None) == "download":
        return cmd_models_download(args)
    from ..models import catalogue
    from ..app import owner_client
    from ..models.registry import Registry

    settings = folder_settings(args)  # files only; what is loaded, from the studio that owns the folder if one runs
    loaded = owner_client.loaded_models(settings.data_dir)
    rows, printed = json_rows(args, catalogue.describe(Registry.load(settings.user_models_file), loaded))
    if printed:
        return 0
    for row in rows:
        where = row["folder"] if row["available"] else "not on this machine"
        loaded = f"  (loaded in the studio: {row['device']}, {row['memory_mode']})" if row["loaded"] else ""
        print(f"{row['id']:<18} {row['family']:<13} {','.join(row['modes']):<11} native {row['native']:<15} "
              f"~{row['memory_gb']:g} GB  {where}{loaded}")
        print(f"{'':<18} {row['source']}  [{row['license']}]")
    return 0


def cmd_models_download(args) -> int:
    """Download in this process (no studio needed), progress on stderr; the snapshot folder on stdout."""
    from ..config import Settings
    from ..models.downloads import DownloadManager, download_with_bar

    settings = Settings.from_env(data_dir=args.data_dir, models_file=args.models_file)
    manager = DownloadManager(settings, offline=args.allow_download is False)
    print(download_with_bar(manager, args.id, accept_license=args.accept_license).folder)
    return 0


def stats_table(rows: list[dict]) -> list[str]:
    """``stats`` as aligned columns: the model column as wide as its longest id, numbers right-aligned."""
    width = max([len("model")] + [len(str(r["model"])) for r in rows])
    head = f"{'model':<{width}}  {'steps':>5}  {'renders':>7}  {'starred':>7}  {'median s':>8}"
    lines = [head]
    for r in rows:
        med = f"{r['median_seconds']:.2f}" if r["median_seconds"] is not None else "-"
        starred = f"{100 * (r['accepted_rate'] or 0):.0f}%"
        lines.append(f"{str(r['model']):<{width}}  {int(r['steps'] or 0):>5}  {r['renders']:>7}  {starred:>7}  {med:>8}")
    return lines


def cmd_stats(args) -> int:
    rows, printed = read_rows(args, lambda history: history.stats())
    if printed:
        return 0
    if not rows:
        print("no finished renders yet", file=sys.stderr)
        return 0
    for line in stats_table(rows):
        print(line)
    return 0


def cmd_policies(args) -> int:
    from ..engine.policy import Policies

    policies = Policies.load(folder_settings(args).user_policies_file)
    for p in policies.policies.values():
        size = f" {p.width}x{p.height}" if p.width and p.height else ""
        frames = f" {p.frames} frames" if p.frames else ""
        print(f"{p.name:<10} {p.steps:>3} steps{size}{frames}  {p.description}")
    caps = policies.caps
    print(f"queue cap: above {caps.threshold} waiting renders, budgets are capped at {caps.max_steps} steps")
    return 0


def cmd_board(args) -> int:
    from .render_jobs import board

    return board(args, _open_to_render)


def cmd_queue(args) -> int:
    from .queue_commands import run

    return run(args, _open_to_render)


def cmd_sweep(args) -> int:
    from .sweep_commands import run

    return run(args, _open_to_render)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"render": cmd_render, "history": cmd_history, "models": cmd_models, "stats": cmd_stats,
                "policies": cmd_policies, "board": cmd_board, "queue": cmd_queue, "sweep": cmd_sweep}
    try:
        return handlers[args.command](args)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (e.g. piped into `head`)
        return 0
