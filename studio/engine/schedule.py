"""How a step budget becomes the sampler's sigma grid.

A flow map jumps z_t -> z_r for any pair of noise levels, so a budget of N steps can be spent on any N-segment
grid from sigma 1 to 0. By default the studio uses the scheduler's own grid (its ``shift`` applied to N equal
segments). A model may instead set ``last_jump_sigma`` in the catalogue: its last step then never starts below that
noise level. When the native grid's last step would start lower, the first N - 1 steps are spread evenly (before the
shift) over [1, last_jump_sigma] and the last step jumps from last_jump_sigma straight to 0. Budgets whose native
grid already ends that high are unchanged.

Why: the embedded student's short low-noise segments soften the edges of what it draws (a square's corners round
off; measured in ``training/README.md``), while its jump from sigma 0.5 to 0 keeps them. The extra steps of a large
budget then go to the high-noise part of the path, where the layout and motion are decided.
"""

from __future__ import annotations


def unshift(sigma: float, shift: float) -> float:
    """The schedule position s whose shifted sigma ``shift*s / (1 + (shift-1)*s)`` is ``sigma``."""
    return sigma / (shift - (shift - 1.0) * sigma)


def shifted(s: float, shift: float) -> float:
    return shift * s / (1.0 + (shift - 1.0) * s)


def step_sigmas(steps: int, shift: float, last_jump_sigma: float = 0.0) -> list[float] | None:
    """The unshifted sigmas to pass a pipeline (``sigmas=``; the scheduler applies its shift and appends 0) for a
    budget of ``steps``, or None where the scheduler's own grid for ``num_inference_steps=steps`` is the one."""
    if not last_jump_sigma or steps < 2:
        return None
    floor = unshift(last_jump_sigma, shift)
    if 1.0 / steps >= floor - 1e-9:  # the native grid's last step already starts at or above the floor
        return None
    return [1.0 - (1.0 - floor) * i / (steps - 1) for i in range(steps)]


def sampler_kwargs(pipe, steps: int, last_jump_sigma: float = 0.0) -> dict:
    """``num_inference_steps`` or ``sigmas`` for one pipeline call at this budget."""
    grid = step_sigmas(steps, float(getattr(pipe.scheduler.config, "shift", 1.0)), last_jump_sigma)
    return {"num_inference_steps": steps} if grid is None else {"sigmas": grid}


def describe(steps: int, shift: float, last_jump_sigma: float = 0.0) -> list[float]:
    """The sigmas a budget visits, 1 ... 0 (steps + 1 values), for display and tests."""
    grid = step_sigmas(steps, shift, last_jump_sigma)
    s = grid if grid is not None else [1.0 - i / steps for i in range(steps)]
    return [round(shifted(v, shift), 4) for v in s] + [0.0]
