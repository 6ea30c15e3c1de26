# The nogil steps after the matrix product (the product itself is numpy's
# BLAS gemv, called from the def functions with the GIL held).

# Index of the first NaN or infinity in values, or -1.
cdef Py_ssize_t first_non_finite(const double[::1] values) noexcept nogil
cdef bint any_zero(const double[::1] values) noexcept nogil
# Negates pnl in place into losses and selects the k largest into pnl[:k]
# (pnl[k - 1] is the k-th largest); returns their sum. Needs 1 <= k <= len(pnl).
cdef double largest_losses_sum(double[::1] pnl, Py_ssize_t k) noexcept nogil
