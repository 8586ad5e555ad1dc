"""The step grid: a budget's sigmas, native or with the last step kept at or above last_jump_sigma."""

import pytest

from studio.engine import schedule
from studio.models.registry import Registry


def test_native_grid_when_off_or_when_the_budget_already_ends_high():
    assert schedule.step_sigmas(16, 3.0, 0.0) is None
    for steps in (1, 2, 4):  # shift 3: the 4-step grid's last step starts at sigma 0.5 already
        assert schedule.step_sigmas(steps, 3.0, 0.5) is None
    assert schedule.describe(4, 3.0, 0.5) == [1.0, 0.9, 0.75, 0.5, 0.0]
    assert schedule.describe(16, 3.0)[-2] == pytest.approx(0.1667, abs=1e-4)  # the native 16-step grid ends low


@pytest.mark.parametrize("steps", [8, 16, 32])
def test_large_budgets_spend_every_step_but_the_last_above_the_floor(steps):
    sig = schedule.describe(steps, 3.0, 0.5)
    assert len(sig) == steps + 1 and sig[0] == 1.0 and sig[-1] == 0.0
    assert sig[-2] == pytest.approx(0.5, abs=1e-4)
    assert all(a > b for a, b in zip(sig, sig[1:]))
    grid = schedule.step_sigmas(steps, 3.0, 0.5)  # unshifted and evenly spaced, as the scheduler expects
    gaps = [a - b for a, b in zip(grid, grid[1:])]
    assert max(gaps) - min(gaps) < 1e-9


def test_shift_round_trip_and_sampler_kwargs():
    for shift in (1.0, 3.0, 5.0):
        for s in (0.1, 0.25, 0.9):
            assert schedule.unshift(schedule.shifted(s, shift), shift) == pytest.approx(s)

    class Pipe:
        class scheduler:
            class config:
                shift = 3.0

    assert schedule.sampler_kwargs(Pipe, 4, 0.5) == {"num_inference_steps": 4}
    assert len(schedule.sampler_kwargs(Pipe, 16, 0.5)["sigmas"]) == 16


def test_the_embedded_student_uses_the_floor_and_its_teacher_does_not():
    reg = Registry.load(None)
    assert reg.get("anyflow-shapes").last_jump_sigma == 0.5
    assert reg.get("anyflow-shapes-teacher").last_jump_sigma == 0.0
    assert reg.get("anyflow-wan-1.3b").last_jump_sigma == 0.0
