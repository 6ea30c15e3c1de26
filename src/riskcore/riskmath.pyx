"""Portfolio risk math: value at risk, expected shortfall and stress P&L.

The portfolio is a vector of money exposures per instrument; a scenario is a
vector of simple returns (a historical day, or a stress shock), so its P&L is
the dot product and a loss is a negative P&L. The README's "Portfolio risk
math" section states the conventions; this module implements exactly that.

The matrix-vector product goes through numpy's ``matmul`` (its BLAS ``gemv``,
which runs without the GIL and on numpy's BLAS threads); what follows it
(finiteness, the order statistic, the moments) is one ``nogil`` pass here.
scipy's ``cython_blas`` would keep the whole call in one ``nogil`` block and
save about 1 µs of numpy's dispatch, but it is a second OpenBLAS with its own
thread pool: called in turn with numpy's BLAS in one process, the two pools
wait on each other (on a 2-core machine, 8 ms per pair of 1000x2000 products
against 0.7 ms with numpy's BLAS for both).
"""
from collections import namedtuple
from statistics import NormalDist

import numpy as np

from libc.math cimport isfinite, ceil, sqrt
from libcpp.algorithm cimport nth_element
from libcpp.functional cimport greater

from riskcore.errors import InvalidInputError

VaRResult = namedtuple("VaRResult", "var es")

_NORMAL = NormalDist()


# ------------------------------------------------------------ nogil helpers

cdef Py_ssize_t first_non_finite(const double[::1] values) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(values.shape[0]):
        if not isfinite(values[i]):
            return i
    return -1


cdef bint any_zero(const double[::1] values) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(values.shape[0]):
        if values[i] == 0.0:
            return True
    return False


cdef double largest_losses_sum(double[::1] pnl, Py_ssize_t k) noexcept nogil:
    # Negate in place (pnl is this call's own buffer), then select: after
    # nth_element with greater<>, slot k-1 holds the k-th largest loss and the
    # slots before it the k-1 losses at least as large, in O(T) rather than a
    # sort's O(T log T). Returns their sum; the VaR is pnl[k - 1].
    cdef Py_ssize_t t
    cdef double total = 0.0
    cdef double* first = &pnl[0]
    for t in range(pnl.shape[0]):
        first[t] = -first[t]
    nth_element(first, first + (k - 1), first + pnl.shape[0], greater[double]())
    for t in range(k):
        total += first[t]
    return total


# ------------------------------------------------------- the Python boundary

cdef object _as_float_array(values, str name, convert):
    try:
        return convert(values, dtype=np.float64)
    except (TypeError, ValueError) as error:   # ragged lists, strings, None
        raise InvalidInputError(f"{name} must be an array of numbers: {error}") from error


cdef tuple _inputs(returns, exposures, str name, Py_ssize_t min_rows, bint one_row_ok):
    """Return ``(r, w)`` as float64 arrays, checked for shape and finite exposures.

    ``r`` keeps its layout: numpy's product takes C or Fortran order without a
    copy (a copy of a Fortran-ordered 1000x2000 matrix costs several times the
    product). The BLAS then sums in another order, so the last bits of a sum
    can differ between the two layouts of the same numbers. ``w`` is made
    contiguous for the nogil helpers.
    """
    r = _as_float_array(returns, name, np.asarray)
    w = _as_float_array(exposures, "exposures", np.ascontiguousarray)
    if one_row_ok and r.ndim == 1:
        r = r.reshape(1, -1)
    if r.ndim != 2 or r.shape[0] < min_rows:
        rows = "a row" if min_rows == 1 else f"at least {min_rows} rows"
        raise InvalidInputError(f"{name} must be a 2-d array with {rows}, got shape {r.shape}")
    if w.ndim != 1 or w.shape[0] != r.shape[1]:
        raise InvalidInputError(
            f"exposures must be 1-d with one entry per column of {name} ({r.shape[1]}), got shape {w.shape}")
    cdef const double[::1] wv = w
    cdef Py_ssize_t bad
    with nogil:
        bad = first_non_finite(wv)
    if bad >= 0:
        raise InvalidInputError(f"exposures must be finite, got exposures[{bad}] = {float(w[bad])!r}")
    return r, w


cdef _check_confidence(double confidence):
    if not (0.0 < confidence < 1.0):
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence!r}")


cdef object _pnl(r, w, str name):
    """P&L per scenario, ``r @ w``, raising on a non-finite input or an overflow.

    A NaN or infinity in a row makes that row's sum non-finite when every
    term is computed (NaN propagates; inf * 0 is NaN; inf - inf is NaN), so
    the T sums check the T*N inputs, except where a BLAS may skip a term:
    the columns whose exposure is exactly 0, which are checked directly.
    A non-finite sum from finite inputs is an overflow.
    """
    out = np.empty(r.shape[0], dtype=np.float64)
    # numpy checks the FPU flags after a ufunc and warns, or raises
    # FloatingPointError under np.seterr(all="raise"), on overflow or inf * 0;
    # this module reports those cases itself, below, as InvalidInputError.
    with np.errstate(all="ignore"):
        np.matmul(r, w, out=out)
    cdef double[::1] ov = out
    cdef const double[::1] wv = w
    cdef Py_ssize_t bad
    cdef bint zeros
    with nogil:
        bad = first_non_finite(ov)
        zeros = any_zero(wv)
    if bad >= 0 or (zeros and not np.isfinite(r[:, w == 0.0]).all()):
        _raise_non_finite(r, name, out, bad)
    return out


cdef _raise_non_finite(r, str name, out, Py_ssize_t row):
    # The error path only: find the first bad input, if any, to name it.
    finite = np.isfinite(r)
    if not finite.all():
        t, i = np.argwhere(~finite)[0]
        raise InvalidInputError(f"{name} must be finite, got {name}[{t}, {i}] = {float(r[t, i])!r}")
    raise InvalidInputError(
        f"{name} @ exposures overflows: row {row} sums to {float(out[row])!r} from finite inputs "
        f"(a term or partial sum is past the float64 range, about 1.8e308)")


def scenario_pnl(returns, exposures):
    """Return the portfolio P&L of each scenario row: ``returns @ exposures``.

    Parameters
    ----------
    returns : (T, N) array of float
        Simple returns per scenario (T >= 1) and instrument.
    exposures : (N,) array of float
        Money exposure per instrument (signed: long positive).

    Returns
    -------
    numpy.ndarray of shape (T,)
        P&L per scenario in money; a gain is positive.

    Raises
    ------
    InvalidInputError
        On a wrong shape, a NaN or infinite input, or a product that overflows.

    Notes
    -----
    O(T·N): numpy's BLAS ``gemv`` (GIL released, numpy's BLAS threads), then
    an O(T) finiteness check without the GIL.
    """
    r, w = _inputs(returns, exposures, "returns", 1, False)
    return _pnl(r, w, "returns")


def historical_var(returns, exposures, double confidence=0.99):
    """Return the historical-simulation VaR and expected shortfall of a portfolio.

    With losses ``L = -(returns @ exposures)`` and ``k = max(1, ceil(T * (1 -
    confidence)))``, VaR is the k-th largest loss and ES the mean of the k
    largest losses (so ES >= VaR).

    Parameters
    ----------
    returns : (T, N) array of float
        Simple returns per historical day (T >= 2) and instrument.
    exposures : (N,) array of float
        Money exposure per instrument (signed: long positive).
    confidence : float
        In (0, 1); 0.99 by default.

    Returns
    -------
    VaRResult
        ``(var, es)`` in money, positive numbers being losses.

    Raises
    ------
    InvalidInputError
        On a wrong shape, a NaN or infinite input, a confidence outside
        (0, 1), or a product or tail sum that overflows.

    Notes
    -----
    O(T·N) for the product (numpy's BLAS, GIL released), then O(T) selection
    (``std::nth_element``, no sort) without the GIL.
    """
    _check_confidence(confidence)
    r, w = _inputs(returns, exposures, "returns", 2, False)
    cdef Py_ssize_t T = r.shape[0]
    # The 1e-9 keeps T * (1 - c) that is an integer in exact arithmetic from
    # rounding up past it (1000 * (1 - 0.99) is 10.000000000000009 in floats).
    cdef Py_ssize_t k = max(1, <Py_ssize_t>ceil(T * (1.0 - confidence) - 1e-9))
    cdef double[::1] pv = _pnl(r, w, "returns")
    cdef double tail, var
    with nogil:
        tail = largest_losses_sum(pv, k)
        var = pv[k - 1]
    if not isfinite(tail):
        raise InvalidInputError(
            f"the sum of the {k} largest losses overflows (the largest is {float(np.max(pv[:k]))!r})")
    return VaRResult(var, tail / k)


def parametric_var(returns, exposures, double confidence=0.99):
    """Return the variance-covariance (normal) VaR and expected shortfall.

    The portfolio P&L series ``returns @ exposures`` has mean ``mu`` and
    sample standard deviation ``sigma`` (ddof=1, which equals
    ``sqrt(w' S w)`` for the sample covariance ``S``). With ``z`` the standard
    normal quantile at ``confidence``: ``VaR = z*sigma - mu`` and
    ``ES = sigma * pdf(z) / (1 - confidence) - mu``.

    Parameters
    ----------
    returns : (T, N) array of float
        Simple returns per historical day (T >= 2) and instrument.
    exposures : (N,) array of float
        Money exposure per instrument (signed: long positive).
    confidence : float
        In (0, 1); 0.99 by default.

    Returns
    -------
    VaRResult
        ``(var, es)`` in money, positive numbers being losses.

    Raises
    ------
    InvalidInputError
        On a wrong shape, a NaN or infinite input, a confidence outside
        (0, 1), or a product or variance that overflows.

    Notes
    -----
    O(T·N) for the product (numpy's BLAS, GIL released), then two O(T)
    passes (mean, then squared deviations) without the GIL.
    """
    _check_confidence(confidence)
    r, w = _inputs(returns, exposures, "returns", 2, False)
    cdef Py_ssize_t t, T = r.shape[0]
    cdef double[::1] pv = _pnl(r, w, "returns")
    cdef double mean = 0.0, ss = 0.0, sigma
    with nogil:
        for t in range(T):
            mean += pv[t]
        mean /= T
        for t in range(T):
            ss += (pv[t] - mean) * (pv[t] - mean)
        sigma = sqrt(ss / (T - 1))
    if not (isfinite(mean) and isfinite(sigma)):
        raise InvalidInputError(f"the {'mean' if not isfinite(mean) else 'variance'} of the P&L overflows")
    z = _NORMAL.inv_cdf(confidence)
    return VaRResult(z * sigma - mean, sigma * _NORMAL.pdf(z) / (1.0 - confidence) - mean)


def stress(exposures, shocks):
    """Return the P&L of the portfolio under each stress scenario (a row of returns per shock).

    Parameters
    ----------
    exposures : (N,) array of float
        Money exposure per instrument (signed: long positive).
    shocks : (S, N) or (N,) array of float
        Simple return shocks per instrument; a 1-d array is one scenario.

    Returns
    -------
    numpy.ndarray of shape (S,)
        P&L per scenario in money; a gain is positive.

    Raises
    ------
    InvalidInputError
        On a wrong shape, a NaN or infinite input, or a product that overflows.

    Notes
    -----
    The same product as :func:`scenario_pnl`, with its cost and GIL behaviour.
    """
    s, w = _inputs(shocks, exposures, "shocks", 1, True)
    return _pnl(s, w, "shocks")
