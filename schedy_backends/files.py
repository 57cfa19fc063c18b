"""The files backend: a directory of plain JSON files; the embedded default store.

Writes go to a temporary file (in ``.tmp/<pid>.<random>/``, a directory of the writing
process's own, where the files of replaced versions are recycled: see
:mod:`schedy_backends.spares`), are fsynced, then moved into place atomically:
``os.link`` for create-only writes (it fails if the name exists), ``os.replace`` under a
lock for If-Match writes, whose condition is checked under the lock before anything is
written. Every write makes its index markers (``before_write``) under the lock too.
Locks are ``flock`` on one of 256 striped lock files, so writers of different documents
rarely wait for each other.
Names are encoded into safe file names (see :func:`schedy.names.encode_segment`):
no experiment or job name can reach outside the directory.

The directory must be on a local file system or one with working ``flock`` (NFSv4).
The store's clock, used to judge lease ages, is the file system's modification time.
Index markers are written by :meth:`FileObjectStore.put_marker`, without a lock and
without recycling the file they replace. Every write is fsynced (file and directory),
with three exceptions that a crash cannot turn into a lost or torn document: the
deletion of an index marker (one that reappears after a power loss is dropped when next
met), the renewal of a marker (its mtime: a lease that looks older is only recovered
sooner), and the directory after a ``sync_name=False`` write (a RUNNING job, whose lease
marker is durable; see docs/architecture.md). Claims take a queued job by renaming its
queue marker (:meth:`FileObjectStore.take`).

Example:
    >>> import tempfile
    >>> store = FileObjectStore(tempfile.mkdtemp())
    >>> etag = store.put("a/b", b"{}", if_none_match=True)
    >>> store.get("a/b").etag == etag
    True
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import functools
import hashlib
import inspect
import itertools
import os
import random
import stat
import threading
import time
import zlib
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import unquote, urlparse

from schedy.errors import ConfigError, StorageError
from schedy.forks import renew_locks_in_children
from schedy.hookspecs import hookimpl
from schedy.objects import ObjectInfo, ObjectStorage, ObjectStore, PreconditionFailed, StoredObject
from schedy_backends.spares import MAX_SPARES, READ_SECONDS, Spares, making_directory

_STRIPES = 256
#: How long a process hands out queued keys from its last directory scan before scanning again.
SNAPSHOT_SECONDS = 2.0
_SUFFIX = ".json"
_SUFFIX_LENGTH = len(_SUFFIX)
#: How long the offset between this machine's clock and the store's is reused (see _now_estimate).
CLOCK_OFFSET_SECONDS = 1.0


_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)

# This process's id, kept current in forked children: per-process state (locks, spares) is
# looked up several times a claim, and getpid() is a system call each time.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _elapsed_clock() -> float:
    """Seconds on a clock that keeps counting while the machine sleeps (Linux), so that a
    read spanning a suspend counts as slow."""
    return time.clock_gettime(_CLOCK)


def _etag(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


_EMPTY_ETAG = _etag(b"")


def _storage_error(error: OSError, key_path: str | None) -> StorageError:
    # Of a move's two paths, the source is this store's own temporary file or marker; the
    # destination says where the store could not write. Some calls (os.utime) name no
    # path: then the document's.
    path = error.filename2 or error.filename or key_path
    where = f": {path}" if path else ""
    return StorageError(f"{error.strerror or error}{where}", None)


def _key_path(store: "FileObjectStore", args: tuple) -> str | None:
    """The path of the key a store method was called for (its first argument)."""
    return store._path(args[0].rstrip("/")) if args and isinstance(args[0], str) and args[0] else None


def _reported(method):
    """``method`` with the system errors that escape it (a file where the store's directory
    should be, no permission, a full disk) raised as one-line StorageErrors naming the path:
    every error of the Python API is a SchedyError."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def reported_items(self, *args, **kwargs):
            try:
                yield from method(self, *args, **kwargs)
            except OSError as e:
                raise _storage_error(e, _key_path(self, args)) from e

        return reported_items

    @functools.wraps(method)
    def reported(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as e:
            raise _storage_error(e, _key_path(self, args)) from e

    return reported


class FileObjectStore(ObjectStore):
    """An :class:`~schedy.objects.ObjectStore` in a directory. See the module docstring."""

    has_locks = True

    def __init__(self, root: str | os.PathLike, durable: bool = True):
        try:
            self.root = Path(root).expanduser().absolute()
        except RuntimeError:  # "~user/..." for a user this machine does not know
            raise ConfigError(f"no home directory for the files store path {str(root)!r}") from None
        self._root = str(self.root)  # plain strings on the hot path: pathlib costs more than the syscalls
        # Reads take a missing directory for an empty store, so a file where the store should
        # be would read as an empty store and fail only at the first write.
        try:
            is_directory = stat.S_ISDIR(os.stat(self._root).st_mode)
        except FileNotFoundError:
            is_directory = not os.path.islink(self._root)  # made by the first write, unless a link to nowhere
        except NotADirectoryError:
            is_directory = False
        except OSError as e:
            raise _storage_error(e, self._root) from e
        if not is_directory:
            raise StorageError(f"the files store path {self._root} is not a directory (or lies under a file, or links to nowhere)", None)
        self._clock = os.path.join(self._root, ".clock")
        self.url = self.root.as_uri()
        self.durable = durable
        self._lock_fds: dict[int, list[int | None]] = {}
        self._link_works = True
        self._snapshots: dict[str, tuple[float, list[str]]] = {}
        self._spares_by_pid: dict[int, Spares] = {}
        self._clock_offset = (float("-inf"), 0.0)  # (monotonic time taken, store clock - time.time())
        self._new_locks()
        renew_locks_in_children(self)

    def _new_locks(self) -> None:
        self._thread_locks = [threading.Lock() for _ in range(_STRIPES)]
        self._snapshot_lock = threading.Lock()
        self._spares_lock = threading.Lock()

    # -- paths and locks
    def _path(self, key: str) -> str:
        assert (".." not in key or "/../" not in f"/{key}/") and not key.startswith("/"), key
        return f"{self._root}/{key}{_SUFFIX}"

    def _lock_fd(self, stripe: int) -> int:
        # flock belongs to an open file description: a forked child needs its own.
        fds = self._lock_fds.get(_pid)
        if fds is None:
            fds = self._lock_fds[_pid] = [None] * _STRIPES
        fd = fds[stripe]
        if fd is None:
            lock_dir = self.root / ".locks"
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = fds[stripe] = os.open(lock_dir / f"{stripe:02d}", os.O_RDWR | os.O_CREAT, 0o644)
        return fd

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """``key``'s lock: its stripe's thread lock, then the stripe's file lock. A ``with``
        holds the thread lock, so that an exception a signal raises at any point (SIGTERM,
        made an exception while a job runs; Ctrl-C) releases it: a stripe left locked would
        hang every later write of the process on it. A file lock left held by such an
        exception is this process's own, released by its next use of the stripe or at exit."""
        stripe = zlib.crc32(key.encode()) % _STRIPES
        with self._thread_locks[stripe]:
            fd = self._lock_fd(stripe)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _sync_dir(self, directory: str) -> None:
        spares = self._spares_by_pid.get(_pid)  # (a process that only wrote markers has none)
        kept = spares.kept if spares is not None else 0
        if self.durable:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if spares is not None:
            spares.synced(directory, kept)

    def _spares(self) -> Spares:
        # Per process: a forked child must not rewrite the files its parent is reusing.
        pid = _pid
        spares = self._spares_by_pid.get(pid)
        if spares is None:
            with self._spares_lock:
                spares = self._spares_by_pid.get(pid)
                if spares is None:
                    spares = self._spares_by_pid[pid] = Spares(self._root)
        return spares

    def _read(self, path: str) -> StoredObject | None:
        # A read slower than READ_SECONDS is made again: the file it opened may have been
        # displaced and then reused for another write (see schedy_backends/spares.py). On a
        # file system where every read is that slow, the third read is taken as it is.
        for _ in range(3):
            started = _elapsed_clock()
            try:
                fd = os.open(path, os.O_RDONLY)
            except (FileNotFoundError, NotADirectoryError):
                return None
            try:
                info = os.fstat(fd)
                data = os.read(fd, info.st_size + 1)
                if len(data) != info.st_size:  # a short read, or a file written in place by hand
                    while more := os.read(fd, 1 << 16):
                        data += more
            finally:
                os.close(fd)
            if _elapsed_clock() - started < READ_SECONDS:
                break
        return StoredObject(data, _etag(data), info.st_mtime)

    # -- the ObjectStore contract
    @_reported
    def get(self, key: str) -> StoredObject | None:
        return self._read(self._path(key))

    @_reported
    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        sync_name: bool = True,
        before_write: Callable[[StoredObject | None], None] | None = None,
    ) -> str:
        path = self._path(key)
        if if_match is not None:
            # Compare first, then write, all under the lock: a writer that is going to lose
            # (a claim of a job just claimed by another) finds out before any fsync.
            with self._locked(key):
                current = self._read(path)
                if current is None or current.etag != if_match:
                    raise PreconditionFailed(key, missing=current is None)
                if before_write is not None:
                    before_write(current)
                self._move_into_place(self._spares().write(data, self.durable), path)
        elif if_none_match and self._link_works:
            tmp = self._spares().write(data, self.durable)
            with self._locked(key):  # (every write calls before_write under the lock: see _before)
                self._before(before_write, tmp)
                linked = self._link_into_place(tmp, path, key)
            if not linked:
                return self.put(key, data, if_none_match=True, sync_name=sync_name)  # no hard links here
        else:
            tmp = self._spares().write(data, self.durable)
            with self._locked(key):
                if if_none_match and os.path.exists(path):
                    self._spares().give_back(tmp)
                    raise PreconditionFailed(key)
                self._before(before_write, tmp)
                self._move_into_place(tmp, path)
        directory = os.path.dirname(path)
        if sync_name or self._spares().unsynced(directory) >= MAX_SPARES:
            self._sync_dir(directory)  # (the second case: to let the files it displaced be reused)
        return _etag(data)

    def _before(self, before_write: Callable[[StoredObject | None], None] | None, tmp: str) -> None:
        """Call ``before_write`` (its markers) under the key's lock, as an If-Match write
        does, so that no drop of a stale marker (delete, then read the job, under this
        lock) falls between a marker and its job write; on failure give back ``tmp``."""
        if before_write is None:
            return
        try:
            before_write(None)
        except BaseException:
            self._spares().give_back(tmp)
            raise

    def _move_into_place(self, tmp: str, path: str) -> None:
        """Under ``path``'s lock."""
        try:
            making_directory(path, self._spares().replace, tmp, path)
        except BaseException:
            self._spares().give_back(tmp)
            raise

    def _link_into_place(self, tmp: str, path: str, key: str) -> bool:
        """Create-only: link the temporary file at ``path`` (fails if the name exists, atomically,
        even on NFS). False if this file system has no hard links."""
        try:
            making_directory(path, os.link, tmp, path)
        except BaseException as e:
            self._spares().give_back(tmp)  # never visible as a document
            if isinstance(e, FileExistsError):
                raise PreconditionFailed(key) from None
            if not isinstance(e, OSError) or e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            self._link_works = False  # fall back to the lock
            return False
        self._spares().published(tmp)
        return True

    @_reported
    def put_marker(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if not data:
            self._touch(path)
            return
        # A marker with a body (a shortened job id) replaces the old one without the lock,
        # and does not keep the file it displaces for reuse: take() (no lock either) may
        # have just moved that file to another name, where it is still a live marker.
        tmp = self._spares().write(data, self.durable)
        try:
            making_directory(path, os.replace, tmp, path)
        except BaseException:
            self._spares().give_back(tmp)
            raise
        self._sync_dir(os.path.dirname(path))

    def _touch(self, path: str) -> str:
        # An empty object (an index marker) needs no temporary file: creating it is atomic,
        # and only its name must survive a crash (the directory fsync). Writing it again
        # sets its modified time, a lease's heartbeat, which need not survive a crash: a
        # lease that looks older after a power loss only makes its recovery come sooner.
        try:
            os.utime(path)  # most writes of a marker renew it (a claim, a heartbeat)
            return _EMPTY_ETAG
        except FileNotFoundError:
            pass
        try:
            fd = making_directory(path, os.open, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # made in between
            return self._touch(path)
        os.close(fd)
        self._sync_dir(os.path.dirname(path))
        return _EMPTY_ETAG

    @_reported
    def delete(self, key: str, *, if_match: str | None = None) -> None:
        path = self._path(key)
        with self._locked(key):
            if if_match is not None:
                current = self._read(path)
                if current is None or current.etag != if_match:
                    raise PreconditionFailed(key, missing=current is None)
            try:
                self._spares().remove(path)
            except (FileNotFoundError, NotADirectoryError):
                if if_match is not None:
                    raise PreconditionFailed(key, missing=True) from None
                return
        self._sync_dir(os.path.dirname(path))

    def locked(self, key: str) -> contextlib.AbstractContextManager:
        return self._locked(key)

    @_reported
    def delete_marker(self, key: str) -> None:
        # No directory fsync: a marker that comes back after a power loss is dropped when met.
        try:
            os.unlink(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            pass

    @_reported
    def list(self, prefix: str, *, start_after: str | None = None, limit: int = 1000) -> list[ObjectInfo]:
        directory = os.path.join(self._root, *prefix.rstrip("/").split("/"))
        names = self._sorted_names(directory)
        start = 0
        if start_after is not None:
            start = bisect.bisect_right(names, start_after[len(prefix):])
        found = []
        # A name deleted since the directory was read is skipped, and the next one taken in
        # its place: a page shorter than ``limit`` is the listing's last.
        for name in itertools.islice(names, start, None):
            try:
                modified = os.stat(os.path.join(directory, name + _SUFFIX)).st_mtime
            except FileNotFoundError:
                continue
            found.append(ObjectInfo(prefix + name, modified))
            if len(found) == limit:
                break
        return found

    @_reported
    def take(self, src: str, dst: str, age: float = 0.0) -> bool:
        source, target = self._path(src), self._path(dst)
        stamp = self._now_estimate() - age
        try:
            os.utime(source, (stamp, stamp))  # first: the lease is dated when it appears, never before
            making_directory(target, os.rename, source, target)
        except FileNotFoundError:
            return False  # taken by another claimer
        self._sync_dir(os.path.dirname(target))
        return True

    @_reported
    def first_keys(self, prefix: str, limit: int) -> list[str]:
        # A directory lists in no order: sorting the whole queue for every claim would make
        # a claim cost grow with the queue. Each process keeps the sorted names of its last
        # scan (newest first, so that the oldest are at the end) and hands them out while
        # they still exist (a stat for each name handed out; names found gone are dropped
        # for good); it scans again when too few are left or the scan is older than
        # SNAPSHOT_SECONDS (to see new keys).
        directory = self._directory(prefix)
        with self._snapshot_lock:
            names = self._snapshot(directory)
            live = self._oldest_live(directory, names, limit)
            if len(live) < limit:
                live = self._oldest_live(directory, self._rescan(directory), limit)
        return [prefix + name for name in live]

    @_reported
    def draw_first_keys(self, prefix: str, among: int) -> Iterator[str]:
        # From the same snapshot, a name at a time: racing claimers draw on every claim,
        # and a stat of the whole window each time cost more than the rest of a claim.
        directory = self._directory(prefix)
        drawn: set[str] = set()
        rescanned = False
        while len(drawn) < among:
            with self._snapshot_lock:
                name = self._draw_live(directory, self._snapshot(directory), among, drawn)
                if name is None and not rescanned:
                    rescanned = True
                    name = self._draw_live(directory, self._rescan(directory), among, drawn)
            if name is None:
                return
            drawn.add(name)
            yield prefix + name

    def _directory(self, prefix: str) -> str:
        return os.path.join(self._root, *prefix.rstrip("/").split("/"))

    def _snapshot(self, directory: str) -> list[str]:
        """The names of the last scan of ``directory``, oldest last; scanned again if it is
        older than SNAPSHOT_SECONDS. Under the snapshot lock."""
        taken, names = self._snapshots.get(directory, (0.0, []))
        if time.monotonic() - taken > SNAPSHOT_SECONDS:
            return self._rescan(directory)
        return names

    def _rescan(self, directory: str) -> list[str]:
        names = self._sorted_names(directory)[::-1]
        self._snapshots[directory] = (time.monotonic(), names)
        return names

    def _exists(self, directory: str, name: str) -> bool:
        return os.path.exists(f"{directory}/{name}{_SUFFIX}")

    def _oldest_live(self, directory: str, names: list[str], limit: int) -> list[str]:
        """The ``limit`` oldest of ``names`` (oldest last) that still exist, oldest first;
        those found gone are dropped from ``names``."""
        live: list[str] = []
        index = len(names)
        while index and len(live) < limit:
            index -= 1
            if self._exists(directory, names[index]):
                live.append(names[index])
        del names[index:]
        names.extend(reversed(live))
        return live

    def _draw_live(self, directory: str, names: list[str], among: int, drawn: set[str]) -> str | None:
        """One of the oldest ``among`` of ``names`` not in ``drawn`` that still exists, at
        random; those found gone are dropped from ``names``."""
        while True:
            first = max(0, len(names) - among)
            choices = [index for index in range(first, len(names)) if names[index] not in drawn]
            if not choices:
                return None
            index = random.choice(choices)
            if self._exists(directory, names[index]):
                return names[index]
            del names[index]

    def _sorted_names(self, directory: str) -> list[str]:
        try:
            names = os.listdir(directory)  # plain names: cheaper than scandir's entries
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(name[:-_SUFFIX_LENGTH] for name in names if name.endswith(_SUFFIX) and name[0] != ".")

    @_reported
    def now(self) -> float:
        try:
            os.utime(self._clock)
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            Path(self._clock).touch()
        stamped = os.stat(self._clock).st_mtime
        self._clock_offset = (time.monotonic(), stamped - time.time())
        return stamped

    def _now_estimate(self) -> float:
        """The store's clock without touching ``.clock`` on every call: this machine's clock
        plus the offset ``now()`` found at most CLOCK_OFFSET_SECONDS ago. For dating what
        only needs to be right to well under a second (a claim's lease marker)."""
        taken, offset = self._clock_offset
        if time.monotonic() - taken > CLOCK_OFFSET_SECONDS:
            return self.now()
        return time.time() + offset

    def close(self) -> None:
        spares = self._spares_by_pid.pop(_pid, None)
        if spares is not None:
            spares.close()
        fds = self._lock_fds.pop(_pid, [])
        for fd in fds:
            if fd is not None:
                os.close(fd)


def path_from_url(url: str) -> Path:
    """The directory a files-store URL (``file://...`` or a plain path) names."""
    if url.startswith("file:"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"file URLs name a local directory, not a host: {url}")
        if not parsed.path:  # Path("") would be the current directory
            raise ConfigError(f"the file URL {url!r} names no directory: file:///absolute/path")
        return Path(unquote(parsed.path))
    return Path(url)


class FilesBackend:
    """Backend plugin for ``file://`` URLs and plain paths."""

    NAME = "files"
    SCHEMES = ("file", "")

    @classmethod
    def open(cls, url: str, config: dict) -> ObjectStorage:
        """Open the store at ``url``."""
        return ObjectStorage(FileObjectStore(path_from_url(url)))


@hookimpl
def register_backends(register):
    register(FilesBackend)
