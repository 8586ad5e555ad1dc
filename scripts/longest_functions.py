"""List the longest functions in a package (default: studio/), longest first.

    python scripts/longest_functions.py [PATH ...] [--top 10] [--max 150]

A function's length is its lines from ``def`` (decorators excluded) to its last line, nested functions
included in their parent's count (a closure is part of the function a reader must take in). Nested
functions are also listed on their own, named ``outer.inner``. With ``--max N`` the exit status is 1
when any function is longer than N lines, so it can guard a limit in CI.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def functions(path: Path):
    """(qualified name, first line, length) for every function and method in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child.lineno, child.end_lineno - child.lineno + 1
                yield from walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", default=[str(ROOT / "studio")])
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--max", type=int, default=None, help="exit 1 if a function is longer than this")
    args = p.parse_args(argv)
    rows = []
    for root in map(Path, args.paths):
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
            rows += [(length, f"{rel}:{line}", name) for name, line, length in functions(path)]
    rows.sort(key=lambda r: -r[0])
    for length, where, name in rows[: args.top]:
        print(f"{length:5d}  {where:<36} {name}")
    if args.max is not None:
        over = [r for r in rows if r[0] > args.max]
        if over:
            print(f"{len(over)} function(s) over {args.max} lines", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
