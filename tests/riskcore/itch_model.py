"""An independent pure-Python model of the ITCH 5.0 book (the README's "Market data" section).

It parses the bytes itself with ``struct`` from the spec's layouts (it shares
no code with ``riskcore.itch``, ``riskcore.book`` or the simulator) and keeps
the book in plain dicts, recomputing the top of book from them on demand, so
it is slow and obviously right. Rules where the spec leaves a choice, as the
README states them:

- unknown types are skipped; a frame shorter than its type's length, or
  empty, is ``short_message``; a frame cut off at the end is
  ``truncated_frame``;
- ``bad_field``: A/F/P with a side other than B/S, A/F/U with zero shares,
  A/F/P/Q/H/R with stock locate 0, H with a state other than H/P/Q/T;
- a second add of a live reference is ``duplicate_add`` and is dropped;
- E/C/X/D/U of a reference not live is ``unknown_ref``; executing or
  cancelling more than remains is ``over_execution`` and is clamped;
- U removes the old order, then adds the new one like an A with the old
  side and stock (so a live new reference is a ``duplicate_add``);
- last trade: E at the order's price, C when printable is 'Y', P and Q
  with shares > 0; the executed size is the clamped one;
- crossed: an add (A, F, or the add half of U) at or better than its
  side's best price that leaves best bid >= best ask.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

LENGTHS = {"S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35, "h": 21,
           "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19,
           "I": 50, "N": 20, "O": 48}
COUNTERS = ("messages", "unknown_type", "short_message", "truncated_frame", "bad_field",
            "unknown_ref", "duplicate_add", "over_execution", "crossed_book")


def u48(b: bytes) -> int:
    return int.from_bytes(b, "big")


@dataclass
class ModelBook:
    orders: dict[int, list] = field(default_factory=dict)                 # ref -> [locate, side, price, shares]
    levels: dict[tuple[int, str], dict[int, list[int]]] = field(default_factory=dict)  # -> price -> [shares, n]
    last: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # locate -> (price, shares, ts)
    state: dict[int, str] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    event: str | None = None

    # ---------------------------------------------------------------- input

    def feed(self, data: bytes, final: bool = True) -> int:
        """Apply a length-framed buffer; return the bytes consumed."""
        pos = 0
        while pos + 2 <= len(data):
            (length,) = struct.unpack_from(">H", data, pos)
            if pos + 2 + length > len(data):
                break
            self.apply(data[pos + 2:pos + 2 + length])
            pos += 2 + length
        if final and pos < len(data):
            self.counters["truncated_frame"] += 1
            pos = len(data)
        return pos

    def apply(self, m: bytes) -> None:
        if not m:
            self.counters["short_message"] += 1
            return
        t = chr(m[0])
        if t not in LENGTHS:
            self.counters["unknown_type"] += 1
            return
        if len(m) < LENGTHS[t]:
            self.counters["short_message"] += 1
            return
        locate, _tracking = struct.unpack_from(">HH", m, 1)
        ts = u48(m[5:11])
        if t in "AF":
            ref, side, shares, _stock, price = struct.unpack_from(">QcI8sI", m, 11)
            side = side.decode("latin-1")
            if side not in ("B", "S") or shares == 0 or locate == 0:
                self.counters["bad_field"] += 1
                return
            self._add(locate, ref, side, shares, price)
        elif t == "E":
            ref, shares, _match = struct.unpack_from(">QIQ", m, 11)
            self._execute(ref, shares, None, True, ts)
        elif t == "C":
            ref, shares, _match, printable, price = struct.unpack_from(">QIQcI", m, 11)
            self._execute(ref, shares, price, printable == b"Y", ts)
        elif t == "X":
            ref, shares = struct.unpack_from(">QI", m, 11)
            if ref not in self.orders:
                self.counters["unknown_ref"] += 1
            else:
                self._take(ref, shares)
        elif t == "D":
            (ref,) = struct.unpack_from(">Q", m, 11)
            if ref not in self.orders:
                self.counters["unknown_ref"] += 1
            else:
                self._take(ref, self.orders[ref][3])
        elif t == "U":
            ref, new_ref, shares, price = struct.unpack_from(">QQII", m, 11)
            if shares == 0:
                self.counters["bad_field"] += 1
                return
            if ref not in self.orders:
                self.counters["unknown_ref"] += 1
            else:
                loc, side = self.orders[ref][0], self.orders[ref][1]
                self._take(ref, self.orders[ref][3])
                self._add(loc, new_ref, side, shares, price)
        elif t == "P":
            side = chr(m[19])
            shares, _stock, price = struct.unpack_from(">I8sI", m, 20)
            if side not in ("B", "S") or locate == 0:
                self.counters["bad_field"] += 1
                return
            if shares > 0:
                self.last[locate] = (price, shares, ts)
        elif t == "Q":
            (shares,) = struct.unpack_from(">Q", m, 11)
            (price,) = struct.unpack_from(">I", m, 27)
            if locate == 0:
                self.counters["bad_field"] += 1
                return
            if shares > 0:
                self.last[locate] = (price, shares, ts)
        elif t == "H":
            if locate == 0 or chr(m[19]) not in ("H", "P", "Q", "T"):
                self.counters["bad_field"] += 1
                return
            self.state[locate] = chr(m[19])
        elif t == "R":
            if locate == 0:
                self.counters["bad_field"] += 1
                return
            self.names[locate] = m[11:19].decode("latin-1").rstrip(" ")
        elif t == "S":
            self.event = chr(m[11])
        self.counters["messages"] += 1

    def _add(self, locate: int, ref: int, side: str, shares: int, price: int) -> None:
        if ref in self.orders:
            self.counters["duplicate_add"] += 1
            return
        before = self.best(locate, side)
        self.orders[ref] = [locate, side, price, shares]
        level = self.levels.setdefault((locate, side), {}).setdefault(price, [0, 0])
        level[0] += shares
        level[1] += 1
        at_top = before is None or (price >= before if side == "B" else price <= before)
        bid, ask = self.best(locate, "B"), self.best(locate, "S")
        if at_top and bid is not None and ask is not None and bid >= ask:
            self.counters["crossed_book"] += 1

    def _take(self, ref: int, shares: int) -> int:
        locate, side, price, remaining = self.orders[ref]
        if shares > remaining:
            self.counters["over_execution"] += 1
            shares = remaining
        level = self.levels[(locate, side)][price]
        level[0] -= shares
        self.orders[ref][3] = remaining - shares
        if remaining - shares == 0:
            del self.orders[ref]
            level[1] -= 1
            if level[1] == 0:
                del self.levels[(locate, side)][price]
        return shares

    def _execute(self, ref: int, shares: int, price: int | None, printable: bool, ts: int) -> None:
        if ref not in self.orders:
            self.counters["unknown_ref"] += 1
            return
        locate, order_price = self.orders[ref][0], self.orders[ref][2]
        done = self._take(ref, shares)
        if printable and done > 0:
            self.last[locate] = (order_price if price is None else price, done, ts)

    # ---------------------------------------------------------------- reads

    def best(self, locate: int, side: str) -> int | None:
        prices = self.levels.get((locate, side))
        if not prices:
            return None
        return max(prices) if side == "B" else min(prices)

    def depth(self, locate: int, side: str, n: int = 10) -> list[tuple[int, int, int]]:
        prices = self.levels.get((locate, side), {})
        ordered = sorted(prices, reverse=(side == "B"))[:n]
        return [(p, prices[p][0], prices[p][1]) for p in ordered]

    def top(self, locate: int) -> tuple:
        bid, ask = self.best(locate, "B"), self.best(locate, "S")
        last = self.last.get(locate)
        return (bid, self.levels[(locate, "B")][bid][0] if bid is not None else 0,
                ask, self.levels[(locate, "S")][ask][0] if ask is not None else 0,
                last[0] if last else None)

    def halted(self, locate: int) -> bool:
        return self.state.get(locate, "T") != "T"
