"""Identifiers, timestamps and safe storage keys.

Example:
    >>> encode_segment("../a b/✓")
    '%2E%2E%2Fa%20b%2F%E2%9C%93'
    >>> len(new_job_id())
    8
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import random
import re
import secrets
import string
import time
from datetime import datetime, timezone
from urllib.parse import quote, unquote

from .errors import ValidationError
from .jsonio import valid_unicode

_ID_ALPHABET = string.ascii_letters + string.digits
_SAFE = string.ascii_letters + string.digits + "_-"
_MAX_SEGMENT = 180
NAME_MAX = 200
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def new_job_id() -> str:
    """A random job id: 8 letters and digits (never starts with '-', unlike the original)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def new_uid() -> str:
    """128 random bits as 32 hex digits."""
    return secrets.token_hex(16)


def original_uid(name: str) -> str:
    """The uid of an experiment whose document has none (the original format): derived
    from its name, so that every process reading it finds its jobs in the same place.

    >>> original_uid("MinimizeSimple") == original_uid("MinimizeSimple") != original_uid("Other")
    True
    """
    return hashlib.sha256(f"schedy original experiment/{name}".encode()).hexdigest()[:32]


def new_revision() -> str:
    """A fresh revision: every write carries one so that every write changes the ETag.

    Only unique, not secret: the random module (seeded from the OS, again in a forked child)
    spares each write a system call.
    """
    return f"{random.getrandbits(64):016x}"


def check_name(kind: str, name: object) -> str:
    """Return ``name`` if it can name an experiment or job, else raise ValidationError."""
    if not isinstance(name, str):
        raise ValidationError(f"{kind} must be a string, not {type(name).__name__}")
    if not name:
        raise ValidationError(f"{kind} must not be empty")
    if len(name) > NAME_MAX:
        raise ValidationError(f"{kind} is longer than {NAME_MAX} characters")
    if _CONTROL.search(name):
        raise ValidationError(f"{kind} {name!r} has a control character")
    if not valid_unicode(name):
        raise ValidationError(f"{kind} {name!r} is not valid Unicode (it has a lone surrogate)")
    return name


def suffixed_id(root: str, suffix: str) -> str:
    """The job id ``root + suffix`` (a retry's, say), cut to NAME_MAX characters: a root
    too long for it keeps a hash of all of it, so that two long roots never give one id.

    >>> suffixed_id("a1", "-2")
    'a1-2'
    >>> long = suffixed_id("x" * 199 + "A", "-2")
    >>> len(long) == NAME_MAX and long != suffixed_id("x" * 199 + "B", "-2")
    True
    """
    if len(root) + len(suffix) <= NAME_MAX:
        return root + suffix
    digest = hashlib.sha256(root.encode("utf-8")).hexdigest()[:8]
    return f"{root[:NAME_MAX - len(suffix) - 9]}~{digest}{suffix}"


@functools.lru_cache(maxsize=4096)  # the same experiment and job names are encoded on every claim
def encode_segment(name: str) -> str:
    """Encode a name as one key segment / file name: only ``[A-Za-z0-9_%-]``.

    Dots and slashes are encoded, so no name can mean a parent directory or a path.
    Long names are shortened with a hash, keeping file names under 255 bytes; ``~``
    is encoded (``quote`` leaves it), so that no name encodes to a shortened one.

    >>> encode_segment("a/b.c~d")
    'a%2Fb%2Ec%7Ed'
    """
    encoded = quote(name, safe=_SAFE).replace(".", "%2E").replace("~", "%7E")
    if len(encoded) > _MAX_SEGMENT:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]
        encoded = f"{encoded[:_MAX_SEGMENT - 34]}~~{digest}"
    return encoded


def decode_segment(segment: str) -> str:
    """Inverse of ``encode_segment`` for names it did not shorten."""
    return unquote(segment)


def utcnow() -> str:
    """The current UTC time in the wire format (microseconds, 'Z')."""
    return format_time(time.time())


def format_time(seconds: float) -> str:
    """Seconds since the epoch to the wire format.

    >>> format_time(0.5)
    '1970-01-01T00:00:00.500000Z'
    """
    global _last_second
    fraction, whole = math.modf(seconds)  # rounded as datetime rounds
    micro = round(fraction * 1_000_000)
    if micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    # A claim stamps several times a millisecond: the whole second is formatted once.
    second, text = _last_second
    if second != whole:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _last_second = (whole, text)
    return f"{text}.{micro:06d}Z"


_last_second: tuple[float, str] = (float("nan"), "")


def parse_time(text: str) -> float:
    """The wire format's timestamp to seconds since the epoch."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def order_key(timestamp: str) -> str:
    """A timestamp as a key segment that sorts in time order."""
    return timestamp.replace("-", "").replace(":", "").replace(".", "")


def worker_identity() -> dict:
    """Who this process is: a unique id, the host and the pid."""
    global _WORKER
    if _WORKER is None or _WORKER["pid"] != os.getpid():
        import socket

        _WORKER = {"id": secrets.token_hex(8), "host": socket.gethostname(), "pid": os.getpid()}
    return dict(_WORKER)


_WORKER: dict | None = None
