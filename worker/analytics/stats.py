"""The statistics of outcome reports: means, proportions, differences, non-inferiority, SRM.

Pure and dependency-free (no SciPy at run time), because reports and ``routeq suggest`` must run
wherever the command line does. The two special functions needed are implemented here from
their classic numerical recipes (Press et al., *Numerical Recipes*, 3rd ed., §6.2 and §6.4):

- the regularised upper incomplete gamma ``Q(a, x)`` (series below ``a + 1``, Lentz's continued
  fraction above), which gives chi-square p-values;
- the regularised incomplete beta ``I_x(a, b)`` (continued fraction), which gives Student's t
  distribution; t quantiles are found by bisection on it.

Normal quantiles come from :class:`statistics.NormalDist` (Wichura's AS 241, full precision).

Small samples: every interval of a mean uses Student's t with ``n - 1`` degrees of freedom (Welch's
fractional degrees of freedom for a difference). For large ``n`` that is the normal approximation
to within 0.1 %, and for small ``n`` it is the exact interval under normality instead of a too
narrow one. A mean of one value has no interval (its variance is unknown).

Scores arrive as sums (count, sum, sum of squares) because that is what the rollups can add up
exactly as jobs finish; the sample variance is computed from them and held at >= 0 against
rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final, Literal

CONFIDENCE: Final = 0.95
#: Sample-ratio mismatch is flagged below this p-value (Statsig's and GrowthBook's default).
SRM_ALPHA: Final = 0.001
#: Relative standard error of a Redis HyperLogLog count (1.04 / sqrt(16384)).
HLL_RELATIVE_ERROR: Final = 0.0081

Verdict = Literal["better", "worse", "inconclusive"]

_EPS: Final = 1e-15
_TINY: Final = 1e-300
_MAX_ITERATIONS: Final = 10_000
#: Above this many degrees of freedom t and the normal distribution agree to ~1e-6.
_NORMAL_DF: Final = 1e7
_STANDARD_NORMAL: Final = NormalDist()


# -- value types --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Mean:
    """A sample mean. ``variance`` is the sample variance (n - 1); the interval needs n >= 2."""

    n: int
    mean: float | None
    variance: float | None
    interval: Interval | None

    @property
    def standard_error(self) -> float | None:
        if self.variance is None:
            return None
        return math.sqrt(self.variance / self.n)


@dataclass(frozen=True, slots=True)
class Difference:
    """``a - b`` of two means, Welch's standard error and degrees of freedom, and its interval."""

    estimate: float
    standard_error: float
    df: float
    interval: Interval


@dataclass(frozen=True, slots=True)
class RelativeLift:
    """``a / b - 1`` with a delta-method (normal) interval."""

    estimate: float
    interval: Interval


@dataclass(frozen=True, slots=True)
class NonInferiority:
    """One-sided test of ``candidate - current > -margin`` at the given confidence.

    ``lower_bound`` is the one-sided lower confidence bound of ``candidate - current``;
    the candidate is non-inferior when it lies above ``-margin`` (equivalently ``p_value`` below
    ``1 - confidence``).
    """

    margin: float
    difference: float
    lower_bound: float
    p_value: float
    non_inferior: bool


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """Pearson's chi-square goodness of fit of observed units against configured weights."""

    statistic: float
    df: int
    p_value: float
    observed: Mapping[str, int]
    expected: Mapping[str, float]
    mismatch: bool


# -- means, proportions, differences ------------------------------------------------------------


def mean_from_sums(n: int, total: float, total_sq: float, confidence: float = CONFIDENCE) -> Mean:
    """The mean of ``n`` values given their sum and sum of squares, with a t interval (n >= 2)."""
    if n <= 0:
        return Mean(0, None, None, None)
    mean = total / n
    if n == 1:
        return Mean(1, mean, None, None)
    variance = max(0.0, (total_sq - total * total / n) / (n - 1))
    half = t_quantile(_upper(confidence), n - 1) * math.sqrt(variance / n)
    return Mean(n, mean, variance, Interval(mean - half, mean + half))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval | None:
    """Wilson's score interval for a proportion (good at small n and near 0 or 1, unlike Wald's)."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    z = normal_quantile(_upper(confidence))
    p = successes / n
    z2n = z * z / n
    denominator = 1 + z2n
    center = (p + z2n / 2) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2n / (4 * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return Interval(low, high)


def welch_difference(a: Mean, b: Mean, confidence: float = CONFIDENCE) -> Difference | None:
    """``a - b`` with Welch's interval (unequal variances); None unless both have n >= 2."""
    if a.variance is None or b.variance is None or a.mean is None or b.mean is None:
        return None
    va, vb = a.variance / a.n, b.variance / b.n
    se = math.sqrt(va + vb)
    estimate = a.mean - b.mean
    denominator = va * va / (a.n - 1) + vb * vb / (b.n - 1)
    df = (va + vb) ** 2 / denominator if denominator > 0 else math.inf
    half = t_quantile(_upper(confidence), df) * se if se > 0 else 0.0
    return Difference(estimate, se, df, Interval(estimate - half, estimate + half))


def relative_lift(a: Mean, b: Mean, confidence: float = CONFIDENCE) -> RelativeLift | None:
    """``a / b - 1`` (the lift of ``a`` over ``b``), its interval by the delta method."""
    sa, sb = a.standard_error, b.standard_error
    if sa is None or sb is None or a.mean is None or b.mean is None or b.mean == 0:
        return None
    ratio = a.mean / b.mean
    se = math.sqrt(sa * sa / b.mean**2 + a.mean**2 * sb * sb / b.mean**4)
    half = normal_quantile(_upper(confidence)) * se
    return RelativeLift(ratio - 1, Interval(ratio - 1 - half, ratio - 1 + half))


def non_inferiority(
    candidate: Mean, current: Mean, margin: float, confidence: float = CONFIDENCE
) -> NonInferiority | None:
    """Is the candidate's mean at least the current one's minus ``margin``? One-sided Welch test.

    None unless both means have n >= 2. A zero standard error (identical scores) decides on the
    difference alone.
    """
    if margin < 0:
        raise ValueError(f"the margin must be >= 0, got {margin}")
    diff = welch_difference(candidate, current, confidence)
    if diff is None:
        return None
    shifted = diff.estimate + margin
    if diff.standard_error > 0:
        lower = diff.estimate - t_quantile(confidence, diff.df) * diff.standard_error
        p_value = 1.0 - t_cdf(shifted / diff.standard_error, diff.df)
    else:
        lower = diff.estimate
        p_value = 0.0 if shifted > 0 else 1.0
    return NonInferiority(margin, diff.estimate, lower, p_value, lower > -margin)


def verdict(interval: Interval | None, *, higher_is_better: bool = True) -> Verdict:
    """``better``/``worse`` only where the interval of a difference excludes zero."""
    if interval is None or not interval.excludes_zero():
        return "inconclusive"
    up = interval.low > 0
    return "better" if up == higher_is_better else "worse"


def sample_ratio_check(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    alpha: float = SRM_ALPHA,
    relative_error: float = 0.0,
) -> SampleRatio | None:
    """Chi-square test of the observed split of units against the configured ``weights``.

    Only configured variants count (a variant removed from the rules has no expected share).
    A variant with weight 0 that received units is a mismatch outright. ``relative_error`` widens
    each cell's variance by an approximate counting error (a HyperLogLog's 0.81 %), so that very
    large experiments are not flagged for the counter's own noise: the statistic becomes
    ``sum((o - e)^2 / (e + (r e)^2))``, conservative, and plain Pearson when ``r`` is 0.
    None when there are no units or fewer than two variants with weight.
    """
    names = [v for v in weights if weights[v] > 0]
    total = sum(observed.get(v, 0) for v in weights)
    weight_sum = sum(weights[v] for v in names)
    if total <= 0 or len(names) < 2:
        return None
    expected = {v: total * weights[v] / weight_sum if weights[v] > 0 else 0.0 for v in weights}
    seen = {v: observed.get(v, 0) for v in weights}
    if any(seen[v] > 0 and weights[v] <= 0 for v in weights):
        return SampleRatio(math.inf, len(names) - 1, 0.0, seen, expected, True)
    statistic = 0.0
    for v in names:
        e = expected[v]
        statistic += (seen[v] - e) ** 2 / (e + (relative_error * e) ** 2)
    df = len(names) - 1
    p_value = chi2_sf(statistic, df)
    return SampleRatio(statistic, df, p_value, seen, expected, p_value < alpha)


# -- distributions ------------------------------------------------------------------------------


def normal_quantile(p: float) -> float:
    return _STANDARD_NORMAL.inv_cdf(p)


def chi2_sf(x: float, df: float) -> float:
    """P(X >= x) for X ~ chi-square(df): the p-value of a chi-square statistic."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    return gamma_q(df / 2, x / 2)


def gamma_q(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a)."""
    if a <= 0:
        raise ValueError(f"a must be > 0, got {a}")
    if x <= 0:
        return 1.0
    if x < a + 1:
        return max(0.0, 1.0 - _gamma_p_series(a, x))
    return _gamma_q_fraction(a, x)


def _gamma_p_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    ap = a
    for _ in range(_MAX_ITERATIONS):
        ap += 1
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_fraction(a: float, x: float) -> float:
    b = x + 1 - a
    c = 1 / _TINY
    d = 1 / b
    h = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def beta_i(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1, a - 1
    c = 1.0
    d = 1 - qab * x / qap
    d = 1 / (_TINY if abs(d) < _TINY else d)
    h = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (_TINY if abs(d) < _TINY else d)
        c = 1 + aa / c
        c = _TINY if abs(c) < _TINY else c
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (_TINY if abs(d) < _TINY else d)
        c = 1 + aa / c
        c = _TINY if abs(c) < _TINY else c
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return h


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (any real df > 0; inf = normal)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if df >= _NORMAL_DF:
        return _STANDARD_NORMAL.cdf(t)
    tail = 0.5 * beta_i(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_pdf(t: float, df: float) -> float:
    """The density of Student's t with ``df`` degrees of freedom."""
    if df >= _NORMAL_DF:
        return _STANDARD_NORMAL.pdf(t)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t: Newton's method on :func:`t_cdf`, kept inside a bracket
    (a step that leaves it bisects instead), to ~1e-13."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df >= _NORMAL_DF:
        return normal_quantile(p)
    if p < 0.5:
        return -t_quantile(1 - p, df)
    if p == 0.5:
        return 0.0
    low, high = 0.0, max(1.0, normal_quantile(p))
    while t_cdf(high, df) < p:
        low, high = high, high * 2
    x = (low + high) / 2
    for _ in range(200):
        error = t_cdf(x, df) - p
        if error < 0:
            low = x
        else:
            high = x
        density = t_pdf(x, df)
        step = x - error / density if density > 0 else low - 1.0
        x_next = step if low < step < high else (low + high) / 2
        if abs(x_next - x) <= 1e-14 * max(1.0, abs(x)) or high - low <= 1e-14 * max(1.0, high):
            return x_next
        x = x_next
    return x


def _upper(confidence: float) -> float:
    """The upper quantile of a two-sided interval at ``confidence``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return 1 - (1 - confidence) / 2
