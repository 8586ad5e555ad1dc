"""Skips that must not pass CI silently (loaded by tests/conftest.py).

When the ``CI`` environment variable is set (to anything but "" or "0"), a skipped test is reported as a
failure, so a missing Chromium, playwright or gradio_client fails the run instead of leaving a layer untested.
A module that skips itself at import (``pytest.importorskip`` at the top) is listed, and fails the run (its exit
status) without stopping the collection of the other modules.

The one exception is a test marked ``@pytest.mark.gpu``: it needs CUDA, is skipped where there is none (this
plugin does the skipping), and every such skip is named and counted in the run's terminal summary.
"""

from __future__ import annotations

import os

import pytest

GPU_SECTION = "GPU-only tests skipped"
MODULE_SECTION = "test modules skipped at import: this fails CI"


def ci_enabled() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _fail_skip(report, what: str) -> None:
    report.outcome = "failed"
    report.longrepr = (f"{what} was skipped, and CI is set: a skip fails CI unless the test is marked gpu "
                       f"(reason given: {_skip_reason(report)})")


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is not None and not _cuda_available():
        pytest.skip("needs a CUDA GPU")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):  # xfail/xpass are not skips
        return
    if item.get_closest_marker("gpu") is not None:
        report.gpu_only = True
    elif ci_enabled():
        _fail_skip(report, item.nodeid)


def _skipped_modules(stats) -> list:
    return [r for r in stats.get("skipped", []) if isinstance(r, pytest.CollectReport)]


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if ci_enabled() and reporter is not None and _skipped_modules(reporter.stats) \
            and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    modules = _skipped_modules(terminalreporter.stats) if ci_enabled() else []
    if modules:
        terminalreporter.section(MODULE_SECTION, red=True)
        for report in modules:
            terminalreporter.line(f"{report.nodeid}: {_skip_reason(report)}")
    gpu = [r for r in terminalreporter.stats.get("skipped", []) if getattr(r, "gpu_only", False)]
    if gpu:
        terminalreporter.section(GPU_SECTION)
        for report in gpu:
            terminalreporter.line(f"{report.nodeid}: {_skip_reason(report)}")
        terminalreporter.line(f"{len(gpu)} GPU-only test{'s' if len(gpu) != 1 else ''} skipped")
