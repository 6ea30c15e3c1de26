"""The example strategy: checks what one more lot of a symbol would do to its account, periodically.

Configuration: ``symbol`` (default ``"AAPL"``), ``quantity`` (default 1),
``interval`` (seconds). It never trades; it logs the engine's answer to stderr.
"""
from __future__ import annotations

import sys

from riskcore_services.control.sdk import Strategy


class PositionWatcher(Strategy):
    interval = 1.0

    def on_start(self) -> None:
        self.symbol = str(self.config.get("symbol", "AAPL"))
        self.quantity = int(self.config.get("quantity", 1))
        self.checks = 0

    def on_tick(self) -> None:
        if self.risk is None:
            return
        answer = self.risk.check_position(self.symbol, self.quantity, "BUY")
        self.checks += 1
        print(f"{self.name}: BUY {self.quantity} {self.symbol} on {self.account}: "
              f"{'accepted' if answer.accepted else answer.reason}", file=sys.stderr, flush=True)
