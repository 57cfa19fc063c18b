"""API tokens of the Schedy service: stored as hashes in the service's own store.

A token is 256 random bits, shown once when it is made. The store keeps only its
SHA-256 digest (a fast hash is enough: the token is random, not a password), in one
document under a reserved reference that no experiment can have (its name holds a
control character, which experiment names may not). So the tokens live wherever the
experiments live: every replica of the service over one S3 bucket sees the same tokens,
and revoking a token on one replica revokes it on all within ``CACHE_SECONDS``.

Example:
    >>> from schedy.config import open_storage
    >>> tokens = TokenStore(open_storage(str(getfixture("tmp_path"))))
    >>> secret = tokens.create("ci")
    >>> tokens.verify(secret), tokens.verify("schedy_wrong")
    ('ci', None)
    >>> [t["name"] for t in tokens.list()]
    ['ci']
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from ..errors import ConfigError, ResourceExistsError, ResourceNotFoundError, UnsafeUpdateError
from ..names import check_name, utcnow
from ..storage import ExperimentRef, IndexedStorage

#: Where the token document lives: a name no experiment can have.
TOKENS_REF = ExperimentRef("\x00service", "0" * 32)
TOKENS_KEY = "tokens"
#: How long a server trusts its copy of the token document.
CACHE_SECONDS = 2.0
PREFIX = "schedy_"


def digest(token: str) -> str:
    """The SHA-256 hex digest the store keeps instead of ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Create, list, revoke and check tokens kept in ``storage``."""

    def __init__(self, storage: IndexedStorage):
        if not isinstance(storage, IndexedStorage):
            raise ConfigError(f"tokens must be kept in the service's own store (files, s3), not {storage.url}")
        self.storage = storage
        self._cache: tuple[float, dict] | None = None
        self._lock = threading.Lock()

    def _read(self) -> tuple[dict, str | None]:
        stored = self.storage.get_state(TOKENS_REF, TOKENS_KEY)
        if stored is None:
            return {"tokens": {}}, None
        return stored.doc, stored.etag

    def _change(self, change) -> None:
        # If-Match loop: two admins changing tokens at once never lose each other's change.
        for _ in range(32):
            doc, etag = self._read()
            tokens = dict(doc.get("tokens", {}))
            change(tokens)
            try:
                self.storage.put_state(TOKENS_REF, TOKENS_KEY, {"tokens": tokens}, etag, create=etag is None)
            except (UnsafeUpdateError, ResourceExistsError):
                continue
            with self._lock:
                self._cache = None
            return
        raise UnsafeUpdateError("the token list kept changing; try again", 412)

    def create(self, name: str) -> str:
        """Make a token named ``name``; return it (the only time it is ever shown)."""
        check_name("token name", name)
        token = PREFIX + secrets.token_urlsafe(32)

        def add(tokens: dict) -> None:
            if name in tokens:
                raise ResourceExistsError(f"token {name!r} exists already (revoke it first)", 409)
            tokens[name] = {"sha256": digest(token), "created": utcnow()}

        self._change(add)
        return token

    def revoke(self, name: str) -> None:
        """Delete the token named ``name``; ResourceNotFoundError if there is none."""

        def remove(tokens: dict) -> None:
            if tokens.pop(name, None) is None:
                raise ResourceNotFoundError(f"token {name!r} does not exist", 404)

        self._change(remove)

    def list(self) -> list[dict]:
        """Names and creation times of the tokens (never the tokens themselves)."""
        tokens = self._read()[0].get("tokens", {})
        return [{"name": name, "created": info.get("created")} for name, info in sorted(tokens.items())]

    def _current(self) -> dict:
        with self._lock:
            if self._cache is not None and time.monotonic() - self._cache[0] < CACHE_SECONDS:
                return self._cache[1]
        tokens = self._read()[0].get("tokens", {})
        with self._lock:
            self._cache = (time.monotonic(), tokens)
        return tokens

    def verify(self, token: str) -> str | None:
        """The name of ``token`` if it is valid, else None. Constant time in the token."""
        if not isinstance(token, str) or len(token) > 200:
            return None
        presented = digest(token)
        found = None
        # Compare with every stored digest, without stopping early, in constant time each.
        for name, info in self._current().items():
            if hmac.compare_digest(presented, str(info.get("sha256", ""))):
                found = name
        return found


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None.

    >>> parse_bearer("Bearer abc"), parse_bearer("Basic abc"), parse_bearer(None)
    ('abc', None, None)
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()

