"""Argument helpers shared by the command modules (cli.py, cli_sweep.py): the --standalone help, step budget
lists, and the settings a command's folder flags name. Standard library and config only (the light commands)."""

from __future__ import annotations

import argparse
import json

from ..config import Settings

STANDALONE_HELP = ("render in this process (loads the model here) instead of sending the job to the studio that "
                   "owns the data folder; refused while one does")


def budgets(text: str) -> list[int]:
    """``--budgets 1,2,4,8`` -> [1, 2, 4, 8] (argparse's type: a clear message for anything else)."""
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step budgets like 1,2,4,8; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one step budget")
    return values


def folder_settings(args) -> Settings:
    """The settings of the data folder and models file the command's flags name."""
    return Settings.from_env(data_dir=args.data_dir, models_file=args.models_file)


def read_rows(args, fetch) -> tuple[list[dict], bool]:
    """Open the history alone (no models: no torch), fetch rows, close it; print them as JSON if --json.
    Returns (rows, printed). Opening it changes nothing a running studio owns."""
    from ..store.history import HistoryStore

    store = HistoryStore(folder_settings(args).history_path)
    try:
        rows = fetch(store)
    finally:
        store.close()
    return json_rows(args, rows)


def json_rows(args, rows: list[dict]) -> tuple[list[dict], bool]:
    """(rows, printed): the rows printed as JSON when --json was given."""
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    return rows, args.json
