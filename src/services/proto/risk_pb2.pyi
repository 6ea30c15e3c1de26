from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    BUY: _ClassVar[Side]
    SELL: _ClassVar[Side]

class TradingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRADING_STATE_UNSPECIFIED: _ClassVar[TradingState]
    ACTIVE: _ClassVar[TradingState]
    REDUCING: _ClassVar[TradingState]
    HALTED: _ClassVar[TradingState]
SIDE_UNSPECIFIED: Side
BUY: Side
SELL: Side
TRADING_STATE_UNSPECIFIED: TradingState
ACTIVE: TradingState
REDUCING: TradingState
HALTED: TradingState

class PositionRequest(_message.Message):
    __slots__ = ("account", "symbol", "side", "quantity", "price")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    account: str
    symbol: str
    side: Side
    quantity: int
    price: float
    def __init__(self, account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., quantity: _Optional[int] = ..., price: _Optional[float] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("accepted", "reason", "message", "utilisation", "node", "client_order_id", "replayed")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UTILISATION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    message: str
    utilisation: float
    node: str
    client_order_id: str
    replayed: bool
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., utilisation: _Optional[float] = ..., node: _Optional[str] = ..., client_order_id: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class OrderRequest(_message.Message):
    __slots__ = ("client_order_id", "account", "symbol", "side", "quantity", "price")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    account: str
    symbol: str
    side: Side
    quantity: int
    price: float
    def __init__(self, client_order_id: _Optional[str] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., quantity: _Optional[int] = ..., price: _Optional[float] = ...) -> None: ...

class OrderBatch(_message.Message):
    __slots__ = ("client_order_ids", "accounts", "symbols", "sides", "quantities", "prices")
    CLIENT_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    SIDES_FIELD_NUMBER: _ClassVar[int]
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    client_order_ids: _containers.RepeatedScalarFieldContainer[str]
    accounts: _containers.RepeatedScalarFieldContainer[str]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    sides: _containers.RepeatedScalarFieldContainer[Side]
    quantities: _containers.RepeatedScalarFieldContainer[int]
    prices: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, client_order_ids: _Optional[_Iterable[str]] = ..., accounts: _Optional[_Iterable[str]] = ..., symbols: _Optional[_Iterable[str]] = ..., sides: _Optional[_Iterable[_Union[Side, str]]] = ..., quantities: _Optional[_Iterable[int]] = ..., prices: _Optional[_Iterable[float]] = ...) -> None: ...

class BatchResponse(_message.Message):
    __slots__ = ("reason_codes", "accepted", "reason_names")
    class ReasonNamesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    REASON_CODES_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_NAMES_FIELD_NUMBER: _ClassVar[int]
    reason_codes: _containers.RepeatedScalarFieldContainer[int]
    accepted: int
    reason_names: _containers.ScalarMap[int, str]
    def __init__(self, reason_codes: _Optional[_Iterable[int]] = ..., accepted: _Optional[int] = ..., reason_names: _Optional[_Mapping[int, str]] = ...) -> None: ...

class ModifyRequest(_message.Message):
    __slots__ = ("client_order_id", "quantity", "price")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    quantity: int
    price: float
    def __init__(self, client_order_id: _Optional[str] = ..., quantity: _Optional[int] = ..., price: _Optional[float] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("client_order_id",)
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    def __init__(self, client_order_id: _Optional[str] = ...) -> None: ...

class Fill(_message.Message):
    __slots__ = ("client_order_id", "exec_id", "quantity", "price", "account", "symbol", "side")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    exec_id: str
    quantity: int
    price: float
    account: str
    symbol: str
    side: Side
    def __init__(self, client_order_id: _Optional[str] = ..., exec_id: _Optional[str] = ..., quantity: _Optional[int] = ..., price: _Optional[float] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ...) -> None: ...

class FillAck(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    def __init__(self, applied: _Optional[bool] = ...) -> None: ...

class FillBatch(_message.Message):
    __slots__ = ("client_order_ids", "exec_ids", "quantities", "prices")
    CLIENT_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    EXEC_IDS_FIELD_NUMBER: _ClassVar[int]
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    client_order_ids: _containers.RepeatedScalarFieldContainer[str]
    exec_ids: _containers.RepeatedScalarFieldContainer[str]
    quantities: _containers.RepeatedScalarFieldContainer[int]
    prices: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, client_order_ids: _Optional[_Iterable[str]] = ..., exec_ids: _Optional[_Iterable[str]] = ..., quantities: _Optional[_Iterable[int]] = ..., prices: _Optional[_Iterable[float]] = ...) -> None: ...

class FillBatchAck(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, applied: _Optional[_Iterable[bool]] = ...) -> None: ...

class OrderEvent(_message.Message):
    __slots__ = ("client_order_id", "kind")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[OrderEvent.Kind]
        CANCELLED: _ClassVar[OrderEvent.Kind]
        EXPIRED: _ClassVar[OrderEvent.Kind]
        REJECTED: _ClassVar[OrderEvent.Kind]
    KIND_UNSPECIFIED: OrderEvent.Kind
    CANCELLED: OrderEvent.Kind
    EXPIRED: OrderEvent.Kind
    REJECTED: OrderEvent.Kind
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    kind: OrderEvent.Kind
    def __init__(self, client_order_id: _Optional[str] = ..., kind: _Optional[_Union[OrderEvent.Kind, str]] = ...) -> None: ...

class OrderEventAck(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    def __init__(self, applied: _Optional[bool] = ...) -> None: ...

class PriceUpdates(_message.Message):
    __slots__ = ("symbols", "prices")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    prices: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., prices: _Optional[_Iterable[float]] = ...) -> None: ...

class PriceUpdatesAck(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: int
    def __init__(self, applied: _Optional[int] = ...) -> None: ...

class PositionsRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("account", "symbol", "quantity", "average_price", "realized_pnl", "unrealized_pnl")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRICE_FIELD_NUMBER: _ClassVar[int]
    REALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    UNREALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    account: str
    symbol: str
    quantity: int
    average_price: float
    realized_pnl: float
    unrealized_pnl: float
    def __init__(self, account: _Optional[str] = ..., symbol: _Optional[str] = ..., quantity: _Optional[int] = ..., average_price: _Optional[float] = ..., realized_pnl: _Optional[float] = ..., unrealized_pnl: _Optional[float] = ...) -> None: ...

class PositionsResponse(_message.Message):
    __slots__ = ("positions",)
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    positions: _containers.RepeatedCompositeFieldContainer[Position]
    def __init__(self, positions: _Optional[_Iterable[_Union[Position, _Mapping]]] = ...) -> None: ...

class ExposureRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class AccountExposure(_message.Message):
    __slots__ = ("account", "parent", "long_notional", "short_notional", "net_notional", "gross_notional", "working_buy_notional", "working_sell_notional", "realized_pnl", "unrealized_pnl", "daily_pnl", "open_orders", "state")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    LONG_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    SHORT_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    NET_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    GROSS_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    WORKING_BUY_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    WORKING_SELL_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    REALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    UNREALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    DAILY_PNL_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    account: str
    parent: str
    long_notional: float
    short_notional: float
    net_notional: float
    gross_notional: float
    working_buy_notional: float
    working_sell_notional: float
    realized_pnl: float
    unrealized_pnl: float
    daily_pnl: float
    open_orders: int
    state: TradingState
    def __init__(self, account: _Optional[str] = ..., parent: _Optional[str] = ..., long_notional: _Optional[float] = ..., short_notional: _Optional[float] = ..., net_notional: _Optional[float] = ..., gross_notional: _Optional[float] = ..., working_buy_notional: _Optional[float] = ..., working_sell_notional: _Optional[float] = ..., realized_pnl: _Optional[float] = ..., unrealized_pnl: _Optional[float] = ..., daily_pnl: _Optional[float] = ..., open_orders: _Optional[int] = ..., state: _Optional[_Union[TradingState, str]] = ...) -> None: ...

class ExposureResponse(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[AccountExposure]
    def __init__(self, accounts: _Optional[_Iterable[_Union[AccountExposure, _Mapping]]] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("count", "seconds")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    count: int
    seconds: float
    def __init__(self, count: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class PositionLimit(_message.Message):
    __slots__ = ("symbol", "max_long", "max_short")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    MAX_LONG_FIELD_NUMBER: _ClassVar[int]
    MAX_SHORT_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    max_long: int
    max_short: int
    def __init__(self, symbol: _Optional[str] = ..., max_long: _Optional[int] = ..., max_short: _Optional[int] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_order_quantity", "max_order_notional", "max_gross_notional", "max_net_notional", "max_open_orders", "max_daily_loss", "new_order_rate", "modify_rate", "cancel_rate", "fill_throttle", "position_limits")
    MAX_ORDER_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDER_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_GROSS_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_NET_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    MAX_DAILY_LOSS_FIELD_NUMBER: _ClassVar[int]
    NEW_ORDER_RATE_FIELD_NUMBER: _ClassVar[int]
    MODIFY_RATE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_RATE_FIELD_NUMBER: _ClassVar[int]
    FILL_THROTTLE_FIELD_NUMBER: _ClassVar[int]
    POSITION_LIMITS_FIELD_NUMBER: _ClassVar[int]
    max_order_quantity: int
    max_order_notional: float
    max_gross_notional: float
    max_net_notional: float
    max_open_orders: int
    max_daily_loss: float
    new_order_rate: Window
    modify_rate: Window
    cancel_rate: Window
    fill_throttle: Window
    position_limits: _containers.RepeatedCompositeFieldContainer[PositionLimit]
    def __init__(self, max_order_quantity: _Optional[int] = ..., max_order_notional: _Optional[float] = ..., max_gross_notional: _Optional[float] = ..., max_net_notional: _Optional[float] = ..., max_open_orders: _Optional[int] = ..., max_daily_loss: _Optional[float] = ..., new_order_rate: _Optional[_Union[Window, _Mapping]] = ..., modify_rate: _Optional[_Union[Window, _Mapping]] = ..., cancel_rate: _Optional[_Union[Window, _Mapping]] = ..., fill_throttle: _Optional[_Union[Window, _Mapping]] = ..., position_limits: _Optional[_Iterable[_Union[PositionLimit, _Mapping]]] = ...) -> None: ...

class LimitsRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class SetLimitsRequest(_message.Message):
    __slots__ = ("account", "limits")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    account: str
    limits: Limits
    def __init__(self, account: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class LimitsResponse(_message.Message):
    __slots__ = ("account", "limits")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    account: str
    limits: Limits
    def __init__(self, account: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class TradingStateRequest(_message.Message):
    __slots__ = ("account", "symbol", "state")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    account: str
    symbol: str
    state: TradingState
    def __init__(self, account: _Optional[str] = ..., symbol: _Optional[str] = ..., state: _Optional[_Union[TradingState, str]] = ...) -> None: ...

class TradingStateResponse(_message.Message):
    __slots__ = ("target", "state")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    target: str
    state: TradingState
    def __init__(self, target: _Optional[str] = ..., state: _Optional[_Union[TradingState, str]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Breach(_message.Message):
    __slots__ = ("time_unix_nano", "account", "symbol", "reason", "value", "limit", "state", "actor")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    account: str
    symbol: str
    reason: str
    value: float
    limit: float
    state: TradingState
    actor: str
    def __init__(self, time_unix_nano: _Optional[int] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., reason: _Optional[str] = ..., value: _Optional[float] = ..., limit: _Optional[float] = ..., state: _Optional[_Union[TradingState, str]] = ..., actor: _Optional[str] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PromoteResponse(_message.Message):
    __slots__ = ("role", "last_seq")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    role: str
    last_seq: int
    def __init__(self, role: _Optional[str] = ..., last_seq: _Optional[int] = ...) -> None: ...
