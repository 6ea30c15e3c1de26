cdef void portfolio_pnl(const double[:, ::1] returns, const double[::1] exposures,
                        double[::1] out) noexcept nogil
