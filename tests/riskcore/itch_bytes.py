"""ITCH 5.0 messages built by hand from the spec's layouts (section 4), for the tests.

Each builder packs the common header ``type(1) locate(2) tracking(2)
timestamp(6)`` and the type's body field by field, with the offsets of the
spec in the comments; none of this is shared with the kernel or the simulator.
"""
from __future__ import annotations

import struct


def header(kind: bytes, locate: int = 1, tracking: int = 0, ts: int = 0) -> bytes:
    return kind + struct.pack(">HH", locate, tracking) + ts.to_bytes(6, "big")


def stock8(name: str) -> bytes:
    return name.encode("ascii").ljust(8)


def system_event(code: bytes, ts: int = 0, tracking: int = 0) -> bytes:
    return header(b"S", 0, tracking, ts) + code                                              # 11: event code


def stock_directory(locate: int, name: str, ts: int = 0, round_lot: int = 100) -> bytes:
    return (header(b"R", locate, 0, ts) + stock8(name)                                       # 11: stock
            + b"Q" + b"N" + struct.pack(">I", round_lot)                                     # 19, 20, 21: lot
            + b"N" + b"C" + b"Z " + b"P" + b"N" + b"N" + b"1" + b"N"                         # 25 .. 33
            + struct.pack(">I", 0) + b"N")                                                   # 34: leverage, 38


def trading_action(locate: int, name: str, state: bytes, ts: int = 0, reason: bytes = b"T1  ") -> bytes:
    return header(b"H", locate, 0, ts) + stock8(name) + state + b" " + reason              # 11, 19, 20, 21


def add(ref: int, side: bytes, shares: int, price: int, locate: int = 1, name: str = "ACME", ts: int = 0,
        mpid: bytes | None = None) -> bytes:
    body = struct.pack(">Q", ref) + side + struct.pack(">I", shares) + stock8(name) + struct.pack(">I", price)
    if mpid is None:
        return header(b"A", locate, 0, ts) + body                                           # 36 bytes
    return header(b"F", locate, 0, ts) + body + mpid                                        # 40 bytes


def executed(ref: int, shares: int, match: int = 1, locate: int = 1, ts: int = 0) -> bytes:
    return header(b"E", locate, 0, ts) + struct.pack(">QIQ", ref, shares, match)            # 11, 19, 23


def executed_with_price(ref: int, shares: int, price: int, printable: bytes = b"Y", match: int = 1,
                        locate: int = 1, ts: int = 0) -> bytes:
    return (header(b"C", locate, 0, ts) + struct.pack(">QIQ", ref, shares, match)           # 11, 19, 23
            + printable + struct.pack(">I", price))                                          # 31, 32


def cancel(ref: int, shares: int, locate: int = 1, ts: int = 0) -> bytes:
    return header(b"X", locate, 0, ts) + struct.pack(">QI", ref, shares)                    # 11, 19


def delete(ref: int, locate: int = 1, ts: int = 0) -> bytes:
    return header(b"D", locate, 0, ts) + struct.pack(">Q", ref)                             # 11


def replace(ref: int, new_ref: int, shares: int, price: int, locate: int = 1, ts: int = 0) -> bytes:
    return header(b"U", locate, 0, ts) + struct.pack(">QQII", ref, new_ref, shares, price)  # 11, 19, 27, 31


def trade(shares: int, price: int, side: bytes = b"B", match: int = 1, locate: int = 1, name: str = "ACME",
          ts: int = 0) -> bytes:
    return (header(b"P", locate, 0, ts) + struct.pack(">Q", 0) + side                       # 11: ref 0, 19
            + struct.pack(">I", shares) + stock8(name) + struct.pack(">IQ", price, match))  # 20, 24, 32, 36


def cross(shares: int, price: int, cross_type: bytes = b"O", match: int = 1, locate: int = 1, name: str = "ACME",
          ts: int = 0) -> bytes:
    return (header(b"Q", locate, 0, ts) + struct.pack(">Q", shares) + stock8(name)          # 11: 8-byte shares, 19
            + struct.pack(">IQ", price, match) + cross_type)                                 # 27, 31, 39


def broken_trade(match: int, locate: int = 1, ts: int = 0) -> bytes:
    return header(b"B", locate, 0, ts) + struct.pack(">Q", match)                           # 19 bytes


def frame(*messages: bytes) -> bytes:
    """Messages behind their 2-byte big-endian lengths (day-file framing)."""
    return b"".join(struct.pack(">H", len(m)) + m for m in messages)
