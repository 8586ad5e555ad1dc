"""No function in studio/ is over 150 lines (issue 18): a newcomer reads one function on a screen or two."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 150


def load_script():
    spec = importlib.util.spec_from_file_location("longest_functions", ROOT / "scripts" / "longest_functions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_function_in_studio_is_over_the_limit():
    script = load_script()
    too_long = [(name, length) for path in sorted((ROOT / "studio").rglob("*.py"))
                for name, _, length in script.functions(path) if length > MAX_LINES]
    assert not too_long, f"functions over {MAX_LINES} lines: {too_long}"


def test_the_count_includes_nested_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def outer():\n    def inner():\n        return 1\n    return inner\n", encoding="utf-8")
    assert sorted(load_script().functions(source)) == [("outer", 1, 4), ("outer.inner", 2, 2)]
