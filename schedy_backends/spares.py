"""Temporary files of the files store, recycled: a write reuses the file of a version that
an earlier write replaced instead of allocating a new one.

Why: on ext4 (and most file systems) a rename over an existing document frees the old
version's blocks, and the next temporary file allocates new ones. Freeing and allocating
cost CPU and, on a file system mounted with ``discard``, a synchronous trim of each freed
block; with eight processes they were more than a quarter of a claim cycle's file-system
time (``bench/claims_floor.py --fresh``). Overwriting an allocated file costs neither.

Safety: a displaced file is reused only once an fsync of its directory that began after
the rename has ended (see :meth:`Spares.synced`): until then a crash may undo the rename
that displaced it, and the document's name would point at the file again, which must
still hold the old version. And
a reader may still hold the version a write displaced (it opened the file just before the
rename). That file is therefore reused only ``REUSE_SECONDS`` after it was displaced, and
:meth:`FileObjectStore._read` retries any read that took longer than ``READ_SECONDS``
from open to the end of its read; so a read never sees a file being rewritten. Both are
durations, each measured on its own process's clock (the reader's keeps counting while
its machine sleeps), so they hold across machines sharing the store.

Each process keeps its files in its own directory, ``.tmp/<pid>.<random>/``, which it
locks (``flock`` on ``.lock`` inside) for as long as it lives, and removes when it exits.
The first write of a process removes the directories whose lock is free: those of
processes that crashed or were killed.

Example:
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> spares = Spares(root)
    >>> tmp = spares.write(b"{}", sync=False)
    >>> os.replace(tmp, os.path.join(root, "doc.json"))
"""

from __future__ import annotations

import atexit
import collections
import errno
import fcntl
import os
import secrets
import shutil
import stat
import threading
import time
from typing import Callable

#: How long after it was displaced a document's old file may be rewritten.
REUSE_SECONDS = 1.0
#: A read that took longer than this (open to end of read) is made again.
READ_SECONDS = 0.5
#: Spares kept waiting beyond this are deleted (a burst of writes, a mass deletion).
MAX_SPARES = 2048
#: A directory still being set up (hidden name) is left alone this long.
_SETUP_SECONDS = 60.0


def making_directory(path: str, make: Callable, *args):
    """``make(*args)``, which creates ``path``; if ``path``'s directory does not exist yet,
    create it and try once more (the first document of an experiment, say)."""
    try:
        return make(*args)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return make(*args)


class Spares:
    """The temporary files of one process in the store at ``root``.

    Thread-safe; a forked child must make its own (see ``FileObjectStore._spares``).
    """

    def __init__(self, root: str, reuse_seconds: float | None = None):
        self.reuse_seconds = REUSE_SECONDS if reuse_seconds is None else reuse_seconds
        self._tmp = os.path.join(root, ".tmp")
        self._lock = threading.Lock()
        # Displaced files wait for their directory's next fsync (by directory), then in the
        # order they were displaced, each ready REUSE_SECONDS after it was displaced; files
        # given back unused are ready at once.
        self._unsynced: dict[str, list[tuple[int, float, str]]] = {}  # directory -> [(number, ready at, path)]
        #: How many displaced files were kept so far: see :meth:`synced`.
        self.kept = 0
        self._waiting: collections.deque[tuple[float, str]] = collections.deque()  # (ready at, path)
        self._fresh: list[str] = []
        self._count = 0
        self._closed = False
        self._dir = self._own_directory()
        self.recycling = True
        atexit.register(self._close_at_exit, os.getpid())

    # -- the process's directory
    def _own_directory(self) -> str:
        """Create this process's directory, locked before it becomes visible under its name
        (so no cleaner can take it for a dead one), after removing those of dead processes."""
        os.makedirs(self._tmp, exist_ok=True)
        name = f"{os.getpid()}.{secrets.token_hex(4)}"
        hidden, final = os.path.join(self._tmp, "." + name), os.path.join(self._tmp, name)
        os.mkdir(hidden)
        self._lock_fd = os.open(os.path.join(hidden, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        os.rename(hidden, final)
        self._remove_dead(keep=name)
        return final

    def _remove_dead(self, keep: str) -> None:
        try:
            names = os.listdir(self._tmp)
        except FileNotFoundError:
            return
        for name in names:
            if name != keep and _is_dead(os.path.join(self._tmp, name)):
                shutil.rmtree(os.path.join(self._tmp, name), ignore_errors=True)

    # -- files
    def _new_name(self) -> str:
        with self._lock:
            self._count += 1
            return f"{self._dir}/{self._count}"

    def _ready(self) -> str | None:
        with self._lock:
            if self._fresh:
                return self._fresh.pop()
            if self._waiting and self._waiting[0][0] <= time.monotonic():
                return self._waiting.popleft()[1]
        return None

    def write(self, data: bytes, sync: bool = True) -> str:
        """A temporary file of this process's holding ``data``, fsynced if ``sync``: a spare
        overwritten in place if one is ready, else a new file."""
        path = self._ready()
        if path is not None:
            fd = self._own_file(path)
            if fd is None:
                path = None
        if path is None:
            path = self._new_name()
            # The directory is missing only if it was removed by hand.
            fd = making_directory(path, os.open, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            rest = memoryview(data)
            while rest:  # a short write (a disk filling up) raises ENOSPC on the next call
                written = os.write(fd, rest)
                if not written:
                    raise OSError(errno.EIO, "the file system accepted no bytes", path)
                rest = rest[written:]
            os.ftruncate(fd, len(data))
            if sync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink(path)
            raise
        os.close(fd)
        return path

    @staticmethod
    def _own_file(path: str) -> int | None:
        """``path``, a spare, opened to be rewritten; None (and the spare dropped) unless it is
        a plain file with no other name: a document that was a symbolic link, or a hard link
        of a file elsewhere (a backup made with ``cp -al``), displaced that link, and
        rewriting it would write through to a file that is not the store's."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)  # no O_TRUNC: that would free the blocks
        except FileNotFoundError:  # removed by hand: start a new one
            return None
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            _unlink(path)  # a symbolic link: only its name goes
            return None
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            return fd
        os.close(fd)
        _unlink(path)
        return None

    def give_back(self, path: str) -> None:
        """``path``, from :meth:`write`, was never visible under a document's name: reuse
        it at once."""
        with self._lock:
            self._fresh.append(path)

    def published(self, tmp: str) -> None:
        """``tmp`` was linked under a document's name: it is the document's now, no longer
        a spare; drop its temporary name."""
        _unlink(tmp)

    def replace(self, tmp: str, path: str) -> None:
        """Move ``tmp`` (from :meth:`write`) to ``path`` atomically, keeping the file it
        displaces as a spare. The caller holds ``path``'s lock, so nothing else replaces
        ``path`` in between; nothing may move that file to another name either (it would
        be live there and rewritten as a spare). On failure ``path`` and ``tmp`` are
        unchanged."""
        displaced = self._link_away(path)
        try:
            os.replace(tmp, path)
        except BaseException:
            if displaced is not None:
                _unlink(displaced)
            raise
        if displaced is not None:
            self._keep(displaced, os.path.dirname(path))

    def remove(self, path: str) -> None:
        """Delete the document at ``path`` (the caller holds its lock), keeping its file as a
        spare. Raises FileNotFoundError if there is none."""
        if not self.recycling:
            os.unlink(path)
            return
        spare = self._new_name()
        try:
            os.rename(path, spare)
        except OSError as e:
            # The document is gone (FileNotFoundError for the caller), or this process's
            # directory is (removed by hand), or .tmp is on another file system.
            if not (e.errno == errno.EXDEV or (isinstance(e, FileNotFoundError) and os.path.lexists(path))):
                raise
            os.unlink(path)
            return
        self._keep(spare, os.path.dirname(path))

    def _link_away(self, path: str) -> str | None:
        if not self.recycling:
            return None
        spare = self._new_name()
        try:
            os.link(path, spare)
        except (FileNotFoundError, NotADirectoryError):
            return None  # a new document: nothing is displaced
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
            self.recycling = False  # no hard links here: write new files, as most stores do
            return None
        return spare

    def _keep(self, path: str, directory: str) -> None:
        with self._lock:
            self.kept += 1
            self._unsynced.setdefault(directory, []).append((self.kept, time.monotonic() + self.reuse_seconds, path))

    def unsynced(self, directory: str) -> int:
        """How many files displaced from ``directory`` wait for its next fsync."""
        return len(self._unsynced.get(directory, ()))

    def synced(self, directory: str, kept: int) -> None:
        """``directory`` was fsynced, by an fsync that began when :attr:`kept` was ``kept``:
        the renames that displaced its files kept until then cannot be undone any more, so
        those files may be reused (once REUSE_SECONDS have passed). A file kept later (by
        another thread) may have been displaced after the fsync began: it waits for the next.

        Example: ``kept = spares.kept; os.fsync(fd); spares.synced(directory, kept)``."""
        with self._lock:
            unsynced = self._unsynced.get(directory)
            if not unsynced:
                return
            count = 0
            while count < len(unsynced) and unsynced[count][0] <= kept:
                count += 1
            if not count:
                return
            self._waiting.extend((ready, path) for _, ready, path in unsynced[:count])
            del unsynced[:count]
            if not unsynced:
                del self._unsynced[directory]
            dropped = [self._waiting.popleft()[1] for _ in range(len(self._waiting) - MAX_SPARES)]
        for old in dropped:
            _unlink(old)

    def close(self) -> None:
        """Remove this process's directory and its files (also done at exit)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        shutil.rmtree(self._dir, ignore_errors=True)
        os.close(self._lock_fd)

    def _close_at_exit(self, pid: int) -> None:
        if os.getpid() == pid:  # not in a forked child that exits normally
            self.close()


def _is_dead(directory: str) -> bool:
    """True if ``directory`` under ``.tmp`` belongs to no live process: its lock is free, or
    it has none and has not changed for a minute (a directory of an older Schedy, or one
    whose process died while setting it up). A directory being set up (hidden name) is
    left alone for a minute: its lock may not be taken yet."""
    try:
        age = time.time() - os.stat(directory).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return False
    if age < _SETUP_SECONDS and os.path.basename(directory).startswith("."):
        return False
    try:
        fd = os.open(os.path.join(directory, ".lock"), os.O_RDWR)
    except FileNotFoundError:
        return age > _SETUP_SECONDS
    except (NotADirectoryError, PermissionError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # held: its process is alive
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
