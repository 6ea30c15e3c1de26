"""riskcore: a compiled pre-trade risk and position kernel.

Import the engine, its configuration types, the risk math and the ITCH 5.0
market-data book from here.
"""
from riskcore._types import OrderStatus, Reason, TradingState
from riskcore.book import Book, format_price
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
    MalformedMessageError,
    RiskError,
    StateError,
    UnknownAccountError,
    UnknownOrderError,
    UnknownSymbolError,
)
from riskcore.riskmath import VaRResult, historical_var, parametric_var, scenario_pnl, stress

__version__ = "0.1.0"

__all__ = [
    "BUY", "SELL", "Aggregate", "Book", "BreachEvent", "CapacityError", "Clock", "Decision", "Instrument",
    "InvalidConfigError", "InvalidInputError", "Limits", "MalformedMessageError", "ManualClock", "OrderInfo",
    "OrderStatus", "Position", "Reason", "RiskEngine", "RiskError", "StateError", "SystemClock", "TradingState",
    "UnknownAccountError", "UnknownOrderError", "UnknownSymbolError", "VaRResult", "format_price",
    "historical_var", "parametric_var", "scenario_pnl", "stress",
]
