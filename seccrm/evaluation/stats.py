"""Statistics for comparing curricula: intervals over seeds and paired tests over seeds and instances.

Pure functions on numpy arrays; nothing here reads files or knows about runs.

The comparison of two curricula A and B uses *paired* data: run ``s`` of A and run ``s`` of B start
from the same model with the same seed, and both are scored on the same test instances, so
``a[s, i]`` and ``b[s, i]`` (shape ``(seeds, instances)``, one score per instance, e.g. 1.0 correct /
0.0 wrong) belong together. Two tests are offered:

- :func:`paired_permutation_test`: sign-flip permutation test on the per-(seed, instance)
  differences ``d = a - b``. Under the null hypothesis "A and B are exchangeable on every pair", each
  difference is as likely to be ``+d`` as ``-d``. It measures how unusual the observed mean
  difference is against that null. It treats pairs as independent, so it captures instance-to-instance
  noise, and seed-to-seed noise only as far as the seeds run show it.
- :func:`paired_bootstrap`: a two-level (hierarchical) paired bootstrap. Each resample draws seeds
  with replacement, then instances with replacement (the same instances for A and B, which keeps the
  pairing), and recomputes the mean difference. Its percentile interval accounts for both sources of
  noise; with few seeds the seed level is coarse, which widens rather than narrows the interval.

Intervals over seeds (one number per seed, e.g. a run's test accuracy) use :func:`t_interval`
(Student's t; with 3 seeds the 97.5% quantile is 4.30, so these intervals are honest and wide) or
:func:`bootstrap_ci` (percentile bootstrap of the mean, which is too narrow with very few values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike


# ------------------------------------------------------------------------------------------ intervals
def bootstrap_ci(values: ArrayLike, level: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``.

    Shapes: ``values`` (n,) -> two floats. Resamples the n values with replacement ``resamples``
    times and returns the ``(1 - level) / 2`` and ``1 - (1 - level) / 2`` quantiles of the means.
    Empty input -> ``(nan, nan)``; a single value -> that value twice.

    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)  # (resamples,)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def _t_pdf(t: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df))


def t_cdf(x: float, df: float) -> float:
    """Student's t cumulative distribution function, by Simpson integration of the density.

    Integrates over ``u = atan(t / sqrt(df))``, which maps the infinite tails to a finite range
    and keeps the integrand smooth, so 400 Simpson intervals give about 1e-10 absolute error.
    """
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    s = math.sqrt(df)
    end = math.atan(abs(x) / s)
    n = 400  # even, for Simpson's rule

    def f(u: float) -> float:  # density in t times dt/du
        t = s * math.tan(u)
        return _t_pdf(t, df) * s / math.cos(u) ** 2

    h = end / n
    acc = f(0.0) + f(end) + sum((4 if k % 2 else 2) * f(k * h) for k in range(1, n))
    half = acc * h / 3  # P(0 <= T <= |x|)
    return 0.5 + half if x >= 0 else 0.5 - half


@lru_cache(maxsize=256)  # bisection costs ~60 integrations; the same (p, df) recurs in every report
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`).

    >>> round(t_quantile(0.975, 2), 3)
    4.303
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket: the quantile grows without bound as p -> 1
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def t_interval(values: ArrayLike, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean: ``(mean, lo, hi)``.

    Shapes: ``values`` (n,). ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)`` with the sample sd
    (ddof=1). With one value the interval is undefined: ``(value, nan, nan)``; empty -> all nan.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return (mean, math.nan, math.nan)
    half = t_quantile((1 + level) / 2, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return (mean, mean - half, mean + half)


# ------------------------------------------------------------------------------------------ paired tests
@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of A against B: mean difference A - B, its interval and a p-value."""

    mean_diff: float            # mean over all (seed, instance) pairs of a - b
    ci_low: float               # interval of mean_diff (nan when the method gives none)
    ci_high: float
    p_value: float              # two-sided
    n_seeds: int
    n_instances: int
    method: str


def _paired(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate two paired score arrays and return them as float (seeds, instances) matrices."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    x = x[None, :] if x.ndim == 1 else x   # one seed: (instances,) -> (1, instances)
    y = y[None, :] if y.ndim == 1 else y
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"paired scores need the same (seeds, instances) shape; got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("paired scores are empty: no common seeds or instances")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired scores must be finite")
    return x, y


def paired_permutation_test(a: ArrayLike, b: ArrayLike, permutations: int = 10000,
                            seed: int = 0) -> PairedResult:
    """Two-sided sign-flip permutation test of ``mean(a - b) == 0`` over (seed, instance) pairs.

    Shapes: ``a``, ``b`` (seeds, instances) or (instances,). Each permutation flips the sign of every
    difference independently with probability 1/2; the p-value is
    ``(1 + #{|perm mean| >= |observed mean|}) / (1 + permutations)`` (never 0, as a Monte-Carlo
    p-value should be). Pairs whose difference is 0 (both right or both wrong) carry no signal and
    flip to themselves, exactly as in McNemar's test. The interval fields are nan: pair this with
    :func:`paired_bootstrap` for an interval.
    """
    x, y = _paired(a, b)
    d = (x - y).ravel()                                  # (pairs,)
    observed = float(d.mean())
    rng = np.random.default_rng(seed)
    nz = d[d != 0]
    if nz.size == 0:
        p = 1.0
    else:
        extreme = 0
        for start in range(0, permutations, 1000):       # blocks keep memory at 1000 x pairs
            k = min(1000, permutations - start)
            signs = rng.integers(0, 2, size=(k, nz.size)) * 2 - 1
            perm = (signs * nz).sum(axis=1) / d.size     # (k,) permuted means
            extreme += int((np.abs(perm) >= abs(observed) - 1e-12).sum())
        p = (1 + extreme) / (1 + permutations)
    return PairedResult(observed, math.nan, math.nan, p, x.shape[0], x.shape[1], "sign-flip permutation")


def paired_bootstrap(a: ArrayLike, b: ArrayLike, level: float = 0.95, resamples: int = 4000,
                     seed: int = 0) -> PairedResult:
    """Two-level paired bootstrap of ``mean(a - b)``: seeds, then instances, with replacement.

    Shapes: ``a``, ``b`` (seeds, instances) or (instances,). One resample picks S seeds and I
    instances with replacement and averages ``d[seeds][:, instances]``; A and B always get the same
    picks, which is the pairing. Returns the percentile interval and a two-sided bootstrap p-value,
    ``2 * (1 + #{resampled diff on the far side of 0}) / (1 + resamples)`` capped at 1, which cannot
    go below ``2 / (1 + resamples)``.
    """
    x, y = _paired(a, b)
    d = x - y                                            # (S, I)
    S, n_inst = d.shape
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 500):
        k = min(500, resamples - start)
        si = rng.integers(0, S, size=(k, S))             # (k, S) seed picks
        ii = rng.integers(0, n_inst, size=(k, n_inst))   # (k, I) instance picks
        # mean over picked seeds of the mean over picked instances; d[si] is (k, S, I)
        rows = np.take_along_axis(d[si], ii[:, None, :].repeat(S, axis=1), axis=2)
        means[start:start + k] = rows.mean(axis=(1, 2))
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    # +1 in numerator and denominator: a Monte-Carlo p-value is never exactly 0
    other_side = min(int((means <= 0).sum()), int((means >= 0).sum()))
    p = min(1.0, 2 * (1 + other_side) / (1 + resamples))
    if np.all(d == 0):
        p = 1.0
    return PairedResult(float(d.mean()), float(lo), float(hi), p, S, n_inst, "two-level paired bootstrap")


@dataclass(frozen=True)
class PairedTest:
    """The paired comparison every report states: the two-level bootstrap (interval) and the
    sign-flip permutation test (p-value) of the same ``a - b``."""

    bootstrap: PairedResult
    permutation: PairedResult

    @property
    def diff(self) -> float:
        return self.bootstrap.mean_diff

    @property
    def lo(self) -> float:
        return self.bootstrap.ci_low

    @property
    def hi(self) -> float:
        return self.bootstrap.ci_high

    @property
    def p(self) -> float:
        return self.permutation.p_value


def paired_test(a: ArrayLike, b: ArrayLike, seed: int = 0) -> PairedTest:
    """Paired comparison of ``a`` against ``b`` (shapes (seeds, instances) or (instances,)): the one
    entry point reports and experiments use."""
    return PairedTest(paired_bootstrap(a, b, seed=seed), paired_permutation_test(a, b, seed=seed))


def relative_change(base: float, new: float) -> float:
    """``(new - base) / base``; nan when ``base`` is 0 or not finite."""
    if not base or not math.isfinite(base) or not math.isfinite(new):
        return math.nan
    return (new - base) / base
