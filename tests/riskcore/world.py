"""The standard world of the engine's unit tests, and the helpers they share.

Every expected number is worked out by hand from the README (the arithmetic is
in the comments), never read back from the engine. The standard world is:

    FIRM ─┬─ desk ─┬─ alpha
          │        └─ beta
          └─ solo

and ACME: tick 0.01, lot 1, multiplier 1 (tick value 10_000 micro-units),
reference 100.00 (10_000 ticks), so ``q`` shares at price ``P`` have notional
``q * P`` in currency. Every engine runs on a ManualClock.
"""
from riskcore import BUY, SELL, Instrument, Reason, RiskEngine

T0 = 1_700_000_000 * 10**9  # a realistic epoch: no time in these tests is accidentally zero
SECOND = 10**9
NAN = float("nan")
INF = float("inf")


def build(clock, duplicate_window=0.0):
    engine = RiskEngine(clock=clock, duplicate_window=duplicate_window)
    engine.add_instrument(Instrument("ACME", tick_size=0.01, reference_price=100.0))
    engine.add_account("desk")
    engine.add_account("alpha", parent="desk")
    engine.add_account("beta", parent="desk")
    engine.add_account("solo")
    return engine


def buy(engine, quantity, price=100.0, account="alpha", symbol="ACME"):
    return engine.check(account, symbol, BUY, quantity, price).reason


def sell(engine, quantity, price=100.0, account="alpha", symbol="ACME"):
    return engine.check(account, symbol, SELL, quantity, price).reason


OK = Reason.OK


def fill(engine, side, quantity, price, account="alpha", symbol="ACME"):
    engine.book_fill(account, symbol, side, quantity, price)
