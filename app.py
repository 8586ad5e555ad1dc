"""AnyFlow Studio: the web UI.

    python app.py                      # http://127.0.0.1:7860, embedded default model, offline
    python app.py --model anyflow-far-1.3b --allow-download --port 8000

Models load on first use; nothing heavy happens at start-up.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="AnyFlow Studio web UI")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for LAN)")
    p.add_argument("--port", type=int, default=None, help="port (default: 7860, or the next free one)")
    p.add_argument("--model", default=None, help="default model id (default: the embedded model)")
    p.add_argument("--data-dir", default=None, help="where renders and history live")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    net = p.add_mutually_exclusive_group()
    net.add_argument("--offline", dest="allow_download", action="store_false", default=None,
                     help="never download weights (the default)")
    net.add_argument("--allow-download", dest="allow_download", action="store_true",
                     help="allow downloading model weights from the Hugging Face hub")
    p.add_argument("--share", action="store_true", help="make a public gradio.live link (off by default)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.allow_download is False:
        os.environ["HF_HUB_OFFLINE"] = "1"

    from studio.errors import StudioError
    from studio.services import Studio
    from studio.ui import build_app, launch_options

    try:
        studio = Studio.open(data_dir=args.data_dir, default_model=args.model, device=args.device,
                             allow_download=args.allow_download)
        studio.registry.get(studio.settings.default_model)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"AnyFlow Studio: data in {studio.settings.data_dir}, default model {studio.settings.default_model}",
          file=sys.stderr)
    demo = build_app(studio)
    try:
        demo.queue(default_concurrency_limit=1).launch(
            server_name=args.host, server_port=args.port, share=args.share, **launch_options(studio))
    finally:
        studio.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
