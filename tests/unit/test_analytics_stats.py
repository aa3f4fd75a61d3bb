"""The report statistics against published values and closed forms.

Sources of the reference numbers:
- t and chi-square critical values: NIST/SEMATECH e-Handbook of Statistical Methods, tables
  1.3.6.7.2 (t) and 1.3.6.7.4 (chi-square), 3 decimals;
- closed forms: t with 1 df is Cauchy, F^-1(p) = tan(pi (p - 1/2)); with 2 df,
  F^-1(p) = (2p - 1) sqrt(2 / (4 p (1 - p))); chi-square survival with 1 df is erfc(sqrt(x/2)),
  2 df exp(-x/2), 3 df erfc(sqrt(x/2)) + sqrt(2x/pi) exp(-x/2), 4 df exp(-x/2) (1 + x/2);
- Wilson intervals: Newcombe, "Two-sided confidence intervals for the single proportion",
  Statistics in Medicine 17 (1998) 857-872, Table I, method 3 (4 decimals);
- Welch: the worked examples of Wikipedia's "Welch's t-test" article (t, nu, p to 2-3 digits);
- sample-ratio mismatch: Kohavi, Tang, Xu, *Trustworthy Online Controlled Experiments* (2020),
  ch. 21: 821,588 vs 815,482 users in a 50/50 split, p = 1.8e-6.
"""

from __future__ import annotations

import math

import pytest

from worker.analytics.stats import (
    HLL_RELATIVE_ERROR,
    Interval,
    Mean,
    chi2_sf,
    mean_from_sums,
    non_inferiority,
    normal_quantile,
    relative_lift,
    sample_ratio_check,
    t_cdf,
    t_quantile,
    verdict,
    welch_difference,
    wilson_interval,
)


def sample(values: list[float]) -> Mean:
    return mean_from_sums(len(values), sum(values), sum(v * v for v in values))


# -- distributions ------------------------------------------------------------------------------


@pytest.mark.parametrize(("p", "df", "table"), [
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 5, 2.571), (0.975, 10, 2.228),
    (0.975, 30, 2.042), (0.95, 10, 1.812), (0.995, 20, 2.845), (0.95, 100, 1.660),
])
def test_t_quantiles_match_the_table(p: float, df: int, table: float) -> None:
    assert t_quantile(p, df) == pytest.approx(table, abs=5e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-table, abs=5e-4)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.95, 0.975, 0.999, 0.999999])
def test_t_quantiles_match_the_closed_forms(p: float) -> None:
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) * math.sqrt(2 / (4 * p * (1 - p))), rel=1e-10)


def test_t_tends_to_the_normal_and_takes_fractional_df() -> None:
    assert t_quantile(0.975, 1e9) == pytest.approx(normal_quantile(0.975), abs=1e-12)
    assert t_quantile(0.975, 1e5) == pytest.approx(1.959963984540054, abs=5e-5)
    between = t_quantile(0.975, 24.5)
    assert t_quantile(0.975, 25) < between < t_quantile(0.975, 24)
    assert t_cdf(between, 24.5) == pytest.approx(0.975, abs=1e-12)


@pytest.mark.parametrize(("x", "df", "p"), [
    (3.841, 1, 0.05), (5.991, 2, 0.05), (7.815, 3, 0.05), (18.307, 10, 0.05), (10.828, 1, 0.001),
    (13.816, 2, 0.001), (29.588, 10, 0.001),
])
def test_chi_square_p_values_match_the_table(x: float, df: int, p: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(p, rel=2e-3)


@pytest.mark.parametrize("x", [0.01, 0.5, 1.0, 2.5, 7.0, 20.0, 60.0])
def test_chi_square_p_values_match_the_closed_forms(x: float) -> None:
    assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-10)
    assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-10)
    three = math.erfc(math.sqrt(x / 2)) + math.sqrt(2 * x / math.pi) * math.exp(-x / 2)
    assert chi2_sf(x, 3) == pytest.approx(three, rel=1e-10)
    assert chi2_sf(x, 4) == pytest.approx(math.exp(-x / 2) * (1 + x / 2), rel=1e-10)


def test_chi_square_edges() -> None:
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(math.inf, 3) == 0.0
    assert 0.0 <= chi2_sf(2000.0, 1) < 1e-300


# -- means and proportions ----------------------------------------------------------------------


def test_mean_from_sums_uses_t_with_n_minus_1_df() -> None:
    values = [0.2, 0.4, 0.9, 0.6, 0.7]
    m = sample(values)
    mean = sum(values) / 5
    var = sum((v - mean) ** 2 for v in values) / 4
    half = 2.7764451051977987 * math.sqrt(var / 5)  # t(0.975, 4), NIST table: 2.776
    assert m.mean == pytest.approx(mean)
    assert m.variance == pytest.approx(var)
    assert m.interval is not None
    assert (m.interval.low, m.interval.high) == pytest.approx((mean - half, mean + half), rel=1e-9)


def test_mean_of_nothing_or_one_value_has_no_interval() -> None:
    assert mean_from_sums(0, 0.0, 0.0) == Mean(0, None, None, None)
    one = mean_from_sums(1, 0.7, 0.49)
    assert (one.mean, one.interval) == (0.7, None)


def test_rounding_never_gives_a_negative_variance() -> None:
    m = mean_from_sums(3, 2.1, 1.4699999999999998)  # 0.7 three times, sum of squares rounded low
    assert m.variance == 0.0
    assert m.interval is not None and m.interval.low == m.interval.high == m.mean


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe(k: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(k, n)
    assert interval is not None
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=6e-5)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) is None
    everything = wilson_interval(20, 20)
    assert everything is not None and everything.high == 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


# -- differences, lift, non-inferiority, verdict ------------------------------------------------

A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
B1 = [17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8]
B2 = [21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8, 20.7, 21.7, 21.5, 22.5, 23.6, 21.5, 22.5,
      23.5, 21.5, 21.8]


@pytest.mark.parametrize(("a", "b", "t", "nu", "p"),
                         [(A1, A2, -2.46, 24.99, 0.021), (B1, B2, -1.57, 9.90, 0.149)])
def test_welch_matches_the_worked_examples(
    a: list[float], b: list[float], t: float, nu: float, p: float
) -> None:
    d = welch_difference(sample(a), sample(b))
    assert d is not None
    assert d.estimate / d.standard_error == pytest.approx(t, abs=0.005)
    assert d.df == pytest.approx(nu, abs=0.005)
    assert 2 * t_cdf(-abs(d.estimate / d.standard_error), d.df) == pytest.approx(p, abs=0.0005)
    # The 95 % interval excludes zero exactly when the two-sided p-value is below 0.05.
    assert d.interval.excludes_zero() == (p < 0.05)


def test_welch_with_equal_sizes_and_variances_is_the_pooled_t() -> None:
    a, b = mean_from_sums(10, 6.0, 4.5), mean_from_sums(10, 4.0, 2.5)  # both variance 0.1
    d = welch_difference(a, b)
    assert d is not None and d.df == pytest.approx(18)
    assert d.interval.high - d.estimate == pytest.approx(t_quantile(0.975, 18) * math.sqrt(0.02))


def test_welch_needs_two_values_per_side_and_survives_zero_variance() -> None:
    assert welch_difference(mean_from_sums(1, 1.0, 1.0), mean_from_sums(5, 3.0, 2.0)) is None
    same = welch_difference(mean_from_sums(4, 4.0, 4.0), mean_from_sums(4, 4.0, 4.0))
    assert same is not None and same.interval == Interval(0.0, 0.0)
    assert verdict(same.interval) == "inconclusive"


def test_relative_lift_by_the_delta_method() -> None:
    control, variant = mean_from_sums(400, 200.0, 150.0), mean_from_sums(400, 220.0, 170.0)
    lift = relative_lift(variant, control)
    assert lift is not None
    assert lift.estimate == pytest.approx(0.1)
    assert control.standard_error is not None and variant.standard_error is not None
    se = math.sqrt(variant.standard_error**2 / 0.25 + 0.55**2 * control.standard_error**2 / 0.5**4)
    assert lift.interval.high - lift.estimate == pytest.approx(1.959963984540054 * se)
    assert relative_lift(variant, mean_from_sums(3, 0.0, 0.0)) is None


def test_non_inferiority_is_one_sided_at_95() -> None:
    current = mean_from_sums(500, 450.0, 450.0)  # 0/1 scores: 90 % right
    candidate = mean_from_sums(500, 440.0, 440.0)  # 88 % right
    test = non_inferiority(candidate, current, margin=0.06)
    assert test is not None
    diff = welch_difference(candidate, current)
    assert diff is not None
    # The one-sided 95 % bound is the two-sided 90 % interval's lower end.
    assert test.lower_bound == pytest.approx(welch_difference(candidate, current, 0.90).interval.low)  # type: ignore[union-attr]
    assert -0.06 < test.lower_bound < -0.05
    assert test.non_inferior and test.p_value < 0.05
    tighter = non_inferiority(candidate, current, margin=0.05)
    assert tighter is not None and not tighter.non_inferior and tighter.p_value > 0.05
    strict = non_inferiority(candidate, current, margin=0.0)
    assert strict is not None and not strict.non_inferior and strict.p_value > 0.05


def test_a_much_worse_candidate_is_not_non_inferior() -> None:
    current = mean_from_sums(300, 285.0, 285.0)
    worse = mean_from_sums(300, 150.0, 150.0)
    test = non_inferiority(worse, current, margin=0.02)
    assert test is not None and not test.non_inferior and test.p_value > 0.99


def test_non_inferiority_with_identical_scores_decides_on_the_difference() -> None:
    perfect = mean_from_sums(50, 50.0, 50.0)
    test = non_inferiority(perfect, perfect, margin=0.02)
    assert test is not None and test.non_inferior and test.p_value == 0.0
    assert non_inferiority(mean_from_sums(1, 1.0, 1.0), perfect, margin=0.02) is None
    with pytest.raises(ValueError):
        non_inferiority(perfect, perfect, margin=-0.1)


@pytest.mark.parametrize(("interval", "higher", "expected"), [
    (Interval(0.01, 0.2), True, "better"), (Interval(-0.2, -0.01), True, "worse"),
    (Interval(-0.1, 0.1), True, "inconclusive"), (Interval(0.0, 0.2), True, "inconclusive"),
    (Interval(0.01, 0.2), False, "worse"), (None, True, "inconclusive"),
])
def test_verdict_only_where_the_interval_excludes_zero(interval: Interval | None, higher: bool,
                                                      expected: str) -> None:
    assert verdict(interval, higher_is_better=higher) == expected


# -- sample-ratio mismatch ----------------------------------------------------------------------


def test_srm_matches_kohavis_example() -> None:
    check = sample_ratio_check({"control": 821_588, "treatment": 815_482}, {"control": 50, "treatment": 50})
    assert check is not None
    assert check.df == 1 and check.p_value == pytest.approx(1.8e-6, rel=0.05)
    assert check.mismatch


def test_srm_on_a_fair_split_is_not_flagged() -> None:
    check = sample_ratio_check({"control": 9_012, "a": 508, "b": 480}, {"control": 90, "a": 5, "b": 5})
    assert check is not None and check.df == 2
    statistic = (9_012 - 9_000) ** 2 / 9_000 + 8**2 / 500 + 20**2 / 500
    assert check.statistic == pytest.approx(statistic)
    assert check.p_value == pytest.approx(math.exp(-statistic / 2))  # 2 df: closed form
    assert not check.mismatch


def test_srm_with_counting_error_is_not_fooled_by_the_counter_at_scale() -> None:
    # 1 % off on a million units per arm: a HyperLogLog's own noise, not a broken split.
    observed, weights = {"control": 1_005_000, "b": 995_000}, {"control": 50, "b": 50}
    plain = sample_ratio_check(observed, weights)
    widened = sample_ratio_check(observed, weights, relative_error=HLL_RELATIVE_ERROR)
    assert plain is not None and plain.mismatch
    assert widened is not None and not widened.mismatch
    # At small counts the widening changes next to nothing.
    small = sample_ratio_check({"control": 600, "b": 400}, weights, relative_error=HLL_RELATIVE_ERROR)
    assert small is not None and small.mismatch


def test_srm_edges() -> None:
    assert sample_ratio_check({}, {"control": 50, "b": 50}) is None
    assert sample_ratio_check({"control": 10}, {"control": 100}) is None
    zero = sample_ratio_check({"control": 100, "b": 90, "off": 3}, {"control": 50, "b": 50, "off": 0})
    assert zero is not None and zero.mismatch and zero.p_value == 0.0
    unknown_variant = sample_ratio_check({"control": 100, "b": 100, "gone": 999}, {"control": 50, "b": 50})
    assert unknown_variant is not None and not unknown_variant.mismatch
