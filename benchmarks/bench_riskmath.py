"""pytest-benchmark cases of the portfolio risk math (VaR and expected shortfall)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.workload import returns_matrix
from riskcore import historical_var, parametric_var, scenario_pnl

# (days of history, instruments)
SHAPES = {"250x500": (250, 500), "1000x2000": (1_000, 2_000)}


@pytest.fixture(params=list(SHAPES), scope="module")
def history(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    return returns_matrix(*SHAPES[request.param])


@pytest.mark.benchmark(group="historical VaR 99%")
def test_historical_var_of_a_portfolio(benchmark, history) -> None:
    returns, exposures = history
    result = benchmark(historical_var, returns, exposures, 0.99)
    assert result.es >= result.var > 0


@pytest.mark.benchmark(group="parametric VaR 99%")
def test_parametric_var_of_a_portfolio(benchmark, history) -> None:
    returns, exposures = history
    result = benchmark(parametric_var, returns, exposures, 0.99)
    assert result.es >= result.var > 0


@pytest.mark.benchmark(group="portfolio P&L of every scenario")
def test_scenario_pnl_of_a_portfolio(benchmark, history) -> None:
    # The step both VaR methods start with, next to numpy's BLAS product below.
    returns, exposures = history
    pnl = benchmark(scenario_pnl, returns, exposures)
    assert np.allclose(pnl, returns @ exposures)


@pytest.mark.benchmark(group="portfolio P&L of every scenario")
def test_numpy_product_of_the_same_scenarios_for_comparison(benchmark, history) -> None:
    returns, exposures = history
    benchmark(np.matmul, returns, exposures)
