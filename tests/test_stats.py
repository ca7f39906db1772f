"""The comparison statistics on synthetic data with known answers (fixed seeds: never flaky)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seccrm.evaluation.stats import (
    bootstrap_ci,
    paired_bootstrap,
    paired_permutation_test,
    relative_change,
    t_cdf,
    t_interval,
    t_quantile,
)


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)])
def test_t_quantile_matches_tables(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=2e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=2e-4)


def test_t_cdf_symmetric_and_tends_to_normal() -> None:
    assert t_cdf(0.0, 3) == pytest.approx(0.5)
    assert t_cdf(1.3, 5) + t_cdf(-1.3, 5) == pytest.approx(1.0)
    assert t_cdf(1.959964, 1e6) == pytest.approx(0.975, abs=1e-5)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)


def test_t_interval_by_hand() -> None:
    m, lo, hi = t_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half-width 4.3027 / sqrt(3)
    assert m == pytest.approx(2.0)
    assert hi - m == pytest.approx(4.30265 / math.sqrt(3), rel=1e-4)
    assert m - lo == pytest.approx(hi - m)
    one = t_interval([0.4])
    assert one[0] == 0.4 and math.isnan(one[1]) and math.isnan(one[2])
    assert all(math.isnan(v) for v in t_interval([]))


def _coverage(interval: object, sampler: object, truth: float, trials: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for k in range(trials):
        lo, hi = interval(sampler(rng), k)  # type: ignore[operator]
        hits += lo <= truth <= hi
    return hits / trials


def test_bootstrap_interval_covers_the_truth_at_about_the_nominal_rate() -> None:
    # Bernoulli(0.3) accuracies over 80 instances, 400 trials: coverage of the true mean ~ 95%.
    cov = _coverage(lambda x, k: bootstrap_ci(x, resamples=1000, seed=k),
                    lambda rng: (rng.random(80) < 0.3).astype(float), 0.3, trials=400, seed=1)
    assert 0.90 <= cov <= 0.985, cov


def test_t_interval_covers_over_few_seeds_where_bootstrap_does_not() -> None:
    # Three seeds' accuracies ~ N(0.35, 0.03): the t-interval keeps 95%; a bootstrap over 3 values cannot.
    def sample(rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.35, 0.03, size=3)
    cov_t = _coverage(lambda x, k: t_interval(x)[1:], sample, 0.35, trials=1000, seed=2)
    cov_b = _coverage(lambda x, k: bootstrap_ci(x, resamples=500, seed=k), sample, 0.35, trials=300, seed=2)
    assert 0.93 <= cov_t <= 0.97, cov_t
    assert cov_b < 0.85, cov_b  # why the report uses t over seeds


def _pair(rng: np.random.Generator, pa: float, pb: float, seeds: int = 3, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of two models on the same instances: per-instance difficulty shared by both."""
    ease = rng.normal(0, 1.0, size=n)  # an instance easy for one model is easy for the other (pairing)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    a = rng.random((seeds, n)) < 1 / (1 + np.exp(-(logit(pa) + ease)))
    b = rng.random((seeds, n)) < 1 / (1 + np.exp(-(logit(pb) + ease)))
    return a.astype(float), b.astype(float)


def test_paired_tests_detect_a_planted_difference() -> None:
    a, b = _pair(np.random.default_rng(3), 0.45, 0.30)
    perm = paired_permutation_test(a, b, permutations=4000, seed=0)
    boot = paired_bootstrap(a, b, resamples=2000, seed=0)
    assert perm.mean_diff == pytest.approx(float((a - b).mean()))
    assert perm.mean_diff > 0.08
    assert perm.p_value < 0.01
    assert boot.ci_low > 0 and boot.ci_high > boot.ci_low and boot.p_value < 0.05
    assert (boot.n_seeds, boot.n_instances) == (3, 200)
    swapped = paired_permutation_test(b, a, permutations=4000, seed=0)
    assert swapped.mean_diff == pytest.approx(-perm.mean_diff) and swapped.p_value < 0.01


def test_paired_tests_do_not_fire_on_a_null_difference() -> None:
    a, b = _pair(np.random.default_rng(4), 0.35, 0.35)
    assert paired_permutation_test(a, b, permutations=4000, seed=0).p_value > 0.05
    boot = paired_bootstrap(a, b, resamples=2000, seed=0)
    assert boot.ci_low < 0 < boot.ci_high


def test_permutation_test_false_positive_rate_is_nominal() -> None:
    # 200 null data sets: the test at 5% fires on about 5% of them (binomial sd 1.5%).
    rng = np.random.default_rng(5)
    fired = sum(paired_permutation_test(*_pair(rng, 0.3, 0.3, seeds=2, n=120), permutations=1000, seed=k).p_value < 0.05
                for k in range(200))
    assert 2 <= fired <= 20, fired


def test_bootstrap_interval_carries_seed_to_seed_variance() -> None:
    # Planted run effects: each seed's whole run is shifted. The two-level bootstrap must widen.
    rng = np.random.default_rng(6)
    d = rng.normal(0.0, 0.3, size=(4, 300)) + rng.normal(0, 0.2, size=(4, 1))
    zero = np.zeros_like(d)
    two_level = paired_bootstrap(d, zero, resamples=2000, seed=0)
    instances_only = paired_bootstrap(d.reshape(1, -1), zero.reshape(1, -1), resamples=2000, seed=0)
    assert (two_level.ci_high - two_level.ci_low) > 2 * (instances_only.ci_high - instances_only.ci_low)


def test_paired_inputs_validated_and_degenerate_cases() -> None:
    with pytest.raises(ValueError, match="same"):
        paired_permutation_test(np.zeros((2, 5)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap([1.0, math.nan], [0.0, 0.0])
    same = paired_permutation_test([1, 0, 1], [1, 0, 1])
    assert same.p_value == 1.0 and same.mean_diff == 0.0 and same.n_seeds == 1
    assert paired_bootstrap([1, 0, 1], [1, 0, 1]).p_value == 1.0
    # all 10 pairs favour a: the sign-flip p is 2 / 2**10 exactly, estimated by Monte Carlo
    p = paired_permutation_test(np.ones(10), np.zeros(10), permutations=20000, seed=0).p_value
    assert p == pytest.approx(2 / 1024, abs=0.001)


def test_bootstrap_ci_edge_cases_and_relative_change() -> None:
    assert bootstrap_ci([0.5]) == (0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert relative_change(0.28, 0.37) == pytest.approx(0.3214, abs=1e-4)  # the report's +32.1%
    assert math.isnan(relative_change(0.0, 0.3))
