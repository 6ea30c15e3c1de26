"""The SDK's quotes: a strategy process subscribed, through its QuoteFeed, to a real ingestion service
that replayed a generated ITCH day."""
from __future__ import annotations

import dataclasses
import json

from riskcore_services.common.auth import TokenEntry, token_digest
from riskcore_services.control.lifecycle import State
from riskcore_services.ingest.sources import FeedState
from riskcore_services.ingest.simulate import SimulationConfig, generate
from riskcore_services.proto import ingest_pb2
from riskcore_services.testing import wait_until
from tests.services.ingest.model import model_of
from tests.services.ingest.service_helpers import replay_config

from .conftest import reach, spec, until

DAY = SimulationConfig(messages=5_000, symbols=5, seed=7)


def replayed_day(ingest, directory):
    day = b"".join(generate(DAY))
    path = directory / "day.itch"
    path.write_bytes(day)
    server = ingest(replay_config(path))
    server.wait_state(ingest_pb2.FEED_STATE_ENDED)
    return server, model_of(day)


def test_a_strategy_gets_the_quotes_of_its_symbols_through_on_quote(harness, ingest, tmp_path):
    server, model = replayed_day(ingest, tmp_path)
    followed = {model.names[1]: 1, model.names[3]: 3}
    out = tmp_path / "quotes.json"

    async def scenario(h):
        s = h.supervisor
        await s.register(spec("quoted", "RecordsQuotes", symbols=sorted(followed), out=str(out)))
        await s.start("quoted")
        await reach(s, "quoted", State.RUNNING)
        await until(lambda: out.exists() and len(json.loads(out.read_text())) == len(followed), what="quotes")
        expected = {}
        for symbol, locate in followed.items():
            bid, _, ask, _, _ = model.top(locate)
            expected[symbol] = [bid, ask]
        assert json.loads(out.read_text()) == expected
        await s.stop("quoted")
    harness(scenario, risk=False, market_data_target=server.target)


def test_the_quote_feed_sends_the_accounts_token_to_an_ingestion_service_with_auth(harness, ingest, tmp_path):
    day = b"".join(generate(DAY))
    path = tmp_path / "day.itch"
    path.write_bytes(day)
    token = "momentum-secret"
    config = dataclasses.replace(replay_config(path), tokens=(
        TokenEntry("momentum", token_digest(token), "trader", ("momentum",)),))
    server = ingest(config)
    wait_until(lambda: server.on_loop(lambda: server.server.state) is FeedState.ENDED, 20, "the replay to end")
    model = model_of(day)
    out = tmp_path / "quotes.json"

    async def scenario(h):
        s = h.supervisor
        await s.register(spec("quoted", "RecordsQuotes", symbols=[model.names[1]], out=str(out)))
        await s.start("quoted")
        await reach(s, "quoted", State.RUNNING)
        await until(lambda: out.exists() and len(json.loads(out.read_text())) == 1, what="quotes")
        await s.stop("quoted")
    harness(scenario, risk=False, market_data_target=server.target, risk_tokens={"momentum": token})


def test_a_strategy_with_symbols_and_no_market_data_service_fails_at_start_saying_so(harness, capfd):
    async def scenario(h):
        s = h.supervisor
        await s.register(spec("blind", "RecordsQuotes", symbols=["AAPL"], out="unused"))
        await s.start("blind")
        await until(lambda: "FAILED" in h.states("blind"), what="FAILED")
        assert s.info("blind")["last_error"] == "exited with code 1"
        await s.stop("blind")
    harness(scenario, risk=False)
    # The child's stderr is this process's (captured at the file descriptor).
    assert "ValueError: config symbols: the control plane names no market data service" in capfd.readouterr().err
