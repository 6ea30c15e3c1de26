"""The MarketData service on real ports: a replayed day against the book model, Subscribe and its
conflation, request checks, marks in a real risk engine, quotes on a real nats-server, MoldUDP64 with loss,
stale marks during a gap, and ``riskcore serve ingest`` as a child process."""
from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import signal
import socket
import subprocess
import sys

import grpc
import numpy as np
import pytest

from riskcore import Instrument
from riskcore.book import Mark
from riskcore_services.ingest import moldudp64
from riskcore_services.ingest.quotes import Quote, mark_price
from riskcore_services.ingest.simulate import MoldUDP64Server, SoupBinTCPServer, split_messages
from riskcore_services.ingest.sources import MoldUDP64Source, ReplaySource
from riskcore_services.proto import ingest_pb2, ingest_pb2_grpc
from riskcore_services.risk.client import RiskClient
from riskcore_services.risk.config import load_config as load_risk_config
from riskcore_services.testing import ChildProcess, Children, Metrics, http_get, wait_until

from .model import model_of
from .service_helpers import DEADLINE, IngestProcess, ingest_config, replay_config

ENDED, LIVE, GAP = ingest_pb2.FEED_STATE_ENDED, ingest_pb2.FEED_STATE_LIVE, ingest_pb2.FEED_STATE_GAP


@pytest.fixture(scope="module")
def model(small_day):
    return model_of(small_day)


@pytest.fixture
def replayed(ingest, small_day_file) -> IngestProcess:
    """A server that has replayed the small day to its end."""
    server = ingest(replay_config(small_day_file))
    server.wait_state(ENDED)
    return server


def model_quote(model, locate: int) -> tuple:
    bid, bid_size, ask, ask_size, last = model.top(locate)
    return (model.names[locate], locate, bid, bid_size, ask, ask_size, last, model.halted(locate))


def quote_tuple(quote: ingest_pb2.Quote) -> tuple:
    def opt(name):
        return getattr(quote, name) if quote.HasField(name) else None
    return (quote.symbol, quote.locate, opt("bid_price"), quote.bid_size, opt("ask_price"), quote.ask_size,
            opt("last_price"), quote.halted)


# ------------------------------------------------------------------ the replayed book

def test_replay_of_a_generated_day_serves_the_models_book(replayed, model):
    stub = replayed.stub
    for locate, symbol in sorted(model.names.items()):
        book = stub.GetBook(ingest_pb2.BookRequest(symbol=symbol, depth=1000), timeout=DEADLINE)
        assert [(l.price, l.shares, l.orders) for l in book.bids] == model.depth(locate, "B", 1000), symbol
        assert [(l.price, l.shares, l.orders) for l in book.asks] == model.depth(locate, "S", 1000), symbol
        assert quote_tuple(book.quote) == model_quote(model, locate)
        last = model.last.get(locate)
        assert (book.quote.last_size, book.quote.last_time_ns) == ((last[1], last[2]) if last else (0, 0))
        assert not book.quote.stale
        expected_state = {"T": "TRADING", "H": "HALTED", "P": "PAUSED", "Q": "QUOTATION_ONLY"}[
            model.state.get(locate, "T")]
        assert ingest_pb2.MarketState.Name(book.market_state) == f"MARKET_STATE_{expected_state}"

    top = stub.GetBook(ingest_pb2.BookRequest(symbol=model.names[1], depth=1), timeout=DEADLINE)
    assert len(top.bids) <= 1 and len(top.asks) <= 1


def test_status_after_the_replay_counts_what_the_model_counts(replayed, model, small_day):
    status = replayed.status()
    assert status.source == ingest_pb2.FEED_SOURCE_REPLAY
    assert (status.state, status.stale) == (ENDED, False)
    assert status.messages == model.counters["messages"] == 30_000
    assert dict(status.counters) == {k: v for k, v in model.counters.items() if k != "messages"}
    frames = split_messages(small_day)
    assert dict(status.messages_by_type) == {t: sum(1 for m in frames if chr(m[0]) == t)
                                             for t in {chr(m[0]) for m in frames}}
    assert status.symbols == len(model.names)
    assert status.orders == len(model.orders)
    (session,) = status.sessions
    assert session.expected_sequence == 30_001 and session.state == ENDED
    assert status.exchange_time_ns == max(int.from_bytes(m[5:11], "big") for m in frames)


def test_metrics_count_messages_by_type(replayed, small_day):
    status, text = replayed.http("/metrics")
    assert status == 200
    adds = sum(1 for m in split_messages(small_day) if m[:1] == b"A")
    assert f'riskcore_ingest_messages_total{{type="A"}} {float(adds)}' in text
    assert 'riskcore_ingest_feed_state{state="ended"} 1.0' in text
    assert "riskcore_ingest_stale 0.0" in text
    assert 'riskcore_grpc_requests_total{code="OK",method="GetStatus"}' in text


# ------------------------------------------------------------------ request checks

def test_get_book_of_a_symbol_the_directory_never_named_is_not_found(replayed):
    with pytest.raises(grpc.RpcError) as caught:
        replayed.stub.GetBook(ingest_pb2.BookRequest(symbol="NOSUCH", depth=5), timeout=DEADLINE)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "NOSUCH" in caught.value.details()


@pytest.mark.parametrize("request_, field", [
    (ingest_pb2.BookRequest(symbol="", depth=5), "symbol"),
    (ingest_pb2.BookRequest(symbol="TOOLONGSYM", depth=5), "symbol"),
    (ingest_pb2.BookRequest(symbol=" A", depth=5), "symbol"),
    (ingest_pb2.BookRequest(symbol="A\x00", depth=5), "symbol"),
    (ingest_pb2.BookRequest(symbol="AAPL", depth=0), "depth"),
    (ingest_pb2.BookRequest(symbol="AAPL", depth=1001), "depth"),
])
def test_a_bad_book_request_is_invalid_argument_naming_the_field(replayed, request_, field):
    with pytest.raises(grpc.RpcError) as caught:
        replayed.stub.GetBook(request_, timeout=DEADLINE)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"{field}:")


def test_a_subscription_naming_a_bad_symbol_is_invalid_argument(replayed, model):
    stream = replayed.stub.Subscribe(ingest_pb2.SubscribeRequest(symbols=[model.names[1], "way too long"]),
                                     timeout=DEADLINE)
    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("symbols[1]:")


# ------------------------------------------------------------------ Subscribe

def test_a_subscriber_gets_the_current_quote_of_each_symbol_it_follows(replayed, model):
    everything = replayed.stub.Subscribe(ingest_pb2.SubscribeRequest(), timeout=DEADLINE)
    got = {q.symbol: q for q in (next(everything) for _ in model.names)}
    assert sorted(got) == sorted(model.names.values())
    for locate, symbol in model.names.items():
        assert quote_tuple(got[symbol]) == model_quote(model, locate)
        assert not got[symbol].stale and got[symbol].conflated == 0
        assert got[symbol].HasField("mark_price") == (mark_price(_mark(model, locate)) is not None)
    everything.cancel()

    two = sorted(model.names.values())[:2]
    some = replayed.stub.Subscribe(ingest_pb2.SubscribeRequest(symbols=two), timeout=DEADLINE)
    assert sorted(next(some).symbol for _ in two) == two
    some.cancel()


def _mark(model, locate: int, **changes) -> Mark:
    bid, bid_size, ask, ask_size, last = model.top(locate)
    mark = Mark(model.names[locate], locate, bid, bid_size, ask, ask_size, last, 0, 0, model.halted(locate))
    return mark._replace(**changes)


def test_a_slow_subscriber_gets_the_latest_quote_of_each_symbol_and_the_count_of_those_it_missed(replayed, model):
    x, y = model.names[1], model.names[2]
    stream = replayed.stub.Subscribe(ingest_pb2.SubscribeRequest(symbols=[x, y]), timeout=DEADLINE)
    assert sorted(next(stream).symbol for _ in range(2)) == sorted([x, y])   # the current quotes: subscribed

    def burst() -> None:
        # One turn of the server's loop: the stream's writer cannot take anything in between, as when a
        # subscriber's connection is too slow for the book.
        hub = replayed.server.hub
        hub.publish([Quote(_mark(model, 1, bid_price=1_000_000 + i), 0, False) for i in range(1000)])
        hub.publish([Quote(_mark(model, 2), 0, False)])

    replayed.on_loop(burst)
    first, second = next(stream), next(stream)
    assert (first.symbol, first.bid_price, first.conflated) == (x, 1_000_999, 999)
    assert (second.symbol, second.conflated) == (y, 999)
    stream.cancel()
    subscribers = replayed.output("subscribers")
    assert subscribers.conflated == 999
    _, text = replayed.http("/metrics")
    assert 'riskcore_ingest_drops_total{reason="subscriber_conflated"} 999.0' in text


class GatedReplay(ReplaySource):
    """A replay that starts when the test says so (``gate`` is set on the server's loop)."""

    def __init__(self, config):
        super().__init__(config)
        self.gate = asyncio.Event()

    async def run(self, feed) -> None:
        await self.gate.wait()
        await super().run(feed)


def test_a_live_subscriber_ends_with_the_books_final_quote_of_every_symbol(ingest, small_day_file, model):
    config = replay_config(small_day_file, replay={"chunk_bytes": 200_000})
    source = GatedReplay(config.replay)
    server = ingest(config, source=source)
    stream = server.stub.Subscribe(ingest_pb2.SubscribeRequest(), timeout=30)
    wait_until(lambda: server.status().subscribers == 1, DEADLINE, "the subscription")
    server.on_loop(source.gate.set)
    # Subscribed before the first message: whatever it skips was replaced by a newer quote of the same symbol.
    latest: dict[str, ingest_pb2.Quote] = {}
    received = 0
    while len(latest) < len(model.names) or any(
            quote_tuple(latest[s]) != model_quote(model, loc) for loc, s in model.names.items()):
        quote = next(stream)
        assert not quote.stale
        received += 1
        latest[quote.symbol] = quote
    stream.cancel()
    assert received >= len(model.names)
    assert server.wait_state(ENDED).messages == 30_000


# ------------------------------------------------------------------ marks into a real risk engine

def risk_config_with(symbols: list[str]):
    config = load_risk_config(None)
    added = tuple(Instrument(symbol=s, tick_size=0.0001, reference_price=1.0) for s in symbols)
    return dataclasses.replace(config, instruments=config.instruments + added)


def test_marks_reach_a_real_risk_engine_and_unknown_symbols_are_skipped(ingest, serve, small_day_file, model):
    names = sorted(model.names.values())
    known = names[::2]
    risk = serve(risk_config_with(known))
    server = ingest(replay_config(small_day_file, risk_target=risk.target, marks_interval=0.01))
    server.wait_state(ENDED)
    out = server.wait_output_settled("risk")
    assert out.unknown_symbols == len(names) - len(known)
    assert out.failed == 0 and out.withheld_stale == 0

    by_name = {name: locate for locate, name in model.names.items()}
    for symbol in known:
        expected = mark_price(_mark(model, by_name[symbol]))
        assert expected is not None
        assert risk.run_on_loop(risk.server.engine.reference_price, symbol) == pytest.approx(expected, abs=1e-9)
    assert risk.run_on_loop(risk.server.engine.reference_price, "AAPL") == 190.0   # not in the feed


def test_an_unreachable_risk_engine_is_counted_and_the_feed_goes_on(ingest, small_day_file, model):
    client = RiskClient("127.0.0.1:1", deadline=0.2, retry_attempts=1, breaker_failures=2, breaker_reset=60)
    server = ingest(replay_config(small_day_file, risk_target="127.0.0.1:1", marks_interval=0.01),
                    risk_client=client)
    server.wait_state(ENDED)
    out = wait_until(lambda: (o := server.output("risk")).failed and o, DEADLINE, "a failed UpdatePrices")
    assert out.sent == 0 and out.pending == len(model.names)     # the newest mark of each, waiting
    assert "UpdatePrices" in out.last_error
    book = server.stub.GetBook(ingest_pb2.BookRequest(symbol=model.names[1], depth=1), timeout=DEADLINE)
    assert quote_tuple(book.quote) == model_quote(model, 1)


# ------------------------------------------------------------------ NATS JetStream

def test_quotes_fan_out_on_nats_to_two_subscribers(ingest, small_day_file, model, nats_url):  # noqa: F811
    server = ingest(replay_config(small_day_file, nats_servers=[nats_url], marks_interval=0.01))
    server.wait_state(ENDED)
    assert server.wait_output_settled("nats").failed == 0

    async def read_latest_per_symbol() -> list[dict[str, ingest_pb2.Quote]]:
        import nats
        from nats.js.api import ConsumerConfig, DeliverPolicy

        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            seen = []
            for _ in range(2):          # two independent consumers of md.>
                sub = await js.pull_subscribe("md.>", config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.LAST_PER_SUBJECT))
                got: dict[str, ingest_pb2.Quote] = {}
                while len(got) < len(model.names):
                    for message in await sub.fetch(len(model.names), timeout=DEADLINE):
                        quote = ingest_pb2.Quote.FromString(message.data)
                        assert message.subject == f"md.{quote.symbol}"
                        got[quote.symbol] = quote
                        await message.ack()
                seen.append(got)
            return seen
        finally:
            await nc.close()

    for got in asyncio.run(read_latest_per_symbol()):
        for locate, symbol in model.names.items():
            assert quote_tuple(got[symbol]) == model_quote(model, locate)


def test_nats_down_is_counted_and_the_feed_goes_on(ingest, small_day_file, model):
    server = ingest(replay_config(small_day_file, nats_servers=["nats://127.0.0.1:1"]))
    server.wait_state(ENDED)
    out = wait_until(lambda: (o := server.output("nats")).failed and o, DEADLINE, "a failed NATS connection")
    assert out.sent == 0 and "cannot connect" in out.last_error


# ------------------------------------------------------------------ MoldUDP64

def mold_config(base: pathlib.Path, **mold) -> dict:
    return dict(source="moldudp64", moldudp64={"group": "127.0.0.1", "port": 0, **mold})


def session_packets(messages: list[bytes], name: str) -> tuple[bytes, list[tuple[int, list[bytes]]]]:
    """A session's wire name and its packets as the simulator cuts them: (first sequence, messages)."""
    with MoldUDP64Server(messages, ("127.0.0.1", 9), session=name) as sender:
        return sender.session, list(sender.packets())


def soup_settings(soup_server: SoupBinTCPServer) -> dict:
    return dict(soup=f"127.0.0.1:{soup_server.address[1]}", soup_username="user", soup_password="secret")


def test_moldudp64_with_packet_loss_recovers_by_rerequest_to_the_models_book(ingest, tmp_path, small_day, model):
    sender = MoldUDP64Server(split_messages(small_day), ("127.0.0.1", 9), loss=0.05, seed=3)
    try:
        server = ingest(ingest_config(tmp_path, **mold_config(
            tmp_path, rerequest=f"127.0.0.1:{sender.request_address[1]}", retry_after=0.02)))
        assert isinstance(server.server.source, MoldUDP64Source)
        sender.target = server.run(server.server.source.bound())
        sender.start()
        sender.stream()
        status = server.wait_state(ENDED)
    finally:
        sender.stop()
    (session,) = status.sessions
    assert sender.stats.dropped > 0
    assert session.gaps > 0 and session.recovered_messages > 0
    assert session.expected_sequence == 30_001 and session.session == "SIMSESSION"
    assert_serves_the_models_book(server, model)


def test_a_gap_past_soup_after_is_filled_over_soupbintcp_and_live_packets_wait_for_it(ingest, tmp_path, small_day,
                                                                                       model):
    messages = split_messages(small_day)
    session, packets = session_packets(messages, "SOUPTEST")
    head, missing, tail = packets[:3], packets[3:-3], packets[-3:]
    with SoupBinTCPServer(messages) as soup_server:
        server = ingest(ingest_config(tmp_path, **mold_config(tmp_path, **soup_settings(soup_server), soup_after=100)))
        address = server.run(server.server.source.bound())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for seq, batch in head + tail:       # everything between is missing: far more than soup_after
                sock.sendto(moldudp64.encode_packet(session, seq, batch), address)
            sock.sendto(moldudp64.encode_end_of_session(session, len(messages) + 1), address)
            status = server.wait_state(ENDED)
    (feed,) = status.sessions
    assert feed.soup_recoveries == 1 and feed.gaps == 1
    assert feed.recovered_messages >= sum(len(batch) for _, batch in missing)
    assert soup_server.logins == [("user", "secret", "", head[-1][0] + len(head[-1][1]))]
    assert_serves_the_models_book(server, model)


def without(data: bytes, offsets, drop: range) -> tuple[bytes, np.ndarray]:
    """Encoded datagrams (``MoldUDP64Server.encoded``) with the datagrams at the indexes in ``drop`` removed."""
    kept = [data[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1) if i not in drop]
    return b"".join(kept), np.cumsum([0] + [len(d) for d in kept], dtype=np.int64)


def test_loss_and_a_gap_past_soup_after_end_with_the_book_of_a_loss_free_run(ingest, tmp_path, small_day, model):
    messages = split_messages(small_day)
    with SoupBinTCPServer(messages) as soup_server:
        sender = MoldUDP64Server(messages, ("127.0.0.1", 9), loss=0.03, seed=7)
        try:
            server = ingest(ingest_config(tmp_path, **mold_config(
                tmp_path, rerequest=f"127.0.0.1:{sender.request_address[1]}", retry_after=0.02,
                **soup_settings(soup_server), soup_after=2_000)))
            sender.target = server.run(server.server.source.bound())
            sender.start()
            data, offsets, dropped = sender.encoded()
            # Random loss (re-requested), and 150 packets in a row lost too: about 6,600 messages, past soup_after.
            data, offsets = without(data, offsets, range(300, 450))
            sender.send(data, offsets)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(moldudp64.encode_end_of_session(sender.session, len(messages) + 1), sender.target)
            status = server.wait_state(ENDED)
        finally:
            sender.stop()
    (feed,) = status.sessions
    assert dropped and feed.gaps >= 1 and feed.requests > 0
    assert feed.soup_recoveries >= 1 and feed.recovery_overflow == 0
    assert len(soup_server.logins) == feed.soup_recoveries
    metrics = Metrics(server.http("/metrics")[1])
    assert metrics.value("riskcore_ingest_recovery_seconds_count") >= 1
    assert_serves_the_models_book(server, model)


def test_live_data_past_the_queue_during_a_recovery_fails_closed_until_fetched_too(ingest, tmp_path, small_day,
                                                                                   model):
    messages = split_messages(small_day)
    session, packets = session_packets(messages, "QUEUETEST")
    head, tail = packets[:10], packets[400:]
    # The server says nothing for a while after each login: the recovery is still running when the tail arrives.
    with SoupBinTCPServer(messages, silent=0.3) as soup_server:
        server = ingest(ingest_config(tmp_path, **mold_config(
            tmp_path, **soup_settings(soup_server), soup_after=100, reorder_limit=500)))
        address = server.run(server.server.source.bound())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for seq, batch in head + tail[:1]:
                sock.sendto(moldudp64.encode_packet(session, seq, batch), address)
            server.wait_state(ingest_pb2.FEED_STATE_RECOVERING)
            for seq, batch in tail[1:]:            # far more than 500 messages: most find the queue full
                sock.sendto(moldudp64.encode_packet(session, seq, batch), address)
            failed = server.wait_state(ingest_pb2.FEED_STATE_FAILED)
            quote = server.stub.GetBook(ingest_pb2.BookRequest(symbol=model.names[1], depth=1), timeout=DEADLINE)
            sock.sendto(moldudp64.encode_end_of_session(session, len(messages) + 1), address)
            status = server.wait_state(ENDED, timeout=60.0)
    assert failed.stale and quote.quote.stale and failed.sessions[0].recovery_overflow > 0
    metrics = Metrics(server.http("/metrics")[1])
    assert metrics.value("riskcore_ingest_drops_total", reason="recovery_overflow") == \
        status.sessions[0].recovery_overflow
    assert not status.stale and status.sessions[0].soup_recoveries >= 2
    assert_serves_the_models_book(server, model)


def test_a_late_join_replays_from_sequence_one_over_soupbintcp(ingest, tmp_path, small_day, model):
    messages = split_messages(small_day)
    session, packets = session_packets(messages, "LATEJOIN")
    with SoupBinTCPServer(messages) as soup_server:
        server = ingest(ingest_config(tmp_path, **mold_config(tmp_path, **soup_settings(soup_server), soup_after=100)))
        address = server.run(server.server.source.bound())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for seq, batch in packets[len(packets) // 2:]:      # joined halfway through the session
                sock.sendto(moldudp64.encode_packet(session, seq, batch), address)
            sock.sendto(moldudp64.encode_end_of_session(session, len(messages) + 1), address)
            status = server.wait_state(ENDED)
    assert soup_server.logins[0] == ("user", "secret", "", 1)
    assert status.sessions[0].recovered_messages >= packets[len(packets) // 2][0] - 1
    assert_serves_the_models_book(server, model)


def test_without_soupbintcp_a_large_gap_is_recovered_from_the_recovery_file(ingest, tmp_path, small_day_file,
                                                                              small_day, model):
    messages = split_messages(small_day)
    session, packets = session_packets(messages, "FILETEST")
    server = ingest(ingest_config(tmp_path, **mold_config(tmp_path, recovery_file=str(small_day_file),
                                                          soup_after=100)))
    address = server.run(server.server.source.bound())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for seq, batch in packets[:5] + packets[300:]:       # about 13,000 messages missing
            sock.sendto(moldudp64.encode_packet(session, seq, batch), address)
        sock.sendto(moldudp64.encode_end_of_session(session, len(messages) + 1), address)
        status = server.wait_state(ENDED)
    (feed,) = status.sessions
    assert feed.file_recoveries >= 1 and feed.soup_recoveries == 0 and feed.gaps == 1
    assert_serves_the_models_book(server, model)


def assert_serves_the_models_book(server: IngestProcess, model) -> None:
    status = server.status()
    assert status.messages == 30_000 and dict(status.counters) == {
        k: v for k, v in model.counters.items() if k != "messages"}
    for locate, symbol in model.names.items():
        book = server.stub.GetBook(ingest_pb2.BookRequest(symbol=symbol, depth=1000), timeout=DEADLINE)
        assert [(l.price, l.shares, l.orders) for l in book.bids] == model.depth(locate, "B", 1000)
        assert [(l.price, l.shares, l.orders) for l in book.asks] == model.depth(locate, "S", 1000)
        assert quote_tuple(book.quote) == model_quote(model, locate) and not book.quote.stale


def test_marks_are_withheld_from_the_risk_engine_while_the_feed_has_a_gap(ingest, serve, tmp_path, small_day, model):
    messages = split_messages(small_day)
    names = sorted(model.names.values())
    by_name = {name: locate for locate, name in model.names.items()}
    risk = serve(risk_config_with(names))
    server = ingest(ingest_config(tmp_path, risk_target=risk.target, marks_interval=0.01,
                                  **mold_config(tmp_path, max_retries=10_000)))
    address = server.run(server.server.source.bound())
    session = moldudp64.session_bytes("GAPTEST")
    with MoldUDP64Server(messages, address, session="GAPTEST") as sender:
        packets = list(sender.packets())
    first, (missing_a, missing_b), rest = packets[:len(packets) // 2], packets[len(packets) // 2:][:2], \
        packets[len(packets) // 2 + 2:]

    def send(*batches) -> None:
        for seq, batch in batches:
            sock.sendto(moldudp64.encode_packet(session, seq, batch), address)

    def reference(symbol: str) -> float:
        return risk.run_on_loop(risk.server.engine.reference_price, symbol)

    def expected_next(sequence: int) -> None:
        wait_until(lambda: server.status().sessions[0].expected_sequence == sequence, DEADLINE,
                   f"message {sequence}")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # The first half, in sequence: LIVE, and marks reach the engine.
        send(*first)
        expected_next(missing_a[0])
        assert server.status().state == LIVE
        live = server.wait_output_settled("risk")
        before = {s: reference(s) for s in names}

        # Two packets missing: what follows waits in the reorder buffer; the feed is stale.
        send(*rest)
        assert server.wait_state(GAP).stale
        assert server.stub.GetBook(ingest_pb2.BookRequest(symbol=names[0], depth=1), timeout=DEADLINE).quote.stale

        # The first missing packet arrives: applied, but the second is still missing, so its quotes are
        # stale and its marks are withheld from the engine.
        send(missing_a)
        expected_next(missing_b[0])
        status = server.status()
        assert status.state == GAP and status.stale
        out = server.output("risk")
        assert out.withheld_stale > 0 and out.sent == live.sent
        assert {s: reference(s) for s in names} == before

        # The second arrives: the book is whole, and the engine gets every symbol's mark.
        send(missing_b)
        sock.sendto(moldudp64.encode_end_of_session(session, len(messages) + 1), address)
        status = server.wait_state(ENDED)
    finally:
        sock.close()
    assert not status.stale and status.messages == len(messages)
    server.wait_output_settled("risk")
    for symbol in names:
        expected = mark_price(_mark(model, by_name[symbol]))
        assert reference(symbol) == pytest.approx(expected, abs=1e-9)


# ------------------------------------------------------------------ riskcore serve ingest

def test_riskcore_serve_ingest_runs_on_the_sample_with_nothing_else(tmp_path):
    riskcore = pathlib.Path(sys.executable).parent / "riskcore"
    with Children(tmp_path) as children:
        child = children.add(ChildProcess("ingest", [sys.executable, str(riskcore), "serve", "ingest", "--port", "0",
                                                     "--http-port", "0"], tmp_path)).start()
        line = child.wait_log("market data ingest started")
        assert http_get(f"http://127.0.0.1:{line['http_port']}/health") == (200, "ok\n")
        assert http_get(f"http://127.0.0.1:{line['http_port']}/ready")[0] == 200
        assert (tmp_path / "riskcore-sample-day.itch").stat().st_size > 0
        with grpc.insecure_channel(f"127.0.0.1:{line['grpc_port']}") as channel:
            stub = ingest_pb2_grpc.MarketDataStub(channel)
            status = wait_until(lambda: (s := stub.GetStatus(ingest_pb2.StatusRequest(), timeout=DEADLINE)).symbols
                                == 20 and s, DEADLINE, "the stock directory")
        assert status.source == ingest_pb2.FEED_SOURCE_REPLAY and status.state == LIVE
        child.signal(signal.SIGTERM)
        assert child.wait() == 0, child.output()


def test_riskcore_serve_ingest_without_its_replay_file_exits_2_with_one_line(tmp_path):
    config = tmp_path / "ingest.toml"
    config.write_text('[ingest]\nreplay = { file = "missing.itch" }\n')
    run = subprocess.run([sys.executable, "-m", "riskcore_services.ingest", "--config", str(config),
                          "--port", "0", "--http-port", "0"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "missing.itch" in run.stderr and "Traceback" not in run.stderr


def test_riskcore_config_sample_ingest_prints_the_sample():
    run = subprocess.run([sys.executable, "-m", "riskcore_services.cli", "config", "sample", "ingest"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "[ingest.replay.generate]" in run.stdout


def test_every_enum_of_the_market_data_api_has_an_unspecified_zero():
    enums = list(ingest_pb2.DESCRIPTOR.enum_types_by_name.values())
    assert {e.name for e in enums} == {"FeedSource", "FeedState", "MarketState"}
    for enum in enums:
        assert enum.values_by_number[0].name.endswith("_UNSPECIFIED")
