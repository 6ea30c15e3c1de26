"""Portfolio risk math: value at risk, expected shortfall and stress P&L.

The portfolio is a vector of money exposures per instrument; a scenario is a
vector of simple returns (a historical day, or a stress shock), so its P&L is
the dot product. Compiled loops run without the GIL.
"""
from collections import namedtuple
from statistics import NormalDist

import numpy as np

from libc.math cimport isfinite, ceil, sqrt
from libcpp.algorithm cimport sort
from libcpp.functional cimport greater
from libcpp.vector cimport vector

from riskcore.errors import InvalidInputError

VaRResult = namedtuple("VaRResult", "var es")


cdef void portfolio_pnl(const double[:, ::1] returns, const double[::1] exposures,
                        double[::1] out) noexcept nogil:
    # Four independent partial sums let the CPU overlap the multiply-adds
    # (a single running sum serialises them on the add latency).
    cdef Py_ssize_t t, i, n = returns.shape[1], tail = n - n % 4
    cdef double a0, a1, a2, a3
    for t in range(returns.shape[0]):
        a0 = a1 = a2 = a3 = 0.0
        for i in range(0, tail, 4):
            a0 += returns[t, i] * exposures[i]
            a1 += returns[t, i + 1] * exposures[i + 1]
            a2 += returns[t, i + 2] * exposures[i + 2]
            a3 += returns[t, i + 3] * exposures[i + 3]
        for i in range(tail, n):
            a0 += returns[t, i] * exposures[i]
        out[t] = (a0 + a1) + (a2 + a3)


cdef bint _all_finite(const double[::1] flat) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(flat.shape[0]):
        if not isfinite(flat[i]):
            return False
    return True


def _validate(returns, exposures, confidence, name="returns"):
    r = np.ascontiguousarray(returns, dtype=np.float64)
    w = np.ascontiguousarray(exposures, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise InvalidInputError(f"{name} must be a 2-d array with at least 2 rows, got shape {r.shape}")
    if w.ndim != 1 or w.shape[0] != r.shape[1]:
        raise InvalidInputError(f"exposures must have length {r.shape[1]}, got shape {w.shape}")
    if confidence is not None and not (0.0 < confidence < 1.0):
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence!r}")
    _require_finite_exposures(w)
    return r, w


cdef _require_finite_exposures(w):
    cdef const double[::1] wv = w
    cdef bint ok
    with nogil:
        ok = _all_finite(wv)
    if not ok:
        raise InvalidInputError("exposures must be finite")


cdef object _pnl(r, w, str name):
    """P&L per scenario; a NaN or infinity anywhere in a row makes that row's sum
    non-finite (inf * 0 is NaN too), so checking the sums checks the matrix."""
    out = np.empty(r.shape[0], dtype=np.float64)
    cdef const double[:, ::1] rv = r
    cdef const double[::1] wv = w
    cdef double[::1] ov = out
    cdef bint ok
    with nogil:
        portfolio_pnl(rv, wv, ov)
        ok = _all_finite(ov)
    if not ok:
        raise InvalidInputError(f"{name} must be finite")
    return out


def scenario_pnl(returns, exposures):
    """Return the portfolio P&L of each scenario row: ``returns @ exposures``.

    Parameters
    ----------
    returns : (T, N) array of float
        Simple returns per scenario and instrument.
    exposures : (N,) array of float
        Money exposure per instrument (signed).

    Notes
    -----
    O(T·N), GIL released.
    """
    r, w = _validate(returns, exposures, None)
    return _pnl(r, w, "returns")


def historical_var(returns, exposures, double confidence=0.99):
    """Historical-simulation VaR and expected shortfall of a portfolio.

    With losses ``L = -(returns @ exposures)`` sorted from the largest and
    ``k = ceil(T * (1 - confidence))`` (at least 1), VaR is the k-th largest
    loss and ES the mean of the k largest losses.

    Returns
    -------
    VaRResult
        ``(var, es)`` in money, positive numbers being losses.
    """
    r, w = _validate(returns, exposures, confidence)
    cdef Py_ssize_t t, T = r.shape[0]
    cdef Py_ssize_t k = max(1, <Py_ssize_t>ceil(T * (1.0 - confidence) - 1e-9))
    cdef double[::1] pv = _pnl(r, w, "returns")
    cdef vector[double] losses
    cdef double tail = 0.0, var
    with nogil:
        losses.resize(T)
        for t in range(T):
            losses[t] = -pv[t]
        sort(losses.begin(), losses.end(), greater[double]())
        for t in range(k):
            tail += losses[t]
        var = losses[k - 1]
    return VaRResult(var, tail / k)


def parametric_var(returns, exposures, double confidence=0.99):
    """Variance-covariance (normal) VaR and expected shortfall.

    The portfolio P&L series ``returns @ exposures`` has mean ``mu`` and
    sample standard deviation ``sigma`` (ddof=1, which equals
    ``sqrt(w' S w)`` for the sample covariance ``S``). With ``z`` the normal
    quantile at ``confidence``: ``VaR = z*sigma - mu`` and
    ``ES = sigma * pdf(z) / (1 - confidence) - mu``.
    """
    r, w = _validate(returns, exposures, confidence)
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
    normal = NormalDist()
    z = normal.inv_cdf(confidence)
    return VaRResult(z * sigma - mean, sigma * normal.pdf(z) / (1.0 - confidence) - mean)


def stress(exposures, shocks):
    """P&L of the portfolio under each stress scenario (a row of returns per shock).

    Parameters
    ----------
    exposures : (N,) array of float
    shocks : (S, N) or (N,) array of float
        Simple return shocks per instrument.

    Returns
    -------
    numpy.ndarray of shape (S,)
    """
    s = np.ascontiguousarray(shocks, dtype=np.float64)
    if s.ndim == 1:
        s = s.reshape(1, -1)
    w = np.ascontiguousarray(exposures, dtype=np.float64)
    if s.ndim != 2 or w.ndim != 1 or s.shape[1] != w.shape[0]:
        raise InvalidInputError(f"shocks must be (S, {w.shape[0] if w.ndim == 1 else '?'}), got shape {s.shape}")
    _require_finite_exposures(w)
    return _pnl(s, w, "shocks")
