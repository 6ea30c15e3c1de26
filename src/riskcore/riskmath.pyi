from typing import NamedTuple

import numpy as np
import numpy.typing as npt

class VaRResult(NamedTuple):
    var: float
    es: float

# returns: float64[T, N] (T >= 1 for scenario_pnl, T >= 2 for the VaR functions); exposures: float64[N]
def scenario_pnl(returns: npt.ArrayLike, exposures: npt.ArrayLike) -> npt.NDArray[np.float64]: ...
def historical_var(returns: npt.ArrayLike, exposures: npt.ArrayLike, confidence: float = ...) -> VaRResult: ...
def parametric_var(returns: npt.ArrayLike, exposures: npt.ArrayLike, confidence: float = ...) -> VaRResult: ...
# shocks: float64[S, N] or float64[N]
def stress(exposures: npt.ArrayLike, shocks: npt.ArrayLike) -> npt.NDArray[np.float64]: ...
