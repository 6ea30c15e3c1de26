"""Orders once booked: modifies and the batch calls (what-if and booking)."""
import numpy as np
import pytest

from riskcore import (
    BUY,
    SELL,
    Instrument,
    InvalidInputError,
    Limits,
    OrderStatus,
    Reason,
    UnknownOrderError,
)
from tests.riskcore.world import NAN, OK


# ------------------------------------------------------------- modify


def test_accepted_modify_sets_the_new_quantity_and_price_at_once(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 100.0)
    assert engine.modify(1, 50, 99.0).reason == OK
    info = engine.order(1)
    assert (info.remaining, info.status, info.market) == (50, OrderStatus.WORKING, False)
    assert info.price == pytest.approx(99.0)
    for node in ("alpha", "desk", "FIRM"):
        assert engine.aggregate(node).working_buy == 4_950.0   # 50 * 99.00
        assert engine.aggregate(node).open_orders == 1
    assert engine.verify()


def test_modify_without_a_price_keeps_the_limit_price(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    assert engine.modify(1, 80).reason == OK
    assert engine.order(1).price == pytest.approx(99.0)
    assert engine.aggregate("alpha").working_buy == 7_920.0


def test_modify_of_a_market_order_without_a_price_stays_market_and_is_repriced_at_the_reference(engine):
    engine.submit(1, "alpha", "ACME", BUY, 10, None)
    assert engine.aggregate("alpha").working_buy == 1_000.0
    engine.update_price("ACME", 101.0)
    assert engine.modify(1, 20).reason == OK
    assert engine.order(1).market is True
    assert engine.order(1).price == pytest.approx(101.0)
    assert engine.aggregate("alpha").working_buy == 2_020.0
    assert engine.verify()


def test_modify_of_a_market_order_with_a_price_makes_it_a_limit_order(engine):
    engine.submit(1, "alpha", "ACME", BUY, 10, None)
    assert engine.modify(1, 10, 99.0).reason == OK
    assert engine.order(1).market is False
    assert engine.aggregate("alpha").working_buy == 990.0


def test_modify_is_checked_on_the_change_in_notional(engine):
    engine.set_limits("alpha", Limits(max_gross_notional=10_000.0))
    engine.submit(1, "alpha", "ACME", BUY, 100, 100.0)       # 10_000: the limit is full
    assert engine.modify(1, 100).reason == OK               # dN = 0
    assert engine.modify(1, 90).reason == OK                # dN < 0; now 9_000
    assert engine.modify(1, 101).reason == Reason.MAX_GROSS_NOTIONAL  # 9_000 + 1_100
    assert engine.modify(1, 100).reason == OK               # 9_000 + 1_000


def test_modify_that_lowers_exposure_passes_under_limits_already_exceeded(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 100.0)
    engine.set_limits("alpha", Limits(max_gross_notional=5_000.0, max_net_notional=5_000.0))
    engine.set_position_limit("alpha", "ACME", max_long=50)
    assert engine.modify(1, 80).reason == OK                # dq < 0 and dN < 0
    assert engine.modify(1, 80, 99.0).reason == OK          # dq = 0 and dN < 0
    assert engine.modify(1, 81, 99.0).reason == Reason.POSITION_LIMIT  # 0 + 80 + 1 > 50


def test_rejected_modify_leaves_the_order_unchanged(engine):
    engine.submit(1, "alpha", "ACME", BUY, 100, 99.0)
    engine.set_limits("alpha", Limits(max_order_quantity=150))
    before = engine.to_state()
    assert engine.modify(1, 200, 98.0).reason == Reason.MAX_ORDER_QUANTITY
    assert engine.modify(1, 0).reason == Reason.INVALID_QUANTITY
    assert engine.modify(1, 100, 98.005).reason == Reason.TICK_SIZE
    assert engine.to_state() == before
    assert engine.order(1).remaining == 100


def test_modify_is_subject_to_the_collar(engine):
    engine.add_instrument(Instrument("COL", reference_price=100.0, collar_ticks_buy=20))
    engine.submit(1, "alpha", "COL", BUY, 10, 100.0)
    assert engine.modify(1, 10, 100.21).reason == Reason.PRICE_COLLAR
    assert engine.modify(1, 10, 100.20).reason == OK


# ------------------------------------------------------------ batches


def batch(engine, rows, order_ids=None):
    """Read-only arrays of the right dtypes for rows of (account, symbol, side, qty, price, market)."""
    def ident(value, lookup):
        return lookup(value) if isinstance(value, str) else value
    columns = [
        np.array([ident(r[0], engine.account_id) for r in rows], dtype=np.int32),
        np.array([ident(r[1], engine.symbol_id) for r in rows], dtype=np.int32),
        np.array([r[2] for r in rows], dtype=np.int8),
        np.array([r[3] for r in rows], dtype=np.int64),
        np.array([r[4] for r in rows], dtype=np.float64),
        np.array([r[5] for r in rows], dtype=np.uint8),
    ]
    if order_ids is not None:
        columns.insert(0, np.array(order_ids, dtype=np.int64))
    for column in columns:
        column.flags.writeable = False
    return columns


SEQUENCE = [
    ("alpha", "ACME", BUY, 100, 99.0, 0),     # OK
    ("alpha", "ACME", BUY, 600, 99.0, 0),     # MAX_ORDER_QUANTITY (500)
    ("alpha", "ACME", SELL, 10, 98.0, 0),     # SELF_MATCH with row 0, which the batch booked
    ("alpha", "ACME", BUY, 10, NAN, 1),       # OK: a market order ignores its price
    ("alpha", "ACME", BUY, 1, 97.0, 0),       # MAX_OPEN_ORDERS (2): rows 0 and 3 are working
    ("beta", "ACME", SELL, 10, 98.0, 0),      # OK: another account
    ("solo", "ACME", BUY, 3, 100.015, 0),     # TICK_SIZE
]
SEQUENCE_REASONS = [OK, Reason.MAX_ORDER_QUANTITY, Reason.SELF_MATCH, OK, Reason.MAX_OPEN_ORDERS, OK,
                    Reason.TICK_SIZE]


def test_check_batch_on_read_only_arrays_checks_rows_in_sequence(engine):
    engine.set_limits("alpha", Limits(max_open_orders=2, max_order_quantity=500))
    out = engine.check_batch(*batch(engine, SEQUENCE))
    assert out.dtype == np.uint8
    assert [Reason(code) for code in out] == SEQUENCE_REASONS


def test_check_batch_books_nothing(engine):
    engine.set_limits("alpha", Limits(max_open_orders=2, max_order_quantity=500))
    engine.check_batch(*batch(engine, SEQUENCE))
    assert engine.aggregate().open_orders == 0
    assert engine.aggregate().gross == 0.0
    assert len(engine.open_orders()) == 0
    assert engine.submit(1, "alpha", "ACME", BUY, 100, 99.0).reason == OK
    assert engine.submit(2, "alpha", "ACME", BUY, 100, 98.0).reason == OK


def test_check_batch_takes_back_rate_windows_and_duplicate_memory(dup_engine):
    dup_engine.set_limits("alpha", Limits(new_order_rate=(3, 1.0)))
    dup_engine.submit(1, "alpha", "ACME", BUY, 1, 90.0)
    before = dup_engine.to_state()
    out = dup_engine.check_batch(*batch(dup_engine, [
        ("alpha", "ACME", BUY, 5, 95.0, 0), ("alpha", "ACME", BUY, 5, 95.0, 0),
        ("alpha", "ACME", BUY, 6, 95.0, 0), ("alpha", "ACME", BUY, 7, 95.0, 0)]))
    assert [Reason(c) for c in out] == [OK, Reason.DUPLICATE_ORDER, OK, Reason.ORDER_RATE_LIMIT]
    assert dup_engine.to_state() == before
    assert dup_engine.submit(2, "alpha", "ACME", BUY, 5, 95.0).reason == OK


def test_check_batch_later_than_the_last_orders_gives_back_exactly_their_window(engine, clock):
    # Two orders at T0 and one at T0 + 0.4 s stay in the 1-second window; the batch at
    # T0 + 0.6 s books two more (5 in all, the limit), then takes them back.
    engine.set_limits("alpha", Limits(new_order_rate=(5, 1.0)))
    for oid in (1, 2):
        engine.submit(oid, "alpha", "ACME", BUY, 1, 90.0)
    clock.advance(0.4)
    engine.submit(3, "alpha", "ACME", BUY, 1, 90.0)
    clock.advance(0.2)
    before = engine.to_state()
    out = engine.check_batch(*batch(engine, [("alpha", "ACME", BUY, 1, 91.0 + k, 0) for k in range(3)]))
    assert [Reason(c) for c in out] == [OK, OK, Reason.ORDER_RATE_LIMIT]
    assert engine.to_state() == before
    assert engine.utilisation("alpha")["new_order_rate"][0] == 3
    # At T0 + 1.0 s the two first orders leave: order 3 stays, with room for 4 more.
    clock.advance(0.4)
    assert [engine.submit(oid, "alpha", "ACME", BUY, 1, 90.0).reason for oid in range(4, 9)] == [
        OK, OK, OK, OK, Reason.ORDER_RATE_LIMIT]


def test_check_batch_self_match_sees_the_batch_own_earlier_orders_and_then_forgets_them(engine):
    # The second row crosses the first (same account, same symbol); after the
    # batch neither is working, so the same sell alone passes, and a real
    # working sell still stops a crossing buy inside a later batch.
    out = engine.check_batch(*batch(engine, [("alpha", "ACME", BUY, 10, 100.0, 0),
                                             ("alpha", "ACME", SELL, 10, 100.0, 0)]))
    assert [Reason(c) for c in out] == [OK, Reason.SELF_MATCH]
    assert engine.check("alpha", "ACME", SELL, 10, 100.0).reason == OK
    assert engine.submit(1, "alpha", "ACME", SELL, 10, 101.0).reason == OK
    out = engine.check_batch(*batch(engine, [("alpha", "ACME", SELL, 10, 100.5, 0),
                                             ("alpha", "ACME", BUY, 10, 100.5, 0)]))
    assert [Reason(c) for c in out] == [OK, Reason.SELF_MATCH]
    assert engine.check("alpha", "ACME", BUY, 10, 100.5).reason == OK       # below the working 101.0
    assert engine.check("alpha", "ACME", BUY, 10, 101.0).reason == Reason.SELF_MATCH


def test_check_batch_leaves_a_fresh_account_free_to_receive_sub_accounts(engine):
    # "check_batch takes them back at the end": afterwards beta has no orders, so
    # "A node that has orders or positions cannot receive children" does not apply.
    out = engine.check_batch(*batch(engine, [("beta", "ACME", BUY, 10, 99.0, 0)]))
    assert [Reason(c) for c in out] == [OK]
    engine.add_account("beta-sub", parent="beta")
    assert engine.parent("beta-sub") == "beta"


def test_submit_batch_on_read_only_arrays_books_the_accepted_rows(engine):
    engine.set_limits("alpha", Limits(max_open_orders=2, max_order_quantity=500))
    ids = list(range(1, len(SEQUENCE) + 1))
    out = engine.submit_batch(*batch(engine, SEQUENCE, ids))
    assert [Reason(code) for code in out] == SEQUENCE_REASONS
    assert sorted(int(i) for i in engine.open_orders()["order_id"]) == [1, 4, 6]
    assert engine.order(4).market is True
    assert engine.aggregate("alpha").working_buy == 9_900.0 + 1_000.0   # 100 * 99 + 10 * ref 100
    assert engine.aggregate("beta").working_sell == 980.0
    with pytest.raises(UnknownOrderError):
        engine.order(2)
    assert engine.verify()


def test_submit_batch_rejects_ids_used_before_or_earlier_in_the_batch(engine):
    engine.submit(5, "alpha", "ACME", BUY, 1, 90.0)
    rows = [("alpha", "ACME", BUY, 1, 91.0, 0)] * 3
    out = engine.submit_batch(*batch(engine, rows, [5, 6, 6]))
    assert [Reason(c) for c in out] == [Reason.DUPLICATE_ORDER_ID, OK, Reason.DUPLICATE_ORDER_ID]


@pytest.mark.parametrize("submit", [False, True], ids=["check_batch", "submit_batch"])
def test_batch_rows_with_out_of_range_values_get_reasons_not_crashes(engine, submit):
    acme, alpha = engine.symbol_id("ACME"), engine.account_id("alpha")
    rows = [
        (99, acme, BUY, 1, 100.0, 0), (-1, acme, BUY, 1, 100.0, 0), (2**31 - 1, acme, BUY, 1, 100.0, 0),
        (alpha, 99, BUY, 1, 100.0, 0), (alpha, -1, BUY, 1, 100.0, 0), (alpha, -2**31, BUY, 1, 100.0, 0),
        (alpha, acme, 0, 1, 100.0, 0), (alpha, acme, 5, 1, 100.0, 0),
        (alpha, acme, BUY, 0, 100.0, 0), (alpha, acme, BUY, -5, 100.0, 0), (alpha, acme, BUY, 10**12 + 1, 100.0, 0),
        (alpha, acme, BUY, 1, NAN, 0), (alpha, acme, BUY, 1, -1.0, 0),
        (0, acme, BUY, 1, 100.0, 0),
    ]
    expected = [Reason.UNKNOWN_ACCOUNT] * 3 + [Reason.UNKNOWN_SYMBOL] * 3 + [Reason.INVALID_SIDE] * 2 + \
        [Reason.INVALID_QUANTITY] * 3 + [Reason.INVALID_PRICE] * 2 + [Reason.ACCOUNT_NOT_TRADABLE]
    if submit:
        out = engine.submit_batch(*batch(engine, rows, list(range(100, 100 + len(rows)))))
    else:
        out = engine.check_batch(*batch(engine, rows))
    assert [Reason(c) for c in out] == expected
    assert engine.aggregate().open_orders == 0


def _bad_shapes(engine):
    good = batch(engine, [("alpha", "ACME", BUY, 1, 99.0, 0)] * 3)
    two_d = good.copy()
    two_d[0] = np.zeros((3, 1), dtype=np.int32)
    long_prices = good.copy()
    long_prices[4] = np.full(4, 99.0)
    short_market = good.copy()
    short_market[5] = np.zeros(2, dtype=np.uint8)
    short_sides = good.copy()
    short_sides[2] = np.ones(2, dtype=np.int8)
    return {"2-d accounts": two_d, "long prices": long_prices, "short market": short_market,
            "short sides": short_sides}


@pytest.mark.parametrize("case", ["2-d accounts", "long prices", "short market", "short sides"])
def test_check_and_submit_batch_with_mismatched_shapes_raise_invalid_input_error(engine, case):
    columns = _bad_shapes(engine)[case]
    before = engine.to_state()
    with pytest.raises(InvalidInputError):
        engine.check_batch(*columns)
    with pytest.raises(InvalidInputError):
        engine.submit_batch(np.arange(1, 4, dtype=np.int64), *columns)
    assert engine.to_state() == before


def test_submit_batch_with_the_wrong_number_of_order_ids_raises_invalid_input_error(engine):
    columns = batch(engine, [("alpha", "ACME", BUY, 1, 99.0, 0)] * 3)
    before = engine.to_state()
    for ids in (np.arange(2, dtype=np.int64), np.arange(4, dtype=np.int64), np.zeros((3, 1), dtype=np.int64)):
        with pytest.raises(InvalidInputError):
            engine.submit_batch(ids, *columns)
    assert engine.to_state() == before


def test_empty_batch_returns_an_empty_result(engine):
    out = engine.check_batch(*batch(engine, []))
    assert out.shape == (0,) and out.dtype == np.uint8
