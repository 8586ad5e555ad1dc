"""AnyFlow Studio: the web UI.

    python app.py                      # http://127.0.0.1:7860, embedded default model, offline
    python app.py --model anyflow-far-1.3b --allow-download --port 8000
    python app.py --window             # in its own desktop window (bash scripts/setup.sh --desktop)

Models load on first use; nothing heavy happens at start-up.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="AnyFlow Studio web UI")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for LAN)")
    p.add_argument("--port", type=int, default=None, help="port (default: 7860, or the next free one)")
    p.add_argument("--model", default=None,
                   help="default model: an id, a model folder or a hub repo id (default: the embedded model)")
    p.add_argument("--data-dir", default=None, help="where renders and history live")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    net = p.add_mutually_exclusive_group()
    net.add_argument("--offline", dest="allow_download", action="store_false", default=None,
                     help="never download weights (the default)")
    net.add_argument("--allow-download", dest="allow_download", action="store_true",
                     help="allow downloading model weights from the Hugging Face hub")
    p.add_argument("--share", action="store_true", help="make a public gradio.live link (off by default)")
    p.add_argument("--space", action="store_true",
                   help="Hugging Face Space mode (also on with SPACE_ID or STUDIO_SPACE=1): per-session history and "
                        "boards, old files cleaned up, budgets capped, the 1.3B FAR model by default on a GPU")
    p.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="renders run at once; the rest wait in the queue and see their place (default 1; with --farm ray, one per worker)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, metavar="MB",
                   help="largest upload accepted (default 200 MB)")
    p.add_argument("--offload", choices=["auto", "none", "model", "group", "sequential"], default=None,
                   help="GPU memory mode (default auto: picked from free memory and the model's needs)")
    p.add_argument("--vae-tiling", choices=["auto", "on", "off"], default=None, help="tile the VAE decode")
    p.add_argument("--memory-budget", type=float, default=None, metavar="GB", help="memory for loaded models")
    p.add_argument("--compile", action="store_true", default=None,
                   help="regionally compile the transformer blocks (GPU; slower first render)")
    p.add_argument("--window", action="store_true",
                   help="open the studio in its own desktop window, on 127.0.0.1 (needs: bash scripts/setup.sh --desktop)")
    p.add_argument("--farm", choices=["local", "ray"], default=None,
                   help="where renders run: local (default, in this process) or ray (a worker per GPU; setup.sh --farm)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="--farm ray: workers per GPU-less node (required on a CPU)")
    p.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="--farm ray: join the cluster started with `ray start` (HOST:PORT or auto); default: a local one")
    return p


def startup_lines(url: str, share_url: str | None, share: bool) -> list[str]:
    """What the console says once the server listens: where, and how to share (the studio's switch, --share)."""
    lines = [f"AnyFlow Studio is running on {url}"]
    if share_url:
        lines.append(f"Public link (temporary): {share_url}")
    elif share:
        lines.append("No public link: Gradio could not make one (see above).")
    else:
        lines.append("To share a public link, restart with --share.")
    return lines


def print_finished_renders() -> None:
    """One console line per finished render (its id, steps and seconds), as a local server's log."""
    import logging

    renders = logging.getLogger("studio.renders")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    renders.addHandler(handler)
    renders.setLevel(logging.INFO)
    renders.propagate = False


def _interrupt(signum, frame) -> None:
    """SIGTERM: the same way out as Ctrl+C (Gradio's block_thread closes the server on KeyboardInterrupt)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _serve(args)
    except (OSError, sqlite3.DatabaseError) as exc:  # a full disk at start-up (the lock, the announcement, recovery)
        from studio.store import disk
        from studio.config import Settings

        data_dir = Settings.from_env(data_dir=args.data_dir).data_dir
        if not disk.is_full(exc, data_dir):
            raise
        print(f"error: {disk.full(data_dir, 'free space and start the studio again')}", file=sys.stderr)
        return 2


def _serve(args) -> int:
    if args.allow_download is False:
        os.environ["HF_HUB_OFFLINE"] = "1"

    from studio.errors import EXIT_USER_ERROR, StudioError
    from studio.app.services import Studio
    from studio.ui import build_app, launch_options, owner_api
    from studio.ui.serving import FOLLOWERS, auto_concurrency, set_concurrency

    if args.concurrency is not None and args.concurrency < 1:
        print("error: --concurrency must be 1 or more", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.max_upload_mb <= 0:
        print("error: --max-upload-mb must be more than 0", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.window:  # before anything starts: a window needs a display and the desktop extra
        from studio.app import desktop
        try:
            desktop.check_display(f"http://127.0.0.1:{args.port or 7860}")
            desktop.check_backend()
        except StudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        args.host, args.share, args.port = "127.0.0.1", False, args.port or desktop.free_port()

    from studio.engine.space import running_on_space
    from studio.ui.spacemode import space_default_model

    space_mode = bool(args.space) or running_on_space()
    default_model, allow_download, space_note = args.model, args.allow_download, None
    if space_mode and default_model is None and not os.environ.get("STUDIO_MODEL"):
        default_model, space_note = space_default_model()  # the 1.3B FAR model where CUDA is available
        if default_model is not None and allow_download is None:
            allow_download = True  # a Space fetches the weights from the hub on first use
    if space_mode and os.environ.get("SPACE_ID") and args.host == "127.0.0.1":
        args.host = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")  # the Space's proxy must reach the app
    studio = None
    try:
        studio = Studio.open(data_dir=args.data_dir, default_model=default_model, device=args.device,
                             allow_download=allow_download, space=True if space_mode else None,
                             offload=args.offload, vae_tiling=args.vae_tiling, memory_budget_gb=args.memory_budget,
                             compile=None if space_mode else args.compile, farm=args.farm, workers=args.workers,
                             ray_address=args.ray_address, max_upload_mb=args.max_upload_mb)
        studio.registry.get(studio.settings.default_model)
        from studio.farm.ray_farm import attach
        attach(studio)  # --farm ray: renders run on Ray workers (nothing of Ray is imported otherwise)
    except StudioError as exc:
        if studio is not None:
            studio.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not studio.claim_data_folder():  # one studio per data folder: it alone recovers and owns the files
        owner = studio.folder_owner()
        studio.close()
        if args.window and owner and desktop.bring_forward(studio.settings.data_dir):
            print(f"AnyFlow Studio is already open on {studio.settings.data_dir} ({owner.describe()}): its window "
                  "was brought forward.", file=sys.stderr)
            return 0
        print(f"error: another studio ({owner.describe() if owner else 'its address is unknown'}) already owns "
              f"{studio.settings.data_dir}; use that one, or start this one with another --data-dir", file=sys.stderr)
        return EXIT_USER_ERROR
    recovered = studio.recover_after_crash()  # before anything renders: what is "running" now was a dead process's
    if recovered:
        print(f"Recovered after a crash: {recovered.describe()}", file=sys.stderr)
    # Every render is a job in the folder's queue; the dispatcher runs it, queued jobs from before a restart
    # first: --concurrency jobs at once, else one per farm worker (--farm ray), else one.
    studio.start_dispatcher(slots=args.concurrency or (None if studio.engine.executor else auto_concurrency(None)))
    print(f"AnyFlow Studio: data in {studio.settings.data_dir}, default model {studio.settings.default_model}",
          file=sys.stderr)
    if space_mode:
        print(f"Space mode: per-session history and boards, renders kept {studio.settings.space_ttl_hours:g} h, "
              f"budgets capped at {studio.policies.space_max_steps} steps. {space_note or ''}", file=sys.stderr)
    demo = build_app(studio)
    set_concurrency(demo, FOLLOWERS)  # browser renders that wait in the studio's queue at once (Gradio's limit)
    print(f"Renders at once: {studio.dispatcher().capacity}; uploads up to {args.max_upload_mb:g} MB; listening on {args.host}",
          file=sys.stderr)
    try:
        options = launch_options(studio, max_upload_mb=args.max_upload_mb, host=args.host, share=args.share)
        server, url, share_url = demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                                             prevent_thread_lock=True, quiet=True, **options)
        for line in startup_lines(url, share_url, args.share):  # in place of Gradio's `share=True` hint
            print(line, file=sys.stderr)
        print_finished_renders()
        owner_api.serve(server, studio, url, args.max_upload_mb)  # `python -m studio render` on this data folder now renders here
        if args.window:
            desktop.open_window(url, studio.settings.data_dir)  # until the window is closed, or SIGTERM / SIGINT
        else:
            signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops it as Ctrl+C does (clean-up below)
            demo.block_thread()  # until Ctrl+C or the server closes
    finally:
        studio.stop_dispatcher()  # the jobs it was running wait in the queue for the next start
        if studio.engine.cancel_running():  # renders still running stop and are recorded as cancelled
            print("Stopped the renders that were running (recorded as cancelled).", file=sys.stderr)
        if args.window:
            demo.close()  # frees the port
        studio.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
