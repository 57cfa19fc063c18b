"""Retry settings of the store clients, under the names the original client documented.

Both are read when a request fails, so a script may change them at any time:

* ``NUM_AUTH_RETRIES``: how many times a request that the Schedy service refused for its
  token (401) is sent again, a second apart, before ``AuthenticationError`` is raised. A
  service trusts its copy of the token list for two seconds (``schedy.server.tokens``),
  so a token made moments ago through another replica can be refused until the copy is
  read again; two retries outlast that. A client with no token is refused at once.
* ``Retry.BACKOFF_MAX``: the longest wait, in seconds, before a request is sent again
  after a failure the store may recover from (no connection, a dropped answer, 5xx or an
  S3 throttle). Both the http and the s3 backends wait a random time up to
  ``min(BACKOFF_MAX, base * 2 ** (attempt - 1))`` (exponential backoff, full jitter).

Example:
    >>> import schedy
    >>> schedy.core.NUM_AUTH_RETRIES
    2
    >>> schedy.core.Retry.BACKOFF_MAX = 0.5  # fail over faster
    >>> all(schedy.core.Retry.delay(attempt, 0.1) <= 0.5 for attempt in range(1, 20))
    True
    >>> schedy.core.Retry.BACKOFF_MAX = 5.0
"""

from __future__ import annotations

import random

#: Retries of a request refused with 401 before AuthenticationError (see the module docstring).
NUM_AUTH_RETRIES = 2
#: Seconds between two of those retries.
AUTH_RETRY_SECONDS = 1.0


class Retry:
    """Backoff of the requests that the store clients send again (see the module docstring)."""

    #: The longest wait before a retry, in seconds.
    BACKOFF_MAX = 5.0

    @classmethod
    def delay(cls, attempt: int, base: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...) of a request,
        for a backend whose first wait is at most ``base`` seconds."""
        return random.uniform(0, max(0.0, min(cls.BACKOFF_MAX, base * 2 ** (attempt - 1))))
