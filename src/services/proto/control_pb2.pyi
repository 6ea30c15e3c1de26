from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StrategyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_STATE_UNSPECIFIED: _ClassVar[StrategyState]
    STRATEGY_STATE_REGISTERED: _ClassVar[StrategyState]
    STRATEGY_STATE_STARTING: _ClassVar[StrategyState]
    STRATEGY_STATE_RUNNING: _ClassVar[StrategyState]
    STRATEGY_STATE_PAUSED: _ClassVar[StrategyState]
    STRATEGY_STATE_STOPPING: _ClassVar[StrategyState]
    STRATEGY_STATE_STOPPED: _ClassVar[StrategyState]
    STRATEGY_STATE_FAILED: _ClassVar[StrategyState]
    STRATEGY_STATE_BACKOFF: _ClassVar[StrategyState]
    STRATEGY_STATE_FAULTED: _ClassVar[StrategyState]
STRATEGY_STATE_UNSPECIFIED: StrategyState
STRATEGY_STATE_REGISTERED: StrategyState
STRATEGY_STATE_STARTING: StrategyState
STRATEGY_STATE_RUNNING: StrategyState
STRATEGY_STATE_PAUSED: StrategyState
STRATEGY_STATE_STOPPING: StrategyState
STRATEGY_STATE_STOPPED: StrategyState
STRATEGY_STATE_FAILED: StrategyState
STRATEGY_STATE_BACKOFF: StrategyState
STRATEGY_STATE_FAULTED: StrategyState

class RegisterStrategyRequest(_message.Message):
    __slots__ = ("name", "entry", "account", "config_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    entry: str
    account: str
    config_json: str
    def __init__(self, name: _Optional[str] = ..., entry: _Optional[str] = ..., account: _Optional[str] = ..., config_json: _Optional[str] = ...) -> None: ...

class StrategyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Strategy(_message.Message):
    __slots__ = ("name", "entry", "account", "state", "pid", "uptime_seconds", "restarts", "last_error", "heartbeat_age_seconds", "backoff_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    entry: str
    account: str
    state: StrategyState
    pid: int
    uptime_seconds: float
    restarts: int
    last_error: str
    heartbeat_age_seconds: float
    backoff_seconds: float
    def __init__(self, name: _Optional[str] = ..., entry: _Optional[str] = ..., account: _Optional[str] = ..., state: _Optional[_Union[StrategyState, str]] = ..., pid: _Optional[int] = ..., uptime_seconds: _Optional[float] = ..., restarts: _Optional[int] = ..., last_error: _Optional[str] = ..., heartbeat_age_seconds: _Optional[float] = ..., backoff_seconds: _Optional[float] = ...) -> None: ...

class ListStrategiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStrategiesResponse(_message.Message):
    __slots__ = ("strategies",)
    STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    strategies: _containers.RepeatedCompositeFieldContainer[Strategy]
    def __init__(self, strategies: _Optional[_Iterable[_Union[Strategy, _Mapping]]] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KillSwitchRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class KillSwitchResponse(_message.Message):
    __slots__ = ("stopped",)
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    stopped: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, stopped: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LifecycleEvent(_message.Message):
    __slots__ = ("strategy", "state", "previous", "reason", "pid", "restarts", "time")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    state: StrategyState
    previous: StrategyState
    reason: str
    pid: int
    restarts: int
    time: float
    def __init__(self, strategy: _Optional[str] = ..., state: _Optional[_Union[StrategyState, str]] = ..., previous: _Optional[_Union[StrategyState, str]] = ..., reason: _Optional[str] = ..., pid: _Optional[int] = ..., restarts: _Optional[int] = ..., time: _Optional[float] = ...) -> None: ...
