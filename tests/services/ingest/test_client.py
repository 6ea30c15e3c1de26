"""QuoteFeed against a real ingestion service that replayed a generated day."""
from __future__ import annotations

import pytest

from riskcore_services.ingest.client import MarketDataClient, QuoteFeed
from riskcore_services.proto import ingest_pb2
from riskcore_services.testing import wait_until

from .model import model_of
from .service_helpers import replay_config

ENDED = ingest_pb2.FEED_STATE_ENDED


def test_a_feed_holds_the_latest_quote_of_its_symbols_and_drops_them_all_when_the_stream_breaks(
        ingest, small_day, small_day_file):
    model = model_of(small_day)
    server = ingest(replay_config(small_day_file))
    server.wait_state(ENDED)
    x, y = model.names[1], model.names[2]
    feed = QuoteFeed(MarketDataClient(server.target), [x, y], retry_initial=0.05)
    try:
        wait_until(lambda: feed.latest(x) and feed.latest(y), 20.0, "both quotes")
        assert feed.connected and feed.wait(0.0)
        assert sorted(q.symbol for q in feed.drain()) == sorted([x, y])
        assert not feed.wait(0.0) and feed.drain() == []
        bid, _, ask, _, _ = model.top(1)
        latest = feed.latest(x)
        assert (latest.bid_price if latest.HasField("bid_price") else None,
                latest.ask_price if latest.HasField("ask_price") else None) == (bid, ask)
        assert feed.latest(model.names[3]) is None          # not followed
        server.close()
        wait_until(lambda: not feed.connected, 20.0, "the feed to see the stream break")
        assert feed.latest(x) is None and feed.drain() == [] and feed.last_error
    finally:
        feed.close()


def test_a_feed_of_no_symbol_or_a_malformed_one_is_refused_naming_it():
    with pytest.raises(ValueError, match="symbols: at least one"):
        QuoteFeed(MarketDataClient("127.0.0.1:1"), [])
    with pytest.raises(ValueError, match=r"symbols\[1\]"):
        QuoteFeed(MarketDataClient("127.0.0.1:1"), ["AAPL", "way too long"])
