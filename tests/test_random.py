"""Distributions: bound conventions, parameter checks, reproducible sampling."""

import math
import random

import pytest

from schedy.errors import ValidationError
from schedy.random import Choice, Constant, IntLogUniform, IntUniform, LogUniform, Normal, Uniform, from_wire


def samples(dist, n=4000, seed=1):
    rng = random.Random(seed)
    return [dist.sample(rng) for _ in range(n)]


def test_uniform_is_low_inclusive_high_exclusive():
    values = samples(Uniform(2.1, 5))
    assert all(2.1 <= v < 5 for v in values)
    assert min(values) < 2.2 and max(values) > 4.9


def test_uniform_never_returns_high_even_when_rounding_would():
    dist = Uniform(1.0, math.nextafter(1.0, 2.0))
    assert all(v < dist.high for v in samples(dist, 200))


def test_loguniform_spreads_over_orders_of_magnitude():
    values = samples(LogUniform(1e-6, 1e-1))
    assert all(1e-6 <= v < 1e-1 for v in values)
    decades = [sum(1 for v in values if 10 ** (k - 1) <= v < 10**k) for k in range(-5, 0)]
    assert min(decades) > 600  # about 800 each when log-uniform


def test_int_ranges_include_both_ends():
    values = samples(IntUniform(1, 3))
    assert set(values) == {1, 2, 3}
    log_values = samples(IntLogUniform(1, 8))
    assert set(log_values) == set(range(1, 9))
    assert log_values.count(1) > log_values.count(8)
    assert all(isinstance(v, int) for v in values + log_values)


def test_int_log_uniform_gives_each_integer_its_share_of_the_log_scale():
    values = samples(IntLogUniform(1, 4), 8000)
    for k in range(1, 5):  # k owns [k, k + 1) of [1, 5) on the log scale
        assert abs(values.count(k) / 8000 - math.log((k + 1) / k) / math.log(5)) < 0.02


@pytest.mark.parametrize("low", [10**15, 10**16, 2**53, 10**300], ids=["1e15", "1e16", "2^53", "1e300"])
def test_int_log_uniform_draws_every_integer_of_a_range_narrow_next_to_its_bounds(low):
    values = samples(IntLogUniform(low, low + 4), 2000)
    assert {v - low for v in values} == set(range(5))


def test_normal_mean_and_std():
    values = samples(Normal(2, 0.5), 8000)
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    assert abs(mean - 2) < 0.05 and abs(std - 0.5) < 0.05


def test_choice_takes_any_iterable_and_weights():
    assert set(samples(Choice(range(1, 10)), 2000)) == set(range(1, 10))
    weighted = samples(Choice(["a", "b"], weights=[9, 1]))
    assert 0.85 < weighted.count("a") / len(weighted) < 0.95
    mixed = Choice([2, "s", True, [1, 2], {"k": 1}])
    assert all(v in mixed.values for v in samples(mixed, 100))


def test_constant():
    assert set(map(str, samples(Constant({"a": [1]}), 10))) == {"{'a': [1]}"}


def test_same_seed_same_values():
    dist = LogUniform(1e-4, 1)
    assert samples(dist, 50, seed=7) == samples(dist, 50, seed=7)
    assert samples(dist, 50, seed=7) != samples(dist, 50, seed=8)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Uniform(5, 2.1), "low must be < high"),
        (lambda: Uniform(1, 1), "low must be < high"),
        (lambda: Uniform(0, float("inf")), "finite number"),
        (lambda: LogUniform(0, 1), "low must be > 0"),
        (lambda: IntUniform(1.5, 3), "integer"),
        (lambda: IntLogUniform(0, 3), "low must be >= 1"),
        (lambda: Normal(0, 0), "std must be > 0"),
        (lambda: Normal("a", 1), "finite number"),
        (lambda: Choice([]), "must not be empty"),
        (lambda: Choice("abc"), "list of values"),
        (lambda: Choice([1, 2], weights=[1]), "one number per value"),
        (lambda: Choice([1, 2], weights=[-1, 2]), ">= 0"),
        (lambda: Choice([1, 2], weights=[0, 0]), "positive sum"),
        (lambda: Choice([1, 2], weights=[1e308, 1e308]), "a finite one"),
        (lambda: Choice([1, 2], weights=5), "weights must be a list of numbers"),
        (lambda: Uniform(0, 10**400), "finite number .* not an integer of 1329 bits"),
        (lambda: Uniform(-1e308, 1e308), "high - low must be a finite number"),
        (lambda: Uniform(-(10**308), 10**308), "high - low must be a finite number"),  # exact in ints
        (lambda: Choice([1, 2], weights=[10**308, 10**308]), "a finite one"),
        (lambda: Normal(10**400, 1), "finite number"),
        (lambda: IntLogUniform(1, 10**400), "finite number"),
        (lambda: Choice([1, 2], weights=[10**400, 1]), "finite number"),
        (lambda: Choice(["\ud800"]), "lone surrogate"),
        (lambda: Constant({"x": 10**400}), "too large"),
        (lambda: Constant(float("nan")), "NaN"),
        (lambda: from_wire({"gamma": {}}), "unknown distribution 'gamma'"),
        (lambda: from_wire({"uniform": {"low": 1}}), "lacks high"),
        (lambda: from_wire({"uniform": {"low": 1, "high": 2}, "normal": {}}), "at most 1"),
    ],
)
def test_invalid_parameters_are_refused_clearly(make, message):
    with pytest.raises(ValidationError, match=message):
        make()


def test_whole_bounds_a_float_range_holds_are_sampled_as_checked():
    # Each bound and their difference in floats are finite; their exact difference is not.
    low, high = -(2**1023 - 2**971 + 2**969 - 1), 2**1023 + 2**970 - 1
    dist = Uniform(low, high)
    assert all(math.isfinite(v) and low <= v < high for v in samples(dist, 100))


@pytest.mark.parametrize("dist", [Uniform(2**53 + 1, 2**53 + 3), Uniform(-(2**60) - 1, -(2**60) + 300), LogUniform(2**53 + 1, 2**53 + 9)])
def test_whole_bounds_no_float_holds_are_kept_in_samples(dist):
    values = samples(dist, 2000)
    assert all(dist.low <= v < dist.high for v in values)
    assert dist.bounds()[0] >= dist.low and dist.bounds()[1] < dist.high


def test_a_range_holding_no_float_is_refused():
    with pytest.raises(ValidationError, match=r"no float lies in \[low, high\)"):
        Uniform(10**308, 10**308 + 1)


def test_a_huge_std_never_draws_a_number_json_cannot_hold():
    draws = samples(Normal(0, 1e308), 200)
    assert all(math.isfinite(x) for x in draws) and max(map(abs, draws)) == 1.7976931348623157e308
