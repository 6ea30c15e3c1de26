"""What every gRPC fuzz suite draws from: messages built from their descriptors, raw bytes, the settings.

``any_message(descriptor, strings)`` sets each field of a request or leaves it
unset: extreme and odd numbers, NaN and infinities, enum numbers outside the
enum, long and odd strings (plus the suite's own known names, so some calls
reach deep paths), nested messages and maps. ``raw_payloads`` flips, cuts and
pads a serialized request, or draws random bytes. A service answers all of
it with a defined status (:data:`DEFINED`), never UNKNOWN or INTERNAL.
"""
from __future__ import annotations

import functools
import math
import os
import struct
import threading

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

DEFINED = frozenset({grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                     grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION})


def scaled(examples: int) -> int:
    return int(examples * float(os.environ.get("RISKCORE_EXAMPLE_SCALE", "1")))


FUZZ = settings(
    deadline=None, max_examples=scaled(200), database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    # The same examples on every run, so a CI failure is never intermittent.
    derandomize="RISKCORE_EXAMPLE_SCALE" not in os.environ,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    + ([Phase.shrink] if os.environ.get("RISKCORE_SHRINK") == "1" else []))

ODD_STRINGS = ["", " ", "\x00", "nobody", "ZZZZ", "AAPL ", "aapl", "\u00e9" * 64, "\u00e9" * 65, "x" * 128, "x" * 129,
               "\U0001f4a5" * 32, "\U0001f4a5" * 33, "../../etc/passwd", "a:b", "{x}"]
# Long strings are built from their length, so hypothesis never prints them whole.
long_strings = st.sampled_from([129, 4_096, 100_000]).map(lambda n: "y" * n)
INT64_EDGES = [0, 1, -1, 7, 100, 10**12, 10**12 + 1, 2**31, 2**53 + 1, 2**62, 2**63 - 1, -2**63]
int64s = st.one_of(st.sampled_from(INT64_EDGES), st.integers(-2**63, 2**63 - 1), st.integers(-5, 2_000))
FLOAT_EDGES = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1e-300, 0.01, 1.0, 189.99, 190.0, 209.01, 420.0,
               6000.0, 1.08, 1e9, 1e15, 1e17, 1e300, 1.7976931348623157e308, -1.0]
doubles = st.one_of(st.sampled_from(FLOAT_EDGES), st.floats(allow_nan=True, allow_infinity=True),
                    st.floats(0.01, 10_000.0))


def strings_with(known: list[str]) -> st.SearchStrategy[str]:
    """Strings: the suite's ``known`` names, odd ones, long ones, any text."""
    return st.one_of(st.sampled_from(known or [""]), st.sampled_from(ODD_STRINGS), long_strings,
                     st.text(max_size=40))


def enum_numbers(enum) -> st.SearchStrategy[int]:
    """Mostly the enum's own numbers (UNSPECIFIED included), sometimes any int32 (proto3 enums are open)."""
    return st.one_of(st.sampled_from([v.number for v in list(enum.values)]), st.integers(-2**31, 2**31 - 1),
                     st.integers(-2, 9))


@functools.cache
def _scalars(strings: st.SearchStrategy[str]) -> dict[int, st.SearchStrategy]:
    signed32 = st.one_of(st.sampled_from([0, 1, -1, 2**31 - 1, -2**31]), st.integers(-2**31, 2**31 - 1))
    unsigned32 = st.one_of(st.sampled_from([0, 1, 2**32 - 1]), st.integers(0, 2**32 - 1))
    unsigned64 = st.one_of(st.sampled_from([0, 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
    return {FieldDescriptor.TYPE_STRING: strings, FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
            FieldDescriptor.TYPE_INT64: int64s, FieldDescriptor.TYPE_SINT64: int64s,
            FieldDescriptor.TYPE_SFIXED64: int64s, FieldDescriptor.TYPE_INT32: signed32,
            FieldDescriptor.TYPE_SINT32: signed32, FieldDescriptor.TYPE_SFIXED32: signed32,
            FieldDescriptor.TYPE_UINT32: unsigned32, FieldDescriptor.TYPE_FIXED32: unsigned32,
            FieldDescriptor.TYPE_UINT64: unsigned64, FieldDescriptor.TYPE_FIXED64: unsigned64,
            FieldDescriptor.TYPE_DOUBLE: doubles, FieldDescriptor.TYPE_FLOAT: doubles.map(_as_float32),
            FieldDescriptor.TYPE_BOOL: st.booleans()}


def _as_float32(value: float) -> float:
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def _field_values(field, depth: int, strings) -> st.SearchStrategy:
    """Values for one (singular) field of a message."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_numbers(field.enum_type)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return any_message(field.message_type, strings, depth + 1)
    return _scalars(strings)[field.type]


@st.composite
def _message(draw, descriptor, strings, depth: int):
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if depth > 2 or not draw(st.booleans()):
            continue  # unset
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            entries = draw(st.dictionaries(_field_values(key, depth, strings), st.just(None), max_size=4))
            target = getattr(message, field.name)
            for k in entries:
                if value.type == FieldDescriptor.TYPE_MESSAGE:
                    target[k].CopyFrom(draw(_field_values(value, depth, strings)))
                else:
                    target[k] = draw(_field_values(value, depth, strings))
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_field_values(field, depth, strings), max_size=6)))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(draw(_field_values(field, depth, strings)))
        else:
            setattr(message, field.name, draw(_field_values(field, depth, strings)))
    return message


def any_message(descriptor, strings: st.SearchStrategy[str], depth: int = 0) -> st.SearchStrategy:
    """Messages of ``descriptor`` with each field unset or set to any value of its type (nested to depth 2)."""
    return _message(descriptor, strings, depth)


@st.composite
def mutated(draw, base: st.SearchStrategy, strings: st.SearchStrategy[str]):
    """A request of ``base`` with one field cleared or set to a generated (often extreme) value."""
    message = draw(base)
    fields = message.DESCRIPTOR.fields
    if not fields:
        return message
    field = draw(st.sampled_from(list(fields)))
    if draw(st.booleans()):
        message.ClearField(field.name)
    elif field.message_type is not None and field.message_type.GetOptions().map_entry:
        message.MergeFrom(draw(any_message(message.DESCRIPTOR, strings)))
    elif field.is_repeated:
        values = getattr(message, field.name)
        if field.type != FieldDescriptor.TYPE_MESSAGE and len(values):
            values[draw(st.integers(0, len(values) - 1))] = draw(_field_values(field, 0, strings))
        else:
            values.append(draw(_field_values(field, 0, strings)))
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(message, field.name).CopyFrom(draw(_field_values(field, 0, strings)))
    else:
        setattr(message, field.name, draw(_field_values(field, 0, strings)))
    return message


@st.composite
def raw_payloads(draw, requests: st.SearchStrategy):
    """Bytes for a method: random, or a serialized request of ``requests`` flipped, cut or padded."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    data = bytearray(draw(requests).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "pad"]))
        if kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        elif kind == "cut" and data:
            del data[draw(st.integers(0, len(data) - 1)):]
        else:
            data += draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def answer_code(channel: grpc.Channel, path: str, payload: bytes, timeout: float) -> grpc.StatusCode:
    """Send ``payload`` as the serialized request of unary method ``path``; assert the status is defined
    (and a refusal's message short), return it."""
    try:
        channel.unary_unary(path)(payload, timeout=timeout)   # bytes in, bytes out
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        code, details = error.code(), error.details() or ""
    assert code in DEFINED, f"{path} answered {code.name}: {details[:300]} for {payload[:300]!r}"
    assert len(details) < 1000, f"{path}: a {len(details)}-character message"
    return code


def subscription_outcome(call, valid: bool, what: str) -> str:
    """Assert that a server-stream ``call`` opened when its request is ``valid`` (then cancel it) and was
    refused INVALID_ARGUMENT otherwise; return which, for hypothesis's statistics."""
    if valid:
        call.initial_metadata()      # sent once subscribed; a refusal comes with its status at once
        ended = threading.Event()
        call.add_done_callback(lambda _: ended.set())
        assert not ended.wait(0.05), f"{what}: refused a valid request: {call.code()} {call.details()}"
        call.cancel()
        return "subscribed"
    assert call.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, call.code(), call.details())
    return "refused"
