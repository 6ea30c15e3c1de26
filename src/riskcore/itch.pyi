from typing import NamedTuple

from typing_extensions import Buffer

PRICE_SCALE: int
MESSAGE_LENGTHS: dict[str, int]
BOOK_TYPES: str

class SystemEvent(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    event_code: str

class StockDirectory(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    market_category: str
    financial_status: str
    round_lot_size: int
    round_lots_only: str
    issue_classification: str
    issue_subtype: str
    authenticity: str
    short_sale_threshold: str
    ipo_flag: str
    luld_tier: str
    etp_flag: str
    etp_leverage: int
    inverse: str

class TradingAction(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    state: str
    reserved: str
    reason: str

class AddOrder(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    ref: int
    side: str
    shares: int
    stock: str
    price: int
    attribution: str

class OrderExecuted(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    ref: int
    shares: int
    match: int

class OrderExecutedWithPrice(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    ref: int
    shares: int
    match: int
    printable: str
    price: int

class OrderCancel(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    ref: int
    shares: int

class OrderDelete(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    ref: int

class OrderReplace(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    ref: int
    new_ref: int
    shares: int
    price: int

class Trade(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    ref: int
    side: str
    shares: int
    stock: str
    price: int
    match: int

class CrossTrade(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    shares: int
    stock: str
    price: int
    match: int
    cross_type: str

class OtherMessage(NamedTuple):
    type: str
    locate: int
    tracking: int
    timestamp: int
    body: bytes

_Message = (SystemEvent | StockDirectory | TradingAction | AddOrder | OrderExecuted | OrderExecutedWithPrice
           | OrderCancel | OrderDelete | OrderReplace | Trade | CrossTrade | OtherMessage)

# message: uint8 bytes-like, the type byte first, no length prefix
def parse(message: Buffer) -> _Message: ...
