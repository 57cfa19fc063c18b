"""Thread locks that a forked child makes afresh.

A child process starts with only the thread that called ``fork``: a lock that another
thread (a heartbeat, say) held at that moment stays held in the child forever, and the
child's first use of it would hang. Objects that guard their state with thread locks
register here, and each forked child gives them new locks before it runs any other code.

Example:
    >>> import threading
    >>> class Counter:
    ...     def __init__(self):
    ...         self._new_locks()
    ...         renew_locks_in_children(self)
    ...     def _new_locks(self):
    ...         self._lock = threading.Lock()
    >>> counter = Counter()
"""

from __future__ import annotations

import os
import weakref

_holders: "weakref.WeakSet" = weakref.WeakSet()


def renew_locks_in_children(holder) -> None:
    """Call ``holder._new_locks()`` in every child forked while ``holder`` lives."""
    _holders.add(holder)


def _in_child() -> None:
    for holder in list(_holders):
        holder._new_locks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
