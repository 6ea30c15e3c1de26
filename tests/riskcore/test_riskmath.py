"""Risk math against straightforward numpy/scipy computations of the documented definitions.

historical_var: losses L = -(returns @ exposures), k = ceil(T * (1 - confidence)) (at
least 1); VaR is the k-th largest loss, ES the mean of the k largest.
parametric_var: VaR = z * sigma - mu, ES = sigma * pdf(z) / (1 - confidence) - mu with
sigma = sqrt(w' S w) for the sample covariance S and z the normal quantile.

The product goes through a BLAS, whose summation order is its own: on random data the
references agree to rounding; on dyadic data (every partial sum exact in binary64) the
historical figures are compared exactly against rational arithmetic.
"""
import math
import re
import warnings
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import norm

from riskcore import InvalidInputError, RiskError, historical_var, parametric_var, scenario_pnl, stress

NAN = float("nan")
INF = float("inf")


def market(seed, periods, instruments):
    rng = np.random.default_rng(seed)
    returns = rng.standard_t(df=4, size=(periods, instruments)) * 0.01
    exposures = rng.normal(0.0, 1e6, size=instruments)
    return returns, exposures


def tail_size(periods, confidence):
    # exact decimal arithmetic: 1000 * (1 - 0.99) is 10, not 10.000000000000009
    return max(1, math.ceil(periods * (1 - Decimal(str(confidence)))))


CASES = [(1, 1000, 5, 0.99), (2, 250, 3, 0.99), (3, 101, 8, 0.95), (4, 500, 1, 0.975), (5, 1000, 12, 0.975),
         (6, 50, 4, 0.999), (7, 20, 2, 0.9), (8, 2, 3, 0.5)]


# ------------------------------------------------------------ scenario P&L


def test_scenario_pnl_of_a_hand_worked_portfolio():
    returns = [[0.01, -0.02], [0.0, 0.05], [-0.03, 0.0]]
    exposures = [1_000.0, 2_000.0]
    # 10 - 40, 0 + 100, -30 + 0
    assert scenario_pnl(returns, exposures) == pytest.approx([-30.0, 100.0, -30.0], abs=1e-12)


@pytest.mark.parametrize("seed, periods, instruments, confidence", CASES)
def test_scenario_pnl_is_the_matrix_product(seed, periods, instruments, confidence):
    returns, exposures = market(seed, periods, instruments)
    np.testing.assert_allclose(scenario_pnl(returns, exposures), returns @ exposures, rtol=1e-12, atol=1e-6)


def test_scenario_pnl_of_a_single_scenario_is_one_dot_product():
    returns, exposures = market(10, 1, 6)
    out = scenario_pnl(returns, exposures)
    assert out.shape == (1,)
    assert out[0] == pytest.approx(math.fsum(returns[0] * exposures), rel=1e-12)


def test_scenario_pnl_accepts_read_only_and_fortran_ordered_inputs_without_changing_them():
    returns, exposures = market(9, 60, 4)
    expected = returns @ exposures
    fortran = np.asfortranarray(returns)
    frozen = exposures.copy()
    frozen.flags.writeable = False
    np.testing.assert_allclose(scenario_pnl(fortran, frozen), expected, rtol=1e-12, atol=1e-6)
    np.testing.assert_array_equal(fortran, returns)


# ------------------------------------------------------------- historical


def test_historical_var_of_a_hand_worked_series():
    # P&L -5, 3, -2, 7, 1: losses 5, -3, 2, -7, -1; k = ceil(5 * 0.4) = 2 -> largest two 5 and 2
    result = historical_var([[-0.05], [0.03], [-0.02], [0.07], [0.01]], [100.0], confidence=0.6)
    assert result.var == pytest.approx(2.0)
    assert result.es == pytest.approx(3.5)


@pytest.mark.parametrize("seed, periods, instruments, confidence", CASES)
def test_historical_var_is_the_kth_largest_loss_and_es_the_mean_of_the_k_largest(seed, periods, instruments,
                                                                                   confidence):
    returns, exposures = market(seed, periods, instruments)
    losses = -(returns @ exposures)
    k = tail_size(periods, confidence)
    largest_first = np.sort(losses)[::-1]
    result = historical_var(returns, exposures, confidence)
    assert result.var == pytest.approx(largest_first[k - 1], rel=1e-12, abs=1e-6)
    assert result.es == pytest.approx(largest_first[:k].mean(), rel=1e-12, abs=1e-6)
    # the same k-th order statistic through numpy's quantile of the P&L
    q = float(1 - Decimal(str(confidence)))
    if periods * q >= 1:
        assert result.var == pytest.approx(-np.quantile(returns @ exposures, q, method="inverted_cdf"),
                                           rel=1e-12, abs=1e-6)


def dyadic_market(seed, periods, instruments):
    """Returns that are multiples of 2^-10 and whole-unit exposures: every product and
    partial sum is exact in binary64, so any summation order gives the same P&L."""
    rng = np.random.default_rng(seed)
    units = rng.integers(-500, 501, size=(periods, instruments))
    exposures = rng.integers(-1_000_000, 1_000_001, size=instruments)
    return units, exposures, units / 1024.0, exposures.astype(float)


@pytest.mark.parametrize("seed, periods, instruments, confidence", CASES + [(40, 1000, 50, 0.99), (41, 7, 30, 0.5)])
def test_historical_var_and_es_equal_the_exact_order_statistic_and_tail_mean(seed, periods, instruments,
                                                                            confidence):
    units, whole, returns, exposures = dyadic_market(seed, periods, instruments)
    # P&L in exact rational arithmetic from the integer inputs, losses largest first
    losses = sorted((-Fraction(int(row @ whole), 1024) for row in units), reverse=True)
    k = tail_size(periods, confidence)
    result = historical_var(returns, exposures, confidence)
    assert result.var == float(losses[k - 1])
    assert result.es == float(sum(losses[:k]) / k)


def test_historical_var_defaults_to_99_percent():
    returns, exposures = market(11, 1000, 3)
    losses = np.sort(-(returns @ exposures))[::-1]
    assert historical_var(returns, exposures).var == pytest.approx(losses[9], rel=1e-12)


def test_historical_var_uses_at_least_the_largest_loss():
    returns, exposures = market(12, 50, 2)   # 50 * 0.001 = 0.05 -> k = 1
    result = historical_var(returns, exposures, 0.999)
    worst = float(np.max(-(returns @ exposures)))
    assert (result.var, result.es) == (pytest.approx(worst), pytest.approx(worst))


def test_historical_es_is_never_below_var():
    for seed in range(5):
        returns, exposures = market(100 + seed, 300, 6)
        result = historical_var(returns, exposures, 0.95)
        assert result.es >= result.var


# ------------------------------------------------------------- parametric


def test_parametric_var_of_a_hand_worked_series():
    # P&L +1, -1: mean 0, sample sd sqrt(2); z(0.975) = 1.959963984540054
    result = parametric_var([[0.01], [-0.01]], [100.0], confidence=0.975)
    z = 1.959963984540054
    assert result.var == pytest.approx(z * math.sqrt(2.0))
    pdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    assert result.es == pytest.approx(math.sqrt(2.0) * pdf / 0.025)


@pytest.mark.parametrize("seed, periods, instruments, confidence", CASES)
def test_parametric_var_and_es_match_the_covariance_formula(seed, periods, instruments, confidence):
    returns, exposures = market(seed, periods, instruments)
    covariance = np.atleast_2d(np.cov(returns, rowvar=False))
    sigma = math.sqrt(exposures @ covariance @ exposures)
    mu = float(returns.mean(axis=0) @ exposures)
    z = norm.ppf(confidence)
    result = parametric_var(returns, exposures, confidence)
    assert result.var == pytest.approx(z * sigma - mu, rel=1e-9, abs=1e-6)
    assert result.es == pytest.approx(sigma * norm.pdf(z) / (1 - confidence) - mu, rel=1e-9, abs=1e-6)


def test_parametric_var_defaults_to_99_percent():
    returns, exposures = market(13, 400, 3)
    pnl = returns @ exposures
    expected = norm.ppf(0.99) * pnl.std(ddof=1) - pnl.mean()
    assert parametric_var(returns, exposures).var == pytest.approx(expected, rel=1e-9)


def test_parametric_var_of_a_riskless_portfolio_is_minus_its_mean():
    returns = np.tile([0.01, 0.02], (30, 1))
    result = parametric_var(returns, [100.0, 50.0], 0.99)   # every day +2.00
    assert (result.var, result.es) == (pytest.approx(-2.0), pytest.approx(-2.0))


# ------------------------------------------------------------------ stress


def test_stress_of_a_hand_worked_portfolio():
    shocks = [[-0.10, 0.05], [0.02, -0.20]]
    # -100 + 100, 20 - 400
    assert stress([1_000.0, 2_000.0], shocks) == pytest.approx([0.0, -380.0], abs=1e-9)


def test_stress_of_a_single_shock_vector_returns_one_scenario():
    out = stress([1_000.0, 2_000.0], [-0.10, 0.05])
    assert out.shape == (1,)
    assert out[0] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_stress_is_the_matrix_product_of_shocks_and_exposures(seed):
    shocks, exposures = market(seed, 17, 9)
    np.testing.assert_allclose(stress(exposures, shocks), shocks @ exposures, rtol=1e-12, atol=1e-6)


# --------------------------------------------------------------- bad inputs


def _with(array, index, value):
    out = np.array(array, dtype=float)
    out[index] = value
    return out


RETURNS, EXPOSURES = market(31, 40, 3)
RISK_FUNCTIONS = [historical_var, parametric_var]


@pytest.mark.parametrize("function", RISK_FUNCTIONS + [scenario_pnl])
@pytest.mark.parametrize("returns, exposures", [
    (_with(RETURNS, (3, 1), NAN), EXPOSURES),
    (_with(RETURNS, (0, 0), INF), EXPOSURES),
    (_with(RETURNS, (39, 2), -INF), EXPOSURES),
    (RETURNS, _with(EXPOSURES, 1, NAN)),
    (RETURNS, _with(EXPOSURES, 0, INF)),
], ids=["nan-return", "inf-return", "minus-inf-return", "nan-exposure", "inf-exposure"])
def test_non_finite_inputs_raise_invalid_input_error(function, returns, exposures):
    with pytest.raises(InvalidInputError) as info:
        function(returns, exposures)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RiskError)


@pytest.mark.parametrize("function", RISK_FUNCTIONS + [scenario_pnl])
@pytest.mark.parametrize("returns, exposures, message", [
    (RETURNS[:, 0], EXPOSURES[:1], "returns must be a 2-d array"),
    (RETURNS.reshape(40, 3, 1), EXPOSURES, "returns must be a 2-d array"),
    (RETURNS[:0], EXPOSURES, "got shape (0, 3)"),
    (RETURNS, EXPOSURES[:2], "got shape (2,)"),
    (RETURNS, np.append(EXPOSURES, 1.0), "got shape (4,)"),
    (RETURNS, EXPOSURES.reshape(3, 1), "got shape (3, 1)"),
    ([[0.01, 0.02], [0.03]], [1.0, 2.0], "returns must be an array of numbers"),
    (RETURNS, ["a", "b", "c"], "exposures must be an array of numbers"),
], ids=["1-d-returns", "3-d-returns", "no-rows", "short-exposures", "long-exposures", "2-d-exposures",
        "ragged-returns", "text-exposures"])
def test_wrong_shapes_raise_invalid_input_error_that_names_the_input(function, returns, exposures, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        function(returns, exposures)


@pytest.mark.parametrize("function", RISK_FUNCTIONS)
def test_var_of_a_single_row_raises_invalid_input_error(function):
    with pytest.raises(InvalidInputError, match=re.escape("at least 2 rows, got shape (1, 3)")):
        function(RETURNS[:1], EXPOSURES)


@pytest.mark.parametrize("function", RISK_FUNCTIONS + [scenario_pnl])
@pytest.mark.parametrize("returns, exposures, message", [
    (_with(RETURNS, (3, 1), NAN), EXPOSURES, "returns[3, 1] = nan"),
    (_with(RETURNS, (39, 2), -INF), EXPOSURES, "returns[39, 2] = -inf"),
    (RETURNS, _with(EXPOSURES, 1, NAN), "exposures[1] = nan"),
], ids=["nan-return", "minus-inf-return", "nan-exposure"])
def test_non_finite_input_error_names_the_element(function, returns, exposures, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        function(returns, exposures)


@pytest.mark.parametrize("function", RISK_FUNCTIONS + [scenario_pnl])
@pytest.mark.parametrize("bad", [NAN, INF])
def test_non_finite_return_of_an_instrument_with_zero_exposure_still_raises(function, bad):
    # 0 * nan is nan in IEEE arithmetic, but a BLAS may skip a zero term: checked directly
    exposures = _with(EXPOSURES, 1, 0.0)
    with pytest.raises(InvalidInputError, match=re.escape(f"returns[7, 1] = {bad!r}")):
        function(_with(RETURNS, (7, 1), bad), exposures)


def test_stress_non_finite_shock_error_names_the_element():
    with pytest.raises(InvalidInputError, match=re.escape("shocks[5, 0] = nan")):
        stress(EXPOSURES, _with(RETURNS, (5, 0), NAN))


# ------------------------------------------------------------------ overflow

OVERFLOWING = [
    ([[1e200, 1e200], [0.01, 0.02]], [1e200, 1.0], 0),           # inf from finite inputs
    ([[0.01, 0.02], [1e300, 1e300]], [1e10, -1e10], 1),          # inf - inf: nan from finite inputs
]


@pytest.mark.parametrize("function", RISK_FUNCTIONS + [scenario_pnl])
@pytest.mark.parametrize("returns, exposures, row", OVERFLOWING, ids=["inf", "inf-minus-inf"])
def test_product_that_overflows_says_so(function, returns, exposures, row):
    with pytest.raises(InvalidInputError, match=f"returns @ exposures overflows: row {row} ") as info:
        function(returns, exposures)
    assert "must be finite" not in str(info.value)


@pytest.mark.parametrize("returns, exposures, row", OVERFLOWING, ids=["inf", "inf-minus-inf"])
def test_stress_that_overflows_says_so(returns, exposures, row):
    with pytest.raises(InvalidInputError, match=f"shocks @ exposures overflows: row {row} "):
        stress(exposures, returns)


def test_historical_tail_sum_that_overflows_says_so():
    # four losses of 1.5e308 each are finite; the sum of the two largest is not
    with pytest.raises(InvalidInputError, match="sum of the 2 largest losses overflows"):
        historical_var([[-1.0], [-1.0], [-1.0], [-1.0]], [1.5e308], 0.5)


@pytest.mark.parametrize("returns, moment", [
    ([[1.0], [-1.0]], "variance"),      # P&L +-1e200: squares overflow
    ([[1.0], [1.0]], "mean"),           # P&L 1.5e308 twice: the sum overflows
])
def test_parametric_moment_that_overflows_says_so(returns, moment):
    exposures = [1e200] if moment == "variance" else [1.5e308]
    with pytest.raises(InvalidInputError, match=f"the {moment} of the P&L overflows"):
        parametric_var(returns, exposures)


@pytest.mark.parametrize("function", RISK_FUNCTIONS + [scenario_pnl])
def test_errors_and_results_do_not_depend_on_numpy_floating_point_settings(function):
    # numpy warns on overflow and inf * 0 in a product, or raises FloatingPointError
    # under np.seterr(all="raise"); the risk math reports these cases itself
    returns, exposures = market(60, 30, 4)
    expected = function(returns, exposures)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(function(returns, exposures), expected)
        np.testing.assert_array_equal(function(returns * 1e-300, exposures * 1e-300), function(returns * 0, exposures))
        with pytest.raises(InvalidInputError, match="overflows"):
            function(*OVERFLOWING[1][:2])
        with pytest.raises(InvalidInputError, match=re.escape("returns[2, 0] = inf")):
            function(_with(returns, (2, 0), INF), _with(exposures, 0, 0.0))


# --------------------------------------------------------------- read-only


def frozen(array, order="C"):
    out = np.array(array, dtype=float, order=order)
    out.flags.writeable = False
    return out


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("call", [
    lambda r, w: scenario_pnl(r, w),
    lambda r, w: historical_var(r, w, 0.95),
    lambda r, w: parametric_var(r, w, 0.95),
    lambda r, w: stress(w, r),
], ids=["scenario_pnl", "historical_var", "parametric_var", "stress"])
def test_read_only_inputs_give_the_same_result_and_stay_unchanged(call, order):
    returns, exposures = market(50, 120, 7)
    r, w = frozen(returns, order), frozen(exposures)
    expected = call(np.array(returns, order=order), exposures.copy())
    np.testing.assert_array_equal(call(r, w), expected)
    np.testing.assert_array_equal(r, returns)
    np.testing.assert_array_equal(w, exposures)


@pytest.mark.parametrize("function", RISK_FUNCTIONS)
@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, NAN])
def test_confidence_outside_the_open_unit_interval_raises_invalid_input_error(function, confidence):
    with pytest.raises(InvalidInputError):
        function(RETURNS, EXPOSURES, confidence)


@pytest.mark.parametrize("exposures, shocks", [
    (EXPOSURES, RETURNS[:, :2]),
    (EXPOSURES, RETURNS.reshape(40, 3, 1)),
    (EXPOSURES.reshape(3, 1), RETURNS),
    (EXPOSURES, _with(RETURNS, (5, 0), NAN)),
    (_with(EXPOSURES, 2, INF), RETURNS),
], ids=["narrow-shocks", "3-d-shocks", "2-d-exposures", "nan-shock", "inf-exposure"])
def test_stress_with_bad_inputs_raises_invalid_input_error(exposures, shocks):
    with pytest.raises(InvalidInputError):
        stress(exposures, shocks)
