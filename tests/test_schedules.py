"""KL-weight schedules: their values at known steps, and clear errors for bad settings."""

import pytest

from vae_teach import schedules


def test_constant_and_warmup():
    assert schedules.weights(schedules.constant(0.5), 3) == [0.5, 0.5, 0.5]
    warm = schedules.linear_warmup(2.0, warmup_steps=4)
    assert schedules.weights(warm, 6) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]


def test_cyclical_rises_over_half_of_each_cycle_then_holds():
    cyc = schedules.cyclical(1.0, total_steps=8, n_cycles=2)          # cycles of 4 steps, rising over 2
    assert schedules.weights(cyc, 8) == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0]
    cyc = schedules.cyclical(1.0, total_steps=10, n_cycles=1, ratio=1.0)
    assert schedules.weights(cyc, 10) == pytest.approx([t / 10 for t in range(10)])


@pytest.mark.parametrize("make, match", [
    (lambda: schedules.constant(-1), "beta .* must be a finite number >= 0"),
    (lambda: schedules.constant(float("nan")), "beta .* must be a finite number >= 0"),
    (lambda: schedules.linear_warmup(1.0, 0), "warmup_steps must be a whole number"),
    (lambda: schedules.linear_warmup(1.0, 50, total_steps=10), "longer than the training"),
    (lambda: schedules.cyclical(1.0, 10, 0), "n_cycles must be a whole number"),
    (lambda: schedules.cyclical(1.0, 3, 4), "cannot exceed total_steps"),
    (lambda: schedules.cyclical(1.0, 10, 2, ratio=0), r"ratio .* must be in \(0, 1\]"),
])
def test_bad_settings_say_what_to_do(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_as_schedule_takes_a_float_or_a_schedule_and_checks_the_warmup():
    from vae_teach.schedules import as_schedule, is_elbo

    assert as_schedule(0.5)(7) == 0.5 and is_elbo(as_schedule(1)) and not is_elbo(as_schedule(0.5))
    warm = schedules.linear_warmup(2.0, 10)
    assert as_schedule(warm) is warm and as_schedule(warm, total_steps=10) is warm
    with pytest.raises(ValueError, match="longer than the training"):
        as_schedule(warm, total_steps=9)
    with pytest.raises(TypeError, match="a number"):
        as_schedule("1")
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        as_schedule(-0.1)
