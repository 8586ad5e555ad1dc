"""Under CI a skip fails the run, except GPU-only tests, which are named and counted (tests/ci_skips.py).

Each check runs pytest (in-process, pytester) on a few throw-away test files with the plugin loaded.
"""

import pytest

pytest_plugins = ["pytester"]

FILES = {
    "test_plain.py": """
import pytest

def test_runs():
    assert True

def test_skips_itself():
    pytest.skip("chromium is not installed")

@pytest.mark.skipif(True, reason="a skipif mark")
def test_skipped_by_mark():
    pass
""",
    "test_gpu.py": """
import pytest

@pytest.mark.gpu
def test_gpu_only_skips_itself():
    pytest.skip("no CUDA in this check")

@pytest.mark.gpu
def test_gpu_only_plain():
    pass
""",
    "test_missing.py": """
import pytest
pytest.importorskip("no_such_module_for_the_ci_check")

def test_never_collected():
    pass
""",
}


def _pytest(pytester, monkeypatch, ci: str | None, *names: str):
    """Run pytest in-process on ``names`` (from FILES), with the plugin loaded; return (exit code, output)."""
    for name in names:
        pytester.makepyfile(**{name.removesuffix(".py"): FILES[name]})
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs CUDA\n")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    result = pytester.runpytest_inprocess("-p", "ci_skips", "-p", "no:cacheprovider", "-rA", *names)
    return result.ret, "\n".join(result.outlines)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_under_ci_a_skip_fails_and_gpu_skips_are_listed(pytester, monkeypatch):
    code, text = _pytest(pytester, monkeypatch, "1", "test_plain.py", "test_gpu.py")
    assert code == 1, text
    assert "FAILED test_plain.py::test_skips_itself" in text and "chromium is not installed" in text
    assert "test_plain.py::test_skipped_by_mark" in text and "a skipif mark" in text
    assert "PASSED test_plain.py::test_runs" in text
    section = text.split("GPU-only tests skipped", 1)[1]
    if _cuda():  # the plain one runs; the other skips itself
        assert "test_gpu.py::test_gpu_only_skips_itself: no CUDA in this check" in section
        assert "1 GPU-only test skipped" in section and "PASSED test_gpu.py::test_gpu_only_plain" in text
    else:  # the plugin skips both before they run
        assert "test_gpu.py::test_gpu_only_skips_itself: needs a CUDA GPU" in section
        assert "test_gpu.py::test_gpu_only_plain: needs a CUDA GPU" in section
        assert "2 GPU-only tests skipped" in section
    assert "FAILED test_gpu.py" not in text and "ERROR test_gpu.py" not in text


@pytest.mark.parametrize("ci", [None, "", "0"])
def test_without_ci_a_skip_is_only_a_skip(pytester, monkeypatch, ci):
    code, text = _pytest(pytester, monkeypatch, ci, "test_plain.py", "test_gpu.py", "test_missing.py")
    assert code == 0, text
    assert "SKIPPED" in text and "FAILED" not in text and "ERROR" not in text
    assert "GPU-only tests skipped" in text  # listed either way


def test_under_ci_a_module_skipped_at_import_fails_the_run_and_the_rest_still_runs(pytester, monkeypatch):
    code, text = _pytest(pytester, monkeypatch, "true", "test_missing.py", "test_gpu.py")
    assert code == 1, text
    section = text.split("test modules skipped at import: this fails CI", 1)[1]
    assert "test_missing.py" in section and "no_such_module_for_the_ci_check" in section
    assert "test_gpu.py::test_gpu_only_skips_itself" in text  # collection went on past the skipped module
