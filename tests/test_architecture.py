"""The shape of the package: no import circles in studio/, the layer contract holds, the module map is whole."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDIO = ROOT / "studio"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in STUDIO.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every studio module ``name`` imports, at the top or inside a function."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in mods)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base)
    return {m for m in out if m in mods and m != name}


def import_circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    mods = _modules()
    edges = {m: _imports(m, p, mods) for m, p in mods.items()}
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return circles


def test_no_import_circle_in_studio():
    assert import_circles() == []


def test_the_circle_finder_sees_imports_inside_functions(tmp_path, monkeypatch):
    pkg = tmp_path / "studio"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "STUDIO", pkg)
    assert import_circles() == [["studio.a", "studio.b"]]


def test_architecture_page_names_every_module():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [p.relative_to(ROOT).as_posix() for p in _modules().values()
               if f"`{p.relative_to(ROOT).as_posix()}`" not in page]
    assert missing == [], f"docs/architecture.md does not name {missing}: add them to its module map"


def test_no_module_left_at_the_top_of_studio():
    assert sorted(p.stem for p in STUDIO.glob("*.py")) == ["__init__", "__main__", "config", "errors"]


MAX_UI_FILE_LINES = 400


def test_no_file_in_studio_ui_is_over_400_lines():
    """Issue 23: a tab is split into modules a newcomer can read, none over 400 lines."""
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (STUDIO / "ui").rglob("*.py")}
    assert len(sizes) > 10, sizes  # the folder was found
    over = {name: n for name, n in sizes.items() if n > MAX_UI_FILE_LINES}
    assert over == {}, f"files in studio/ui over {MAX_UI_FILE_LINES} lines: {over}"


def test_the_layer_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "lint-imports is missing: bash scripts/setup.sh --test installs requirements-test.txt"
    out = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
