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
* ``Retry.NOTICE_SECONDS``: a request still failing this long after it was first sent
  is reported once, as a warning in the log (on the command line, a line on stderr), so
  that a store out of reach does not look like a hang while the retries go on.

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

import logging
import random
import time

log = logging.getLogger("schedy")

#: Retries of a request refused with 401 before AuthenticationError (see the module docstring).
NUM_AUTH_RETRIES = 2
#: Seconds between two of those retries.
AUTH_RETRY_SECONDS = 1.0


class Retry:
    """Backoff of the requests that the store clients send again (see the module docstring).

    An instance follows the retries of one request: make it when the request is first sent.

    Example:
        >>> retry = Retry(base=0.001, attempts=3)
        >>> retry.wait(1, "the store did not answer")  # sleeps at most 0.001 s
    """

    #: The longest wait before a retry, in seconds.
    BACKOFF_MAX = 5.0
    #: Seconds after which a request that still fails is reported (once).
    NOTICE_SECONDS = 2.0

    def __init__(self, base: float, attempts: int) -> None:
        self.base = base
        self.attempts = attempts
        self.started = time.monotonic()
        self._noticed = False

    def wait(self, attempt: int, failure: str) -> None:
        """Sleep before the request is sent again, ``failure`` being why attempt number
        ``attempt`` (1, 2, ...) failed."""
        if not self._noticed and time.monotonic() - self.started >= self.NOTICE_SECONDS:
            self._noticed = True
            log.warning("%s; retrying (%d of %d attempts made)", failure, attempt, self.attempts)
        time.sleep(self.delay(attempt, self.base))

    @classmethod
    def delay(cls, attempt: int, base: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...) of a request,
        for a backend whose first wait is at most ``base`` seconds."""
        return random.uniform(0, max(0.0, min(cls.BACKOFF_MAX, base * 2 ** (attempt - 1))))
