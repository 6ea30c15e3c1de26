from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JournalRecord(_message.Message):
    __slots__ = ("format", "submit", "submit_batch", "modify", "cancel_request", "fill", "fill_batch", "order_event", "marks", "set_limits", "set_trading_state", "roll_day")
    class Submit(_message.Message):
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
        side: int
        quantity: int
        price: float
        def __init__(self, client_order_id: _Optional[str] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[int] = ..., quantity: _Optional[int] = ..., price: _Optional[float] = ...) -> None: ...
    class SubmitBatch(_message.Message):
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
        sides: _containers.RepeatedScalarFieldContainer[int]
        quantities: _containers.RepeatedScalarFieldContainer[int]
        prices: _containers.RepeatedScalarFieldContainer[float]
        def __init__(self, client_order_ids: _Optional[_Iterable[str]] = ..., accounts: _Optional[_Iterable[str]] = ..., symbols: _Optional[_Iterable[str]] = ..., sides: _Optional[_Iterable[int]] = ..., quantities: _Optional[_Iterable[int]] = ..., prices: _Optional[_Iterable[float]] = ...) -> None: ...
    class Modify(_message.Message):
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
        __slots__ = ("client_order_id", "exec_id", "account", "symbol", "side", "quantity", "price")
        CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
        EXEC_ID_FIELD_NUMBER: _ClassVar[int]
        ACCOUNT_FIELD_NUMBER: _ClassVar[int]
        SYMBOL_FIELD_NUMBER: _ClassVar[int]
        SIDE_FIELD_NUMBER: _ClassVar[int]
        QUANTITY_FIELD_NUMBER: _ClassVar[int]
        PRICE_FIELD_NUMBER: _ClassVar[int]
        client_order_id: str
        exec_id: str
        account: str
        symbol: str
        side: int
        quantity: int
        price: float
        def __init__(self, client_order_id: _Optional[str] = ..., exec_id: _Optional[str] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[int] = ..., quantity: _Optional[int] = ..., price: _Optional[float] = ...) -> None: ...
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
    class OrderEvent(_message.Message):
        __slots__ = ("client_order_id", "kind")
        class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            KIND_UNSPECIFIED: _ClassVar[JournalRecord.OrderEvent.Kind]
            KIND_CANCELLED: _ClassVar[JournalRecord.OrderEvent.Kind]
            KIND_EXPIRED: _ClassVar[JournalRecord.OrderEvent.Kind]
            KIND_REJECTED: _ClassVar[JournalRecord.OrderEvent.Kind]
        KIND_UNSPECIFIED: JournalRecord.OrderEvent.Kind
        KIND_CANCELLED: JournalRecord.OrderEvent.Kind
        KIND_EXPIRED: JournalRecord.OrderEvent.Kind
        KIND_REJECTED: JournalRecord.OrderEvent.Kind
        CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
        KIND_FIELD_NUMBER: _ClassVar[int]
        client_order_id: str
        kind: JournalRecord.OrderEvent.Kind
        def __init__(self, client_order_id: _Optional[str] = ..., kind: _Optional[_Union[JournalRecord.OrderEvent.Kind, str]] = ...) -> None: ...
    class Marks(_message.Message):
        __slots__ = ("symbols", "prices")
        SYMBOLS_FIELD_NUMBER: _ClassVar[int]
        PRICES_FIELD_NUMBER: _ClassVar[int]
        symbols: _containers.RepeatedScalarFieldContainer[str]
        prices: _containers.RepeatedScalarFieldContainer[float]
        def __init__(self, symbols: _Optional[_Iterable[str]] = ..., prices: _Optional[_Iterable[float]] = ...) -> None: ...
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
    class SetLimits(_message.Message):
        __slots__ = ("account", "max_order_quantity", "max_order_notional", "max_gross_notional", "max_net_notional", "max_open_orders", "max_daily_loss", "new_order_rate", "modify_rate", "cancel_rate", "fill_throttle", "position_limits", "actor")
        ACCOUNT_FIELD_NUMBER: _ClassVar[int]
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
        ACTOR_FIELD_NUMBER: _ClassVar[int]
        account: str
        max_order_quantity: int
        max_order_notional: float
        max_gross_notional: float
        max_net_notional: float
        max_open_orders: int
        max_daily_loss: float
        new_order_rate: JournalRecord.Window
        modify_rate: JournalRecord.Window
        cancel_rate: JournalRecord.Window
        fill_throttle: JournalRecord.Window
        position_limits: _containers.RepeatedCompositeFieldContainer[JournalRecord.PositionLimit]
        actor: str
        def __init__(self, account: _Optional[str] = ..., max_order_quantity: _Optional[int] = ..., max_order_notional: _Optional[float] = ..., max_gross_notional: _Optional[float] = ..., max_net_notional: _Optional[float] = ..., max_open_orders: _Optional[int] = ..., max_daily_loss: _Optional[float] = ..., new_order_rate: _Optional[_Union[JournalRecord.Window, _Mapping]] = ..., modify_rate: _Optional[_Union[JournalRecord.Window, _Mapping]] = ..., cancel_rate: _Optional[_Union[JournalRecord.Window, _Mapping]] = ..., fill_throttle: _Optional[_Union[JournalRecord.Window, _Mapping]] = ..., position_limits: _Optional[_Iterable[_Union[JournalRecord.PositionLimit, _Mapping]]] = ..., actor: _Optional[str] = ...) -> None: ...
    class SetTradingState(_message.Message):
        __slots__ = ("account", "symbol", "state", "actor")
        class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            STATE_UNSPECIFIED: _ClassVar[JournalRecord.SetTradingState.State]
            STATE_ACTIVE: _ClassVar[JournalRecord.SetTradingState.State]
            STATE_REDUCING: _ClassVar[JournalRecord.SetTradingState.State]
            STATE_HALTED: _ClassVar[JournalRecord.SetTradingState.State]
        STATE_UNSPECIFIED: JournalRecord.SetTradingState.State
        STATE_ACTIVE: JournalRecord.SetTradingState.State
        STATE_REDUCING: JournalRecord.SetTradingState.State
        STATE_HALTED: JournalRecord.SetTradingState.State
        ACCOUNT_FIELD_NUMBER: _ClassVar[int]
        SYMBOL_FIELD_NUMBER: _ClassVar[int]
        STATE_FIELD_NUMBER: _ClassVar[int]
        ACTOR_FIELD_NUMBER: _ClassVar[int]
        account: str
        symbol: str
        state: JournalRecord.SetTradingState.State
        actor: str
        def __init__(self, account: _Optional[str] = ..., symbol: _Optional[str] = ..., state: _Optional[_Union[JournalRecord.SetTradingState.State, str]] = ..., actor: _Optional[str] = ...) -> None: ...
    class RollDay(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_BATCH_FIELD_NUMBER: _ClassVar[int]
    MODIFY_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUEST_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    FILL_BATCH_FIELD_NUMBER: _ClassVar[int]
    ORDER_EVENT_FIELD_NUMBER: _ClassVar[int]
    MARKS_FIELD_NUMBER: _ClassVar[int]
    SET_LIMITS_FIELD_NUMBER: _ClassVar[int]
    SET_TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    ROLL_DAY_FIELD_NUMBER: _ClassVar[int]
    format: int
    submit: JournalRecord.Submit
    submit_batch: JournalRecord.SubmitBatch
    modify: JournalRecord.Modify
    cancel_request: JournalRecord.CancelRequest
    fill: JournalRecord.Fill
    fill_batch: JournalRecord.FillBatch
    order_event: JournalRecord.OrderEvent
    marks: JournalRecord.Marks
    set_limits: JournalRecord.SetLimits
    set_trading_state: JournalRecord.SetTradingState
    roll_day: JournalRecord.RollDay
    def __init__(self, format: _Optional[int] = ..., submit: _Optional[_Union[JournalRecord.Submit, _Mapping]] = ..., submit_batch: _Optional[_Union[JournalRecord.SubmitBatch, _Mapping]] = ..., modify: _Optional[_Union[JournalRecord.Modify, _Mapping]] = ..., cancel_request: _Optional[_Union[JournalRecord.CancelRequest, _Mapping]] = ..., fill: _Optional[_Union[JournalRecord.Fill, _Mapping]] = ..., fill_batch: _Optional[_Union[JournalRecord.FillBatch, _Mapping]] = ..., order_event: _Optional[_Union[JournalRecord.OrderEvent, _Mapping]] = ..., marks: _Optional[_Union[JournalRecord.Marks, _Mapping]] = ..., set_limits: _Optional[_Union[JournalRecord.SetLimits, _Mapping]] = ..., set_trading_state: _Optional[_Union[JournalRecord.SetTradingState, _Mapping]] = ..., roll_day: _Optional[_Union[JournalRecord.RollDay, _Mapping]] = ...) -> None: ...
