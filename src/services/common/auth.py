"""Bearer-token authentication and roles for gRPC calls.

Tokens are configured by their SHA-256 digest, never in clear text; a call
presents ``authorization: Bearer <token>`` metadata. Roles: ``admin`` may do
everything, ``trader`` everything but admin calls.
"""
import hashlib
import hmac
from dataclasses import dataclass

import grpc

ROLES = ("admin", "trader")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a call."""

    name: str
    role: str


ANONYMOUS = Identity("anonymous", "admin")


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A configured token: its SHA-256 hex digest, owner and role."""

    name: str
    sha256: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"token {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"token {self.name!r}: sha256 must be 64 lowercase hex digits")


class AuthError(Exception):
    """A call is not allowed; carries the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class TokenAuth:
    """Checks bearer tokens and roles; with no tokens configured, auth is off.

    Parameters
    ----------
    tokens : list of TokenEntry
    """

    def __init__(self, tokens: list[TokenEntry]):
        self._by_digest = {entry.sha256: entry for entry in tokens}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def authenticate(self, metadata, admin: bool) -> Identity:
        """Return the caller's identity, or raise AuthError.

        Raises
        ------
        AuthError
            UNAUTHENTICATED without a valid token; PERMISSION_DENIED when an
            admin call comes without the admin role.
        """
        if not self._by_digest:
            return ANONYMOUS
        header = next((value for key, value in metadata or () if key == "authorization"), None)
        if header is None or not header.startswith("Bearer "):
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        digest = hashlib.sha256(header[7:].encode()).hexdigest()
        entry = self._by_digest.get(digest)
        # Constant-time confirmation of the hit, so timing tells nothing about near misses.
        if entry is None or not hmac.compare_digest(entry.sha256, digest):
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")
        if admin and entry.role != "admin":
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED, f"{entry.name} lacks the admin role")
        return Identity(entry.name, entry.role)


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest to put in the configuration for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()
