from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeedSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEED_SOURCE_UNSPECIFIED: _ClassVar[FeedSource]
    FEED_SOURCE_REPLAY: _ClassVar[FeedSource]
    FEED_SOURCE_MOLDUDP64: _ClassVar[FeedSource]

class FeedState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEED_STATE_UNSPECIFIED: _ClassVar[FeedState]
    FEED_STATE_STARTING: _ClassVar[FeedState]
    FEED_STATE_LIVE: _ClassVar[FeedState]
    FEED_STATE_GAP: _ClassVar[FeedState]
    FEED_STATE_RECOVERING: _ClassVar[FeedState]
    FEED_STATE_FAILED: _ClassVar[FeedState]
    FEED_STATE_ENDED: _ClassVar[FeedState]

class MarketState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MARKET_STATE_UNSPECIFIED: _ClassVar[MarketState]
    MARKET_STATE_TRADING: _ClassVar[MarketState]
    MARKET_STATE_HALTED: _ClassVar[MarketState]
    MARKET_STATE_PAUSED: _ClassVar[MarketState]
    MARKET_STATE_QUOTATION_ONLY: _ClassVar[MarketState]
FEED_SOURCE_UNSPECIFIED: FeedSource
FEED_SOURCE_REPLAY: FeedSource
FEED_SOURCE_MOLDUDP64: FeedSource
FEED_STATE_UNSPECIFIED: FeedState
FEED_STATE_STARTING: FeedState
FEED_STATE_LIVE: FeedState
FEED_STATE_GAP: FeedState
FEED_STATE_RECOVERING: FeedState
FEED_STATE_FAILED: FeedState
FEED_STATE_ENDED: FeedState
MARKET_STATE_UNSPECIFIED: MarketState
MARKET_STATE_TRADING: MarketState
MARKET_STATE_HALTED: MarketState
MARKET_STATE_PAUSED: MarketState
MARKET_STATE_QUOTATION_ONLY: MarketState

class SubscribeRequest(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class Quote(_message.Message):
    __slots__ = ("symbol", "locate", "bid_price", "bid_size", "ask_price", "ask_size", "last_price", "last_size", "last_time_ns", "halted", "stale", "exchange_time_ns", "mark_price", "conflated")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    LOCATE_FIELD_NUMBER: _ClassVar[int]
    BID_PRICE_FIELD_NUMBER: _ClassVar[int]
    BID_SIZE_FIELD_NUMBER: _ClassVar[int]
    ASK_PRICE_FIELD_NUMBER: _ClassVar[int]
    ASK_SIZE_FIELD_NUMBER: _ClassVar[int]
    LAST_PRICE_FIELD_NUMBER: _ClassVar[int]
    LAST_SIZE_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    HALTED_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    CONFLATED_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    locate: int
    bid_price: int
    bid_size: int
    ask_price: int
    ask_size: int
    last_price: int
    last_size: int
    last_time_ns: int
    halted: bool
    stale: bool
    exchange_time_ns: int
    mark_price: float
    conflated: int
    def __init__(self, symbol: _Optional[str] = ..., locate: _Optional[int] = ..., bid_price: _Optional[int] = ..., bid_size: _Optional[int] = ..., ask_price: _Optional[int] = ..., ask_size: _Optional[int] = ..., last_price: _Optional[int] = ..., last_size: _Optional[int] = ..., last_time_ns: _Optional[int] = ..., halted: _Optional[bool] = ..., stale: _Optional[bool] = ..., exchange_time_ns: _Optional[int] = ..., mark_price: _Optional[float] = ..., conflated: _Optional[int] = ...) -> None: ...

class BookRequest(_message.Message):
    __slots__ = ("symbol", "depth")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    depth: int
    def __init__(self, symbol: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class BookLevel(_message.Message):
    __slots__ = ("price", "shares", "orders")
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    price: int
    shares: int
    orders: int
    def __init__(self, price: _Optional[int] = ..., shares: _Optional[int] = ..., orders: _Optional[int] = ...) -> None: ...

class BookResponse(_message.Message):
    __slots__ = ("quote", "bids", "asks", "market_state")
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    BIDS_FIELD_NUMBER: _ClassVar[int]
    ASKS_FIELD_NUMBER: _ClassVar[int]
    MARKET_STATE_FIELD_NUMBER: _ClassVar[int]
    quote: Quote
    bids: _containers.RepeatedCompositeFieldContainer[BookLevel]
    asks: _containers.RepeatedCompositeFieldContainer[BookLevel]
    market_state: MarketState
    def __init__(self, quote: _Optional[_Union[Quote, _Mapping]] = ..., bids: _Optional[_Iterable[_Union[BookLevel, _Mapping]]] = ..., asks: _Optional[_Iterable[_Union[BookLevel, _Mapping]]] = ..., market_state: _Optional[_Union[MarketState, str]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FeedSession(_message.Message):
    __slots__ = ("session", "state", "expected_sequence", "highest_sequence", "packets", "heartbeats", "gaps", "recovered_messages", "requests", "duplicates", "reorder_held", "reorder_overflow", "malformed", "soup_recoveries", "loops", "soup_failures", "recovery_overflow", "file_recoveries", "last_error")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HIGHEST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEATS_FIELD_NUMBER: _ClassVar[int]
    GAPS_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REORDER_HELD_FIELD_NUMBER: _ClassVar[int]
    REORDER_OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    MALFORMED_FIELD_NUMBER: _ClassVar[int]
    SOUP_RECOVERIES_FIELD_NUMBER: _ClassVar[int]
    LOOPS_FIELD_NUMBER: _ClassVar[int]
    SOUP_FAILURES_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    FILE_RECOVERIES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    session: str
    state: FeedState
    expected_sequence: int
    highest_sequence: int
    packets: int
    heartbeats: int
    gaps: int
    recovered_messages: int
    requests: int
    duplicates: int
    reorder_held: int
    reorder_overflow: int
    malformed: int
    soup_recoveries: int
    loops: int
    soup_failures: int
    recovery_overflow: int
    file_recoveries: int
    last_error: str
    def __init__(self, session: _Optional[str] = ..., state: _Optional[_Union[FeedState, str]] = ..., expected_sequence: _Optional[int] = ..., highest_sequence: _Optional[int] = ..., packets: _Optional[int] = ..., heartbeats: _Optional[int] = ..., gaps: _Optional[int] = ..., recovered_messages: _Optional[int] = ..., requests: _Optional[int] = ..., duplicates: _Optional[int] = ..., reorder_held: _Optional[int] = ..., reorder_overflow: _Optional[int] = ..., malformed: _Optional[int] = ..., soup_recoveries: _Optional[int] = ..., loops: _Optional[int] = ..., soup_failures: _Optional[int] = ..., recovery_overflow: _Optional[int] = ..., file_recoveries: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class OutputStatus(_message.Message):
    __slots__ = ("name", "enabled", "sent", "failed", "conflated", "unknown_symbols", "withheld_stale", "pending", "last_error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CONFLATED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_STALE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    enabled: bool
    sent: int
    failed: int
    conflated: int
    unknown_symbols: int
    withheld_stale: int
    pending: int
    last_error: str
    def __init__(self, name: _Optional[str] = ..., enabled: _Optional[bool] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., conflated: _Optional[int] = ..., unknown_symbols: _Optional[int] = ..., withheld_stale: _Optional[int] = ..., pending: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("source", "state", "stale", "sessions", "messages", "messages_by_type", "counters", "symbols", "orders", "exchange_time_ns", "lag_seconds", "subscribers", "outputs")
    class MessagesByTypeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_BY_TYPE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    source: FeedSource
    state: FeedState
    stale: bool
    sessions: _containers.RepeatedCompositeFieldContainer[FeedSession]
    messages: int
    messages_by_type: _containers.ScalarMap[str, int]
    counters: _containers.ScalarMap[str, int]
    symbols: int
    orders: int
    exchange_time_ns: int
    lag_seconds: float
    subscribers: int
    outputs: _containers.RepeatedCompositeFieldContainer[OutputStatus]
    def __init__(self, source: _Optional[_Union[FeedSource, str]] = ..., state: _Optional[_Union[FeedState, str]] = ..., stale: _Optional[bool] = ..., sessions: _Optional[_Iterable[_Union[FeedSession, _Mapping]]] = ..., messages: _Optional[int] = ..., messages_by_type: _Optional[_Mapping[str, int]] = ..., counters: _Optional[_Mapping[str, int]] = ..., symbols: _Optional[int] = ..., orders: _Optional[int] = ..., exchange_time_ns: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., subscribers: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[OutputStatus, _Mapping]]] = ...) -> None: ...
