"""The flat tables of ``tables.h``, through the engine that owns them.

The order index keeps ids that come in sequence in a direct array and the
rest in a hash map that hashes ids in groups of 16 consecutive values, so id
patterns that line up with either (strides of 16, ids far apart in the high
bits, a sequence growing over ids already in the map) are tested next to
sequential and random ones. The slot index keeps a direct array for nodes with slots in a good share of
their symbol ids and the hash map for the rest, switching as slots arrive.
Each lookup must find the same slot whichever way the node is indexed, so
these tests give every (account, symbol) pair its own position limit and read
it back after every change, against a plain dict.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcore import BUY, Instrument, Reason, RiskEngine, UnknownOrderError

N_SYMBOLS = 400
ACCOUNTS = ["a", "b", "c"]


def engine_with_symbols() -> RiskEngine:
    engine = RiskEngine()
    for k in range(N_SYMBOLS):
        engine.add_instrument(Instrument(f"S{k}", tick_size=0.01, reference_price=10.0))
    engine.add_account("desk")
    for account in ACCOUNTS:
        engine.add_account(account, parent="desk")
    return engine


# Runs that make a node dense (low ids in a row), then sparse (one far id),
# then dense again (many more ids), in any mix across the accounts.
pairs = st.lists(st.tuples(st.sampled_from(ACCOUNTS),
                           st.one_of(st.integers(0, 15), st.integers(0, N_SYMBOLS - 1))),
                 min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(pairs=pairs)
def test_every_slot_is_found_as_nodes_switch_between_direct_array_and_hash_map(pairs):
    engine = engine_with_symbols()
    expected: dict[tuple[str, int], int] = {}
    for limit, (account, symbol) in enumerate(pairs, start=1):
        engine.set_position_limit(account, f"S{symbol}", max_long=limit)
        expected[(account, symbol)] = limit
        for (a, s), value in expected.items():
            assert engine.position_limit(a, f"S{s}") == (value, None)
    for account in ACCOUNTS:
        for symbol in range(N_SYMBOLS):
            if (account, symbol) not in expected:
                assert engine.position_limit(account, f"S{symbol}") == (None, None)


def test_a_node_that_turns_sparse_and_dense_again_keeps_its_positions():
    engine = engine_with_symbols()
    # Dense from the start, sparse after symbol 399, dense again after 60 more.
    symbols = list(range(8)) + [N_SYMBOLS - 1] + list(range(8, 68))
    for symbol in symbols:
        engine.book_fill("a", f"S{symbol}", BUY, symbol + 1, 10.0)
    for symbol in symbols:
        assert engine.position("a", f"S{symbol}").quantity == symbol + 1
        assert engine.position("desk", f"S{symbol}").quantity == symbol + 1
    assert engine.position("a", "S300").quantity == 0
    # Batches find the same slots: every buy passes, and the what-if books nothing.
    account = engine.account_id("a")
    codes = engine.check_batch(np.full(len(symbols), account, np.int32), np.array(symbols, np.int32),
                               np.ones(len(symbols), np.int8), np.ones(len(symbols), np.int64),
                               np.full(len(symbols), 10.0))
    assert (codes == 0).all()
    restored = RiskEngine.from_state(engine.to_state())
    for symbol in symbols:
        assert restored.position("a", f"S{symbol}").quantity == symbol + 1


ID_PATTERNS = {
    "sequential": np.arange(1, 3_001),
    "stride 16": np.arange(1, 3_001) * 16,
    "stride 2**32": np.arange(1, 3_001) * 2**32,
    "negative": -np.arange(1, 3_001),
    "strategy prefix": (np.arange(3_000) % 7) * 2**40 + np.arange(3_000) // 7,
    # Far ids first go to the hash map; the sequence then grows over one of them.
    "sequence over a far id": np.concatenate([np.arange(1, 101), [400, 9_000], np.arange(101, 400),
                                              np.arange(401, 3_000)]),
    "sequence from the top down": np.arange(3_000, 0, -1),
    "random 64-bit": np.random.default_rng(5).choice(2**62, 3_000, replace=False) - 2**61,
}


@pytest.mark.parametrize("pattern", ID_PATTERNS)
def test_order_ids_of_any_pattern_are_found_and_guard_against_reuse(pattern):
    engine = engine_with_symbols()
    ids = ID_PATTERNS[pattern].astype(np.int64)
    n = ids.size
    quantities = 1 + np.arange(n, dtype=np.int64) % 97       # tells each order's row apart
    codes = engine.submit_batch(ids, np.full(n, engine.account_id("a"), np.int32), np.arange(n, dtype=np.int32) % 3,
                                np.ones(n, np.int8), quantities, np.full(n, 9.99))
    assert (codes == 0).all()
    # Every third order is cancelled; the day roll forgets them and moves the rest to new rows.
    for oid in ids[::3].tolist():
        engine.on_cancel(oid)
    engine.roll_day()
    restored = RiskEngine.from_state(engine.to_state())
    for k, (oid, quantity) in enumerate(zip(ids.tolist(), quantities.tolist())):
        for e in (engine, restored):
            if k % 3 == 0:
                with pytest.raises(UnknownOrderError):
                    e.order(oid)
            else:
                assert e.order(oid).remaining == quantity
    for e in (engine, restored):
        again = e.submit_batch(ids, np.full(n, e.account_id("b"), np.int32), np.zeros(n, np.int32),
                               np.ones(n, np.int8), np.ones(n, np.int64), np.full(n, 9.99))
        assert (again == Reason.DUPLICATE_ORDER_ID).all()
        with pytest.raises(UnknownOrderError):
            e.order(int(ids.max()) + 1)
        assert e.aggregate("a").open_orders == n - len(ids[::3])
