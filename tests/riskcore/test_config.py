"""Instrument and Limits: frozen, slotted, validated on construction."""
import dataclasses
import math

import pytest

from riskcore import Instrument, InvalidConfigError, InvalidInputError, Limits, ManualClock, RiskEngine, RiskError

NAN = float("nan")
INF = float("inf")


# ------------------------------------------------------------- Instrument


def test_instrument_defaults_describe_a_cent_ticked_share():
    instrument = Instrument("ACME")
    assert (instrument.tick_size, instrument.lot_size, instrument.multiplier) == (0.01, 1, 1.0)
    assert (instrument.tradable, instrument.require_reference, instrument.reference_price) == (True, True, None)


@pytest.mark.parametrize("tick_size, multiplier, micros", [
    (0.01, 1.0, 10_000), (0.25, 50.0, 12_500_000), (0.0001, 1.0, 100), (0.000001, 1.0, 1),
    (0.5, 0.5, 250_000), (1.0, 1000.0, 1_000_000_000), (0.01, 0.5, 5_000)])
def test_tick_value_is_the_money_in_micro_units_of_one_tick_of_one_unit(tick_size, multiplier, micros):
    assert Instrument("X", tick_size=tick_size, multiplier=multiplier).tick_value == micros


@pytest.mark.parametrize("kwargs", [
    dict(symbol=""), dict(symbol=None), dict(symbol=5),
    dict(tick_size=NAN), dict(tick_size=INF), dict(tick_size=0.0), dict(tick_size=-0.01), dict(tick_size="0.01"),
    dict(tick_size=True),
    dict(lot_size=0), dict(lot_size=-1), dict(lot_size=1.5), dict(lot_size=True), dict(lot_size=100.0),
    dict(multiplier=0.0), dict(multiplier=NAN), dict(multiplier=-1.0),
    dict(collar_bps_buy=-1), dict(collar_bps_sell=1.5), dict(collar_ticks_buy=True), dict(collar_ticks_sell=-5),
    dict(reference_price=0.0), dict(reference_price=NAN), dict(reference_price=-1.0),
    dict(min_price=NAN), dict(max_price=-1.0), dict(min_price=110.0, max_price=90.0),
    dict(max_reference_age=0.0), dict(max_reference_age=-1.0), dict(max_reference_age=NAN),
], ids=lambda kwargs: ",".join(f"{k}={v!r}" for k, v in kwargs.items()))
def test_instrument_with_an_invalid_field_raises_invalid_config_error(kwargs):
    fields = {"symbol": "X", **kwargs}
    with pytest.raises(InvalidConfigError):
        Instrument(**fields)


@pytest.mark.parametrize("tick_size, multiplier", [
    (1e-7, 1.0),            # 0.1 micro-units
    (0.0000015, 1.0),       # 1.5
    (0.01, 0.00005),        # 0.5
    (0.25, 0.000002),       # 0.5
    (1.0, 100.0000005),     # 100_000_000.5
    (0.01, 1.0000001),      # 10_000.001
])
def test_tick_size_times_multiplier_that_is_not_a_whole_number_of_micro_units_raises(tick_size, multiplier):
    with pytest.raises(InvalidConfigError):
        Instrument("X", tick_size=tick_size, multiplier=multiplier)


def test_invalid_config_error_is_an_invalid_input_error_a_value_error_and_a_risk_error():
    with pytest.raises(InvalidConfigError) as info:
        Instrument("X", tick_size=NAN)
    assert isinstance(info.value, InvalidInputError)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RiskError)


def test_config_error_message_names_the_field_and_the_bad_value():
    with pytest.raises(InvalidConfigError, match="tick_size.*nan"):
        Instrument("X", tick_size=NAN)
    with pytest.raises(InvalidConfigError, match="lot_size.*0"):
        Instrument("X", lot_size=0)


def test_instrument_is_frozen_and_slotted():
    instrument = Instrument("X")
    with pytest.raises(dataclasses.FrozenInstanceError):
        instrument.tick_size = 0.05
    assert not hasattr(instrument, "__dict__")


def test_instrument_definition_round_trips_through_the_engine():
    engine = RiskEngine(clock=ManualClock(0))
    es = Instrument("ES", tick_size=0.25, lot_size=1, multiplier=50.0, reference_price=5000.0,
                    collar_bps_buy=100, collar_ticks_sell=8, min_price=4000.0, max_price=6000.0,
                    max_reference_age=2.5, require_reference=False)
    engine.add_instrument(es)
    assert engine.instrument("ES") == es


# ----------------------------------------------------------------- Limits


def test_limits_default_to_unlimited():
    assert all(value is None for value in Limits().as_dict().values())


@pytest.mark.parametrize("kwargs", [
    dict(max_order_quantity=-1), dict(max_order_quantity=1.5), dict(max_order_quantity=True),
    dict(max_open_orders=-1), dict(max_open_orders=2.0),
    dict(max_order_notional=NAN), dict(max_gross_notional=INF), dict(max_net_notional=-1.0),
    dict(max_daily_loss=NAN), dict(max_daily_loss="100"),
    dict(new_order_rate=(1,)), dict(new_order_rate=[1, 1.0]), dict(new_order_rate=(1, 1.0, 1)),
    dict(modify_rate=(-1, 1.0)), dict(cancel_rate=(1.5, 1.0)), dict(fill_throttle=(True, 1.0)),
    dict(new_order_rate=(1, 0.0)), dict(modify_rate=(1, -1.0)), dict(cancel_rate=(1, NAN)),
    dict(fill_throttle=(1, INF)),
], ids=lambda kwargs: ",".join(f"{k}={v!r}" for k, v in kwargs.items()))
def test_limits_with_an_invalid_field_raise_invalid_config_error(kwargs):
    with pytest.raises(InvalidConfigError):
        Limits(**kwargs)


def test_zero_limits_and_zero_counts_are_valid():
    limits = Limits(max_order_quantity=0, max_open_orders=0, max_order_notional=0.0, max_gross_notional=0,
                    max_daily_loss=0.0, new_order_rate=(0, 1.0), fill_throttle=(0, 0.5))
    assert limits.max_order_quantity == 0 and limits.new_order_rate == (0, 1.0)


def test_limits_as_dict_round_trips():
    limits = Limits(max_order_quantity=500, max_gross_notional=2e6, new_order_rate=(10, 1.0), max_daily_loss=5e4)
    assert Limits(**limits.as_dict()) == limits
    assert set(limits.as_dict()) == {
        "max_order_quantity", "max_order_notional", "max_gross_notional", "max_net_notional", "max_open_orders",
        "max_daily_loss", "new_order_rate", "modify_rate", "cancel_rate", "fill_throttle"}


def test_limits_are_frozen_and_slotted():
    limits = Limits()
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_open_orders = 3
    assert not hasattr(limits, "__dict__")


def test_limits_round_trip_through_the_engine():
    engine = RiskEngine(clock=ManualClock(0))
    engine.add_account("a")
    limits = Limits(max_order_quantity=500, max_order_notional=1e5, max_gross_notional=2_000_000.5,
                    max_net_notional=1e6, max_open_orders=7, max_daily_loss=12_345.67, new_order_rate=(10, 1.0),
                    modify_rate=(5, 0.25), cancel_rate=(3, 2.0), fill_throttle=(100, 60.0))
    engine.set_limits("a", limits)
    assert engine.limits("a") == limits
    assert engine.limits("FIRM") == Limits()
    assert math.isclose(engine.utilisation("a")["max_daily_loss"][1], 12_345.67)
