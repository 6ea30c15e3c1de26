from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer, disjoint_base

from riskcore import Book

class Received(NamedTuple):
    expected: int
    packets: int
    messages: int
    heartbeats: int
    duplicates: int
    malformed: int
    first_timestamp: int
    received_ns: int
    others: list[bytes]

@disjoint_base
class PacketReceiver:
    def __init__(self, fd: int, batch: int = 64) -> None: ...
    def receive(self, book: Book, session: bytes, expected: int, in_sequence: bool, max_packets: int = 4096,
                wait: float = 0.05, budget: float = 0.005) -> Received: ...

# data: contiguous uint8 bytes-like; offsets: contiguous int64, one more than the datagrams
def send_datagrams(fd: int, data: Buffer, offsets: npt.NDArray[np.int64], first: int = 0, last: int = -1) -> int: ...
