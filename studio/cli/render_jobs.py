"""`python -m studio render` and `board run`: the job goes to the studio that owns the data folder, or runs here.

A studio owns the folder and answers: the job is sent to it (owner_client.py): it renders on the model it has
loaded, into its history, and this process imports neither torch, diffusers nor gradio. No studio owns it (or
--standalone, which a running studio refuses): the job runs in this process (jobs.py). Either way the same events
come back and print the same way: mp4 paths on stdout one per line (or a JSON summary with --json), progress and
messages on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

from ..engine import input_files
from ..app import owner_client
from ..config import Settings
from ..errors import EXIT_USER_ERROR, StudioError

BOARD_FILE_MB = 20.0  # a board file is text: shots and their settings
LOCAL_ONLY = ("device", "offload", "vae_tiling", "compile", "memory_budget", "allow_download", "models_file")


def _err(message: str) -> None:
    print(message, file=sys.stderr)


# ---- where the job runs ------------------------------------------------------------------
def _events(args, route: str, job: dict, attach: Callable[[dict, float], dict], run_here) -> Iterator[dict]:
    """The job's events: from the owning studio if one answers, else from ``run_here(studio, job)`` on a studio
    opened in this process (``args.open_studio``)."""
    data_dir = Settings.from_env(data_dir=args.data_dir).data_dir
    owner = owner_client.find_studio(data_dir, standalone=getattr(args, "standalone", False))
    if owner is None:
        studio = args.open_studio(args)
        try:
            yield from run_here(studio, job)
        finally:
            studio.close()
        return
    ignored = [f"--{name.replace('_', '-')}" for name in LOCAL_ONLY if getattr(args, name, None) is not None]
    _err(f"sent to the studio at {owner.url} (pid {owner.pid})"
         + (f"; its own settings apply, not {', '.join(ignored)}" if ignored else ""))
    yield from owner_client.send(owner, route, attach(job, owner_client.upload_limit_mb(owner)))


def _run_here(name: str):
    """``jobs.<name>``, imported only when the job runs in this process: a client of a running studio imports no
    engine (no torch)."""
    def run(studio, job):
        from ..jobs import following as jobs

        return getattr(jobs, name)(studio, job)
    return run


# ---- render ---------------------------------------------------------------------------
def render_job(args) -> dict:
    return {"request": request_fields(args), "preview": args.preview, "compare": args.compare,
            "policy": args.policy, "gif": args.gif}


def request_fields(args) -> dict:
    """The request the flags give; with --from, the file's request with the flags given on top."""
    from ..engine import lora
    from ..errors import InvalidRequest

    flags = {
        "prompt": args.prompt, "mode": args.mode, "negative_prompt": args.negative_prompt, "image": args.image,
        "video": args.video, "seed": args.seed, "steps": args.steps, "height": args.height, "width": args.width,
        "frames": args.frames, "fps": args.fps, "model": args.model or os.environ.get("STUDIO_MODEL") or None,
        "guidance_scale": args.guidance_scale, "context_frames": args.context_frames,
        "loras": [lora.parse_cli(t) for t in args.lora or []] or None,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if args.from_file:
        return _restored(args, given)
    if "prompt" not in given:
        raise InvalidRequest({"prompt": "is required: give --prompt, or --from FILE to restore a render's settings"})
    return given


def _restored(args, given: dict) -> dict:
    """``--from FILE``: the settings in the file's metadata (inputs found through this folder's history)."""
    from ..engine import restore
    from ..store.history import HistoryStore

    history = HistoryStore(Settings.from_env(data_dir=args.data_dir).history_path)
    try:
        req, notes = restore.restore(args.from_file, history, given)
    finally:
        history.close()
    for note in notes:
        _err(f"note: {note}")
    return req.to_dict()


def attach_inputs(job: dict, limit_mb: float) -> dict:
    """The job with its input image and video attached as files (each under ``limit_mb``), to send to the studio
    that owns the folder."""
    request = dict(job["request"], image=owner_client.attach(job["request"].get("image"), "--image", limit_mb),
                   video=owner_client.attach(job["request"].get("video"), "--video", limit_mb))
    return dict(job, request=request)


def render(args, open_studio) -> int:
    """Run `render`; ``open_studio(args)`` opens a Studio in this process when no studio owns the folder."""
    args.open_studio = open_studio
    return _print_events(args, _events(args, "render", render_job(args), attach_inputs, _run_here("render_events")))


def _print_events(args, events) -> int:
    """Print a render's (or an extension's) events as they come; its exit status."""
    printer = RenderPrinter(args.json, args.quiet)
    try:
        for event in events:
            printer.show(event)
    except KeyboardInterrupt:
        printer.failure = "Interrupted."
    finally:
        events.close()  # hangs up on the studio (it cancels the render), or cancels the render here
    return printer.finish()


class _Bar:
    """One tqdm bar per step budget, on stderr."""

    def __init__(self):
        self.bar = None

    def update(self, event: dict) -> None:
        from tqdm import tqdm

        desc = f"{event['steps']} steps"
        if self.bar is None or self.bar.desc != desc:
            self.close()
            self.bar = tqdm(total=event["total"], desc=desc, file=sys.stderr, leave=False)
        self.bar.update(event["step"] - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class RenderPrinter:
    def __init__(self, as_json: bool, quiet: bool):
        self.as_json, self.quiet = as_json, quiet
        self.start: dict | None = None
        self.results: list[dict] = []
        self.failure: str | None = None
        self.error: str | None = None  # refused before it ran: no summary
        self.bar = _Bar()

    def show(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "start":
            self.start = event
            for note in event["notes"]:
                _err(f"note: {note}")
            _err(f"seed {event['seed']}, model {event['model']}, {event['width']}x{event['height']}x"
                 f"{event['frames']}, budgets {event['budgets']}")
        elif kind == "status" and not self.quiet:
            _err(event["message"])
        elif kind == "waiting" and not self.quiet:
            _err(f"waiting in the studio's render queue: {event['position']} of {event['waiting']}")
        elif kind == "progress" and not self.quiet:
            self.bar.update(event)
        elif kind == "result":
            self._result(event)
        elif kind in ("failed", "cancelled"):
            self.failure = event["message"]
        elif kind == "requeued":  # the studio stopped under the job: it runs again at the next start
            self.failure = f"the studio stopped; job {event['job']} waits in the queue and runs when it starts again"
        elif kind == "error":
            self.error = event["message"]

    def _result(self, event: dict) -> None:
        self.bar.close()
        self.results.append(event)
        if not self.as_json:
            print(event["video"], flush=True)
            t = event["timings"]
            _err(f"  {event['steps']} steps: {t['total']:.2f} s (denoise {t['denoise']:.2f}, decode "
                 f"{t['decode']:.2f}, write {t['write']:.2f})")

    def finish(self) -> int:
        self.bar.close()
        if self.error is not None or self.start is None:
            _err(f"error: {self.error or self.failure or 'the render did not start'}")
            return EXIT_USER_ERROR
        if self.as_json:
            print(json.dumps(self.summary(), indent=2, ensure_ascii=False))
        if self.failure:
            _err(f"error: {self.failure}")
            return EXIT_USER_ERROR
        return 0

    def summary(self) -> dict:
        keys = ("id", "steps", "role", "video", "thumbnail", "timings", "request")
        return {
            "ok": self.failure is None, "error": self.failure, "seed": self.start["seed"],
            "model": self.start["model"], "plan": self.start["plan"], "notes": self.start["notes"],
            "results": [{k: r[k] for k in keys} for r in self.results],
        }


# ---- render --extend ------------------------------------------------------------------
def extend_job(args) -> dict:
    """``render --extend REF --frames N``'s job (following.extension_job says what each key does)."""
    fields = {"source": args.extend, "frames": args.frames, "prompt": args.prompt, "model": args.model,
              "negative_prompt": args.negative_prompt or None, "seed": _number(args.seed, int, "seed"),
              "steps": _number(args.steps, int, "steps"), "context_frames": _number(args.context_frames, int,
                                                                                  "context_frames"),
              "guidance_scale": _number(args.guidance_scale, float, "guidance_scale")}
    return {k: v for k, v in fields.items() if v is not None}


def _number(value, kind: type, name: str):
    """A flag's text as a number (None stays None); InvalidRequest naming the flag otherwise."""
    from ..errors import InvalidRequest

    if value is None:
        return None
    try:
        return kind(str(value).strip())
    except ValueError:
        word = "a whole number" if kind is int else "a number"
        raise InvalidRequest({name: f"must be {word}, got {str(value)[:40]!r}"}) from None


def attach_source(job: dict, limit_mb: float) -> dict:
    """The clip to extend sent as a file when it names one here (a history id travels as it is)."""
    source = job["source"]
    if os.path.lexists(Path(source).expanduser()):
        return dict(job, source=owner_client.attach(source, "--extend", limit_mb))
    return job


def extend(args, open_studio) -> int:
    """Run `render --extend`: the joined clip's mp4 path on stdout (or the JSON summary), like `render`."""
    args.open_studio = open_studio
    return _print_events(args, _events(args, "extend", extend_job(args), attach_source,
                                       _run_here("extension_events")))


# ---- board run ------------------------------------------------------------------------
def board_job(args) -> dict:
    path = Path(args.file)
    if not os.path.lexists(path):
        raise StudioError(f"Board file not found: {path}")
    raw = input_files.read(path, "board file", BOARD_FILE_MB, "the limit for a board file")  # not a FIFO or /dev/zero: a file, read with a bound
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StudioError(f"{path.name} is not valid JSON: {exc}") from None
    export_dir = str(Path(args.export_dir).resolve()) if args.export_dir else None
    return {"board": data, "source": str(path.resolve()), "stage": args.stage, "export_dir": export_dir}


def _attach_shot_inputs(job: dict, limit_mb: float) -> dict:
    """Each shot's image and video sent along (relative paths are the board file's)."""
    board, folder = job["board"], Path(job["source"]).parent
    if not isinstance(board, dict) or not isinstance(board.get("shots"), list):
        return job  # the studio says what is wrong with it
    shots = []
    for shot in board["shots"]:
        if isinstance(shot, dict):
            shot = dict(shot, **{key: owner_client.attach(str(folder / shot[key]), f"a shot's {key}", limit_mb)
                                 for key in ("image", "video")
                                 if isinstance(shot.get(key), str) and shot[key]})
        shots.append(shot)
    return dict(job, board=dict(board, shots=shots))


def board(args, open_studio) -> int:
    """Run `board run`; ``open_studio(args)`` opens a Studio in this process when no studio owns the folder."""
    args.open_studio = open_studio
    printer = BoardPrinter(args.quiet)
    events = _events(args, "board-run", board_job(args), _attach_shot_inputs, _run_here("board_events"))
    try:
        for event in events:
            printer.show(event)
    finally:
        events.close()
        printer.close()
    return printer.finish()


class BoardPrinter:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.done: dict | None = None
        self.error: str | None = None

    def show(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "board":
            _err(f"board '{event['name']}': {event['shots']} shots; {event['stage']}: {event['todo']} to render, "
                 f"{event['done']} already done")
            if not self.quiet:
                from tqdm import tqdm

                self.bar = tqdm(total=event["todo"], desc=event["stage"], unit="shot", file=sys.stderr)
        elif kind == "shot":
            self._shot(event)
        elif kind == "exported":
            self.close()
            _err(f"exported to {event['dir']}")
        elif kind == "batch_done":
            self.done = event
        elif kind == "error":
            self.error = event["message"]

    def _shot(self, event: dict) -> None:
        inner = event["event"]
        if inner["type"] == "requeued":
            self.error = (f"the studio stopped; shot {event['index'] + 1} (job {inner['job']}) and the shots after "
                          "it wait in the queue and run when it starts again")
        elif inner["type"] == "result":
            print(inner["video"], flush=True)
            if self.bar is not None:
                self.bar.update(1)
        elif inner["type"] == "progress" and self.bar is not None:
            self.bar.set_postfix_str(f"shot {event['index'] + 1}: step {inner['step']}/{inner['total']}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finish(self) -> int:
        if self.error is not None:
            _err(f"error: {self.error}")
            return EXIT_USER_ERROR
        for position, message in (self.done or {}).get("failed", []):
            _err(f"error: shot {position}: {message}")
        done = self.done
        return EXIT_USER_ERROR if done is None or done["failed"] or done["cancelled"] else 0
