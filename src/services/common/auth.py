"""Bearer-token authentication, roles and account scopes for gRPC calls.

Tokens are configured by their SHA-256 digest, never in clear text; a call
presents ``authorization: Bearer <token>`` metadata. Roles: ``admin`` may do
everything on every account, ``trader`` everything but admin calls, and only
on the accounts of its scope: the subtrees of the account tree rooted at the
accounts its configuration lists (``accounts = [...]``, required for a
trader). The caller's identity is kept in a context variable for the task
that serves the call, so the data plane checks the scope where it resolves
the account of a call (:func:`check_account`, :func:`check_order`) without
the identity being passed through every method.
"""
import contextvars
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Optional, TypeVar

from riskcore_services.common import logging as _logging
from riskcore_services.common.errors import PermissionDenied, Unauthenticated

ROLES = ("admin", "trader")
# The tree is at most 8 levels deep (README, "Accounts"); a longer walk means a broken tree.
_MAX_DEPTH = 16

log = _logging.get_logger("auth")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a call, and the accounts it may act on (None: every account)."""

    name: str
    role: str
    accounts: Optional[frozenset[str]] = None
    # account name -> within the scope; ancestry never changes once an account exists.
    _within: dict = field(default_factory=dict, compare=False, repr=False)


ANONYMOUS = Identity("anonymous", "admin")

# The identity of the call the current task serves; None outside calls (recovery, replay, the
# day roller), which act for the engine itself.
_caller: contextvars.ContextVar[Optional[Identity]] = contextvars.ContextVar("riskcore_caller", default=None)


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A configured token: its SHA-256 hex digest, owner, role and (traders) account scope."""

    name: str
    sha256: str
    role: str
    accounts: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"token {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"token {self.name!r}: sha256 must be 64 lowercase hex digits")
        if self.role == "trader" and not self.accounts:
            raise ValueError(f"token {self.name!r}: a trader token needs accounts = [...], the accounts whose "
                             f"subtrees it may act on (the firm's name for all of them)")
        if self.role == "admin" and self.accounts is not None:
            raise ValueError(f"token {self.name!r}: an admin token acts on every account; remove accounts "
                             f"or make it a trader token")


def _peer() -> str:
    """The address of the current call's client, for log lines (``?`` outside a call)."""
    call = _logging._call.get()
    try:
        return call.context.peer()
    except AttributeError:
        return "?"


class TokenAuth:
    """Checks bearer tokens and roles; with no tokens configured, auth is off.

    Parameters
    ----------
    tokens : list of TokenEntry
    """

    def __init__(self, tokens: list[TokenEntry]):
        self._by_digest = {entry.sha256: entry for entry in tokens}
        self._identities = {entry.sha256: Identity(entry.name, entry.role,
                                                   None if entry.accounts is None else frozenset(entry.accounts))
                            for entry in tokens}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def authenticate(self, metadata, admin: bool) -> Identity:
        """Return the caller's identity and make it the current task's caller.

        Refusals are logged at warning with the client's address; admin calls
        that pass are logged with the token's name (with auth off there is none).

        Raises
        ------
        Unauthenticated, PermissionDenied
            UNAUTHENTICATED without a valid token; PERMISSION_DENIED when an
            admin call comes without the admin role.
        """
        if not self._by_digest:
            identity = ANONYMOUS
        else:
            header = next((value for key, value in metadata or () if key == "authorization"), None)
            if header is None or not header.startswith("Bearer "):
                log.warning("call refused: missing bearer token", peer=_peer())
                raise Unauthenticated("missing bearer token")
            digest = hashlib.sha256(header[7:].encode()).hexdigest()
            entry = self._by_digest.get(digest)
            # Constant-time confirmation of the hit, so timing tells nothing about near misses.
            if entry is None or not hmac.compare_digest(entry.sha256, digest):
                log.warning("call refused: invalid bearer token", peer=_peer())
                raise Unauthenticated("invalid bearer token")
            if admin and entry.role != "admin":
                log.warning("call refused: admin role needed", token=entry.name, peer=_peer())
                raise PermissionDenied(f"{entry.name} lacks the admin role")
            identity = self._identities[digest]
            if admin:
                log.info("admin call", token=identity.name, peer=_peer())
        _caller.set(identity)
        return identity


def _refuse(identity: Identity, what: str) -> PermissionDenied:
    log.warning("call refused: outside the token's accounts", token=identity.name, target=what, peer=_peer())
    return PermissionDenied(
                     f"{what} is outside the accounts of token {identity.name!r} ({', '.join(sorted(identity.accounts or ()))})")


def _within(engine, account: str, roots: frozenset[str]) -> Optional[bool]:
    """Whether ``account`` is one of ``roots`` or below one; None when the engine has no such account."""
    node: Optional[str] = account
    for _ in range(_MAX_DEPTH):
        if node is None:
            return False
        if node in roots:
            return True
        try:
            node = engine.parent(node)
        except (KeyError, ValueError):
            return None
    return False


def check_account(engine, account: str) -> str:
    """Return ``account`` if the current caller may act on it.

    Outside a call (recovery, replay, the day roller) and for tokens without
    a scope (admin, or auth off) every account passes. An account the engine
    does not know is outside every scope.

    Raises
    ------
    Unauthenticated, PermissionDenied
        PERMISSION_DENIED naming the account.

    Notes
    -----
    A context-variable read for unscoped callers; a dict lookup for scoped
    ones once an account has been seen.
    """
    identity = _caller.get()
    if identity is None or identity.accounts is None:
        return account
    within = identity._within.get(account)
    if within is None:
        within = _within(engine, account, identity.accounts)
        if within is None:
            raise _refuse(identity, f"account {account!r}")
        identity._within[account] = within
    if not within:
        raise _refuse(identity, f"account {account!r}")
    return account


def check_accounts(engine, accounts, default: str) -> None:
    """:func:`check_account` for every account of a batch (an empty name is ``default``), before any row
    is applied. Costs nothing more than a context-variable read for unscoped callers."""
    identity = _caller.get()
    if identity is None or identity.accounts is None:
        return
    for account in set(accounts):
        check_account(engine, account or default)


def check_orders(engine, order_ids: list, client_order_ids: list) -> list:
    """:func:`check_order` for every row of a batch, before any row is applied; return ``order_ids``."""
    identity = _caller.get()
    if identity is not None and identity.accounts is not None:
        for order_id, client_order_id in zip(order_ids, client_order_ids):
            check_order(engine, order_id, client_order_id)
    return order_ids


_OrderId = TypeVar("_OrderId", bound=Optional[int])


def check_order(engine, order_id: _OrderId, client_order_id: str) -> _OrderId:
    """Return ``order_id`` if the current caller may act on the order's account.

    An id the engine does not know (never booked, or forgotten after its day)
    passes: the call then acts on no account and gets its UNKNOWN_ORDER or
    NOT_FOUND answer.

    Raises
    ------
    Unauthenticated, PermissionDenied
        PERMISSION_DENIED naming the order and its account.
    """
    identity = _caller.get()
    if identity is None or identity.accounts is None or order_id is None or order_id < 0:
        return order_id
    try:
        account = engine.order(order_id).account
    except (KeyError, ValueError):
        return order_id
    try:
        check_account(engine, account)
    except PermissionDenied:
        raise PermissionDenied(
                        f"order {client_order_id!r} is in account {account!r}, outside the accounts of token "
                        f"{identity.name!r}") from None
    return order_id


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest to put in the configuration for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()
