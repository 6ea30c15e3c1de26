"""riskcore: a compiled pre-trade risk and position kernel.

Import the engine, its configuration types and the risk math from here.
"""
from riskcore._types import OrderStatus, Reason, TradingState
from riskcore.clock import Clock, ManualClock, SystemClock
from riskcore.config import Instrument, Limits
from riskcore.decision import Decision
from riskcore.engine import (
    BUY,
    SELL,
    Aggregate,
    BreachEvent,
    OrderInfo,
    Position,
    RiskEngine,
)
from riskcore.errors import (
    CapacityError,
    InvalidConfigError,
    InvalidInputError,
    RiskError,
    StateError,
    UnknownAccountError,
    UnknownOrderError,
    UnknownSymbolError,
)
from riskcore.riskmath import VaRResult, historical_var, parametric_var, scenario_pnl, stress

__version__ = "0.1.0"

__all__ = [
    "BUY", "SELL", "Aggregate", "BreachEvent", "CapacityError", "Clock", "Decision", "Instrument", "InvalidConfigError",
    "InvalidInputError", "Limits", "ManualClock", "OrderInfo", "OrderStatus", "Position", "Reason",
    "RiskEngine", "RiskError", "StateError", "SystemClock", "TradingState", "UnknownAccountError",
    "UnknownOrderError", "UnknownSymbolError", "VaRResult", "historical_var", "parametric_var",
    "scenario_pnl", "stress",
]
