"""The exceptions raised at the kernel's Python boundary.

A rejected order is a :class:`~riskcore.Decision`, never an exception; these
are for calls that cannot be carried out (bad configuration, unknown ids,
malformed events). Each also subclasses the builtin a caller would expect.
"""


class RiskError(Exception):
    """Base class of every error the kernel raises."""


class _LookupError(RiskError, KeyError):
    # KeyError quotes its message in str(); keep the message readable.
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidInputError(RiskError, ValueError):
    """A value is out of its domain: non-finite, non-positive, off-grid."""


class CapacityError(InvalidInputError):
    """A fill or mark would take a kept total past the engine's capacity (2^62 micro-units)."""


class InvalidConfigError(InvalidInputError):
    """An instrument, account or limit definition is inconsistent."""


class UnknownSymbolError(_LookupError):
    """No instrument with that symbol."""


class UnknownAccountError(_LookupError):
    """No account with that name or id."""


class UnknownOrderError(_LookupError):
    """No order with that id."""


class StateError(RiskError, RuntimeError):
    """A snapshot cannot be restored, or the state failed its consistency check."""


class MalformedMessageError(InvalidInputError):
    """A market-data message cannot be decoded; ``reason`` is the book's counter name for it."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
