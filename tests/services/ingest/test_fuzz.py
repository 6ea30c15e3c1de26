"""Fuzzing the MarketData service's gRPC surface: a real ingest server that has replayed a generated day.

``GetBook`` and ``GetStatus`` get generated requests (the day's tickers among
the strings), mutated realistic ones, and random or damaged bytes;
``Subscribe`` gets generated and random request bytes. Every unary answer is
OK or a defined refusal, never UNKNOWN or INTERNAL; a subscription opens
exactly when its request parses and names valid symbols; the book is the same
afterwards. CI runs the examples ``derandomize``d; RISKCORE_EXAMPLE_SCALE=10
draws new ones.
"""
from __future__ import annotations

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fuzzing import (
    FUZZ, answer_code, any_message, mutated, raw_payloads, scaled, strings_with, subscription_outcome,
)
from riskcore_services.proto import ingest_pb2 as I

from .model import model_of
from .service_helpers import DEADLINE, IngestProcess, replay_config

SERVICE = I.DESCRIPTOR.services_by_name["MarketData"]
ENDED = I.FEED_STATE_ENDED


@pytest.fixture(scope="module")
def tickers(small_day) -> list[str]:
    return sorted(model_of(small_day).names.values())


@pytest.fixture(scope="module")
def replayed(small_day_file):
    server = IngestProcess(replay_config(small_day_file)).start()
    server.wait_state(ENDED)
    yield server
    server.close()


@pytest.fixture(scope="module")
def channel(replayed):
    with grpc.insecure_channel(replayed.target) as opened:
        yield opened


def requests(method: str, tickers: list[str]) -> st.SearchStrategy:
    strings = strings_with(tickers)
    descriptor = SERVICE.methods_by_name[method].input_type
    realistic = (st.builds(I.BookRequest, symbol=st.sampled_from(tickers), depth=st.integers(1, 20))
                 if method == "GetBook" else st.just(I.StatusRequest()))
    return st.one_of(realistic, mutated(realistic, strings), any_message(descriptor, strings))


def book(server: IngestProcess, tickers: list[str]) -> list:
    return [server.stub.GetBook(I.BookRequest(symbol=t, depth=1000), timeout=DEADLINE) for t in tickers[:5]]


@pytest.mark.parametrize("method", ["GetBook", "GetStatus"])
@FUZZ
@given(data=st.data())
def test_every_unary_rpc_answers_generated_and_damaged_requests_with_a_defined_status(channel, tickers, method,
                                                                                       data):
    request = data.draw(requests(method, tickers), label="request")
    payload = data.draw(st.one_of(st.just(request.SerializeToString()), raw_payloads(st.just(request))),
                        label="payload")
    event(answer_code(channel, f"/{SERVICE.full_name}/{method}", payload, DEADLINE).name)


@settings(FUZZ, max_examples=scaled(60))
@given(data=st.data())
def test_subscribe_opens_exactly_on_a_valid_request_and_refuses_the_rest(channel, tickers, data):
    strings = strings_with(tickers)
    realistic = st.builds(I.SubscribeRequest, symbols=st.lists(st.sampled_from(tickers), max_size=4))
    payload = data.draw(st.one_of(realistic.map(lambda r: r.SerializeToString()),
                                  any_message(I.SubscribeRequest.DESCRIPTOR, strings).map(
                                      lambda r: r.SerializeToString()),
                                  raw_payloads(realistic)), label="payload")
    try:
        symbols = list(I.SubscribeRequest.FromString(payload).symbols)
        valid = all(1 <= len(s) <= 8 and s.isascii() and s.isprintable() for s in symbols) and len(symbols) <= 65_535
    except DecodeError:
        valid = False
    call = channel.unary_stream(f"/{SERVICE.full_name}/Subscribe")(payload, timeout=DEADLINE)
    event(subscription_outcome(call, valid, f"Subscribe {payload[:200]!r}"))


def test_the_book_and_the_server_are_as_they_were_after_the_fuzzing(replayed, tickers, small_day_file):
    fresh = IngestProcess(replay_config(small_day_file)).start()
    try:
        fresh.wait_state(ENDED)
        assert book(replayed, tickers) == book(fresh, tickers)
    finally:
        fresh.close()
    assert replayed.http("/ready")[0] == 200
