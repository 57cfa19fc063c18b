"""The files store's recycled temporary files (schedy_backends/spares.py): a displaced
version's file is rewritten only after REUSE_SECONDS, reads never see a file being
rewritten, failed writes leave no files behind, and dead processes' directories go."""

import json
import multiprocessing
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

import schedy
import schedy_backends.spares as spares_module
from schedy.objects import PreconditionFailed
from schedy_backends.files import FileObjectStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _own_files(store: FileObjectStore) -> list[str]:
    directory = store._spares()._dir
    return sorted(n for n in os.listdir(directory) if n != ".lock")


def _tmp_dirs(root) -> set[str]:
    return set(os.listdir(os.path.join(root, ".tmp")))


def test_a_displaced_file_is_rewritten_only_after_the_delay(tmp_path, monkeypatch):
    monkeypatch.setattr(spares_module, "REUSE_SECONDS", 0.5)
    store = FileObjectStore(tmp_path)
    etag = store.put("doc", b'{"v": 1}')
    # A reader that opened version 1 just before it was replaced, and reads it late.
    held = os.open(store._path("doc"), os.O_RDONLY)
    try:
        first_inode = os.fstat(held).st_ino
        etag = store.put("doc", b'{"v": 2}', if_match=etag)
        etag = store.put("doc", b'{"v": 3, "longer": true}', if_match=etag)
        assert os.pread(held, 100, 0) == b'{"v": 1}'  # not reused yet
        time.sleep(0.6)
        store.put("doc", b'{"v": 4}', if_match=etag)
        # Reused now: the same file holds version 4 (why readers time themselves).
        assert os.stat(store._path("doc")).st_ino == first_inode
        assert os.pread(held, 100, 0) == b'{"v": 4}'
    finally:
        os.close(held)
    assert store.get("doc").data == b'{"v": 4}'


def test_a_file_displaced_by_an_unsynced_write_waits_for_its_directory_fsync(tmp_path, monkeypatch):
    """A crash may undo a write made without its directory fsync (a RUNNING job's), and its
    name would then point at the displaced file again: that file must still hold the old
    version, so it is not reused before the directory is fsynced."""
    monkeypatch.setattr(spares_module, "REUSE_SECONDS", 0.0)
    store = FileObjectStore(tmp_path)
    etag = store.put("jobs/a", b'{"v": 1}')
    held = os.open(store._path("jobs/a"), os.O_RDONLY)  # the file the name would point at again
    try:
        etag = store.put("jobs/a", b'{"v": 2}', if_match=etag, sync_name=False)
        for i in range(3):  # writes elsewhere, each with another directory's fsync
            store.put("other/b", b'{"b": %d}' % i)
        assert os.pread(held, 100, 0) == b'{"v": 1}'  # still the old version, in case the crash comes
        assert store._spares().unsynced(os.path.dirname(store._path("jobs/a"))) == 1
        store.put("jobs/a", b'{"v": 3}', if_match=etag)  # fsyncs jobs/: the displaced files are free now
        store.put("other/b", b'{"b": 3}')
        assert os.pread(held, 100, 0) == b'{"b": 3}'  # reused at last
    finally:
        os.close(held)
    assert store.get("jobs/a").data == b'{"v": 3}' and store.get("other/b").data == b'{"b": 3}'


def test_a_file_displaced_while_its_directory_is_being_fsynced_waits_for_the_next_fsync(tmp_path, monkeypatch):
    """Another thread's rename may land while a directory fsync is running, and that fsync
    need not cover it: the file the rename displaced stays unreusable until the next one."""
    monkeypatch.setattr(spares_module, "REUSE_SECONDS", 0.0)
    store = FileObjectStore(tmp_path)
    etag = store.put("jobs/a", b'{"v": 1}')
    directory = os.path.dirname(store._path("jobs/a"))
    real_fsync, landed = os.fsync, []

    def fsync_with_a_write_landing(fd):
        if not landed and stat.S_ISDIR(os.fstat(fd).st_mode):
            landed.append(store.put("jobs/a", b'{"v": 2}', if_match=etag, sync_name=False))  # "another thread"
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_with_a_write_landing)
    store.put("jobs/b", b"{}")  # its directory fsync is the one the write lands in
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert landed and store._spares().unsynced(directory) == 1
    store.put("jobs/c", b"{}")  # the next fsync of the directory covers it
    assert store._spares().unsynced(directory) == 0


def test_unsynced_displaced_files_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(spares_module, "REUSE_SECONDS", 0.0)
    monkeypatch.setattr("schedy_backends.files.MAX_SPARES", 5)
    store = FileObjectStore(tmp_path)
    etag = store.put("jobs/a", b"{}")
    directory = os.path.dirname(store._path("jobs/a"))
    counts = []
    for i in range(12):
        etag = store.put("jobs/a", b'{"v": %d}' % i, if_match=etag, sync_name=False)
        counts.append(store._spares().unsynced(directory))
    assert max(counts) == 4 and counts[:5] == [1, 2, 3, 4, 0]  # the fifth write syncs the directory


def test_a_shorter_version_in_a_reused_file_keeps_no_tail(tmp_path, monkeypatch):
    monkeypatch.setattr(spares_module, "REUSE_SECONDS", 0.0)
    store = FileObjectStore(tmp_path)
    etag = store.put("doc", json.dumps({"pad": "x" * 5000}).encode())
    for i in range(5):
        etag = store.put("doc", json.dumps({"v": i}).encode(), if_match=etag)
    assert json.loads(store.get("doc").data) == {"v": 4}


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_document_linked_to_a_file_outside_the_store_never_gets_another_documents_bytes(tmp_path, monkeypatch, link):
    # A displaced symbolic link was reopened, following it, and a displaced hard link of a
    # backup's file (cp -al) was the backup's file: both were rewritten with other documents.
    monkeypatch.setattr(spares_module, "REUSE_SECONDS", 0.0)
    store = FileObjectStore(tmp_path / "store")
    store.put("a", b'{"id": "a", "v": 1}')
    outside = tmp_path / "outside.json"
    if link == "symbolic":
        os.replace(store._path("a"), outside)
        os.symlink(outside, store._path("a"))
    else:
        os.link(store._path("a"), outside)
    etag = store.get("a").etag
    store.put("a", b'{"id": "a", "v": 2}', if_match=etag)  # displaces the link
    for i in range(3):
        store.put(f"b{i}", b'{"id": "b", "pad": "' + b"x" * 40 + b'"}')
        store.put(f"b{i}", b'{"id": "b", "v": 2}', if_match=store.get(f"b{i}").etag)
    assert outside.read_bytes() == b'{"id": "a", "v": 1}'
    assert store.get("a").data == b'{"id": "a", "v": 2}'
    assert all(store.get(f"b{i}").data == b'{"id": "b", "v": 2}' for i in range(3))


def test_a_page_listed_while_documents_are_deleted_is_still_full_so_the_listing_goes_on(tmp_path):
    # Names read, then deleted by another process before their stat: the page came back
    # short, and a short page ends a listing (4,000 jobs listed as 201).
    store = FileObjectStore(tmp_path)
    for i in range(10):
        store.put(f"d/{i:02d}", b"{}")
    read_names = store._sorted_names

    def deleted_meanwhile(directory):
        names = read_names(directory)
        for i in (1, 3, 5):
            store.delete(f"d/{i:02d}")
        return names

    store._sorted_names = deleted_meanwhile
    page = store.list("d/", limit=4)
    assert [info.key for info in page] == ["d/00", "d/02", "d/04", "d/06"]


_INTERRUPTED_WRITES = """
import random, signal, sys, time, faulthandler
from schedy_backends.files import FileObjectStore

class Interrupted(Exception):
    pass

def interrupt(signum, frame):
    raise Interrupted()

store = FileObjectStore(sys.argv[1], durable=False)
signal.signal(signal.SIGALRM, interrupt)
faulthandler.dump_traceback_later(60, exit=True)  # a write hung: its stack, and a failure
rng, end, interrupted = random.Random(1), time.monotonic() + 3, 0
while time.monotonic() < end:
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.00002, 0.0005))
            store.put(f"d{rng.randrange(4)}", b'{"v": 1}')
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except Interrupted:
        interrupted += 1
for k in range(64):  # every stripe still takes writes
    store.put(f"k{k}", b"{}")
print(interrupted)
"""


def test_writes_interrupted_by_signals_at_any_point_never_leave_a_lock_held(tmp_path):
    # As SIGTERM does while a job runs (it becomes an exception) and Ctrl-C: one landing
    # between taking a stripe's thread lock and entering its try left the stripe locked,
    # and every later write on it (the job stored CRASHED, say) waited for ever.
    proc = subprocess.run([sys.executable, "-c", _INTERRUPTED_WRITES, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout) > 100  # (the signals did land inside writes)


def test_refused_and_failed_writes_leave_no_files(tmp_path):
    store = FileObjectStore(tmp_path)
    etag = store.put("doc", b"{}", if_none_match=True)
    for _ in range(20):
        with pytest.raises(PreconditionFailed):
            store.put("doc", b'{"again": 1}', if_none_match=True)
        with pytest.raises(PreconditionFailed):
            store.put("doc", b'{"stale": 1}', if_match="not-the-etag")
    # One file given back and reused every time, not twenty.
    assert len(_own_files(store)) <= 1
    assert store.get("doc").etag == etag


def test_deleted_documents_become_spares_and_close_removes_them(tmp_path):
    store = FileObjectStore(tmp_path)
    for i in range(5):
        store.put(f"d/{i}", b"{}")
    for i in range(5):
        store.delete(f"d/{i}")
    assert store.list("d/") == []
    own = store._spares()._dir
    assert len(_own_files(store)) == 5
    store.close()
    assert not os.path.exists(own)


def test_writes_and_deletes_go_on_when_the_directory_is_removed_by_hand(tmp_path):
    store = FileObjectStore(tmp_path)
    etag = store.put("doc", b'{"v": 1}')
    etag = store.put("doc", b'{"v": 2}', if_match=etag)
    shutil.rmtree(store._spares()._dir)
    etag = store.put("doc", b'{"v": 3}', if_match=etag)
    store.put("other", b"{}", if_none_match=True)
    assert store.get("doc").data == b'{"v": 3}'
    shutil.rmtree(store._spares()._dir)
    store.delete("doc", if_match=etag)
    assert store.get("doc") is None and store.get("other") is not None


def _read_forever(root: str, stop, bad, reads) -> None:
    store = FileObjectStore(root)
    count = 0
    while not stop.is_set():
        try:
            doc = json.loads(store.get("doc").data)
            whole = doc["body"] == doc["n"] * doc["char"]
        except (ValueError, KeyError):
            whole = False
        if not whole:
            bad.value += 1
        count += 1
    reads.value = count


def test_readers_never_see_a_file_being_rewritten(tmp_path):
    """A writer rewrites one document as fast as it can, in versions of varying length;
    reader processes check every version they read is whole."""
    store = FileObjectStore(tmp_path, durable=False)
    etag = store.put("doc", json.dumps({"n": 1, "char": "a", "body": "a"}).encode())
    ctx = multiprocessing.get_context("spawn")
    stop, bad = ctx.Event(), ctx.Value("i", 0)
    counts = [ctx.Value("i", 0) for _ in range(3)]
    readers = [ctx.Process(target=_read_forever, args=(str(tmp_path), stop, bad, c)) for c in counts]
    for reader in readers:
        reader.start()
    writes, end = 0, time.monotonic() + 4.0
    while time.monotonic() < end:
        n = 1 + (writes * 997) % 6000
        char = "abcdef"[writes % 6]
        etag = store.put("doc", json.dumps({"n": n, "char": char, "body": char * n}).encode(), if_match=etag)
        writes += 1
    stop.set()
    for reader in readers:
        reader.join(30)
    assert writes > 1000 and all(c.value > 1000 for c in counts)
    assert bad.value == 0


_WRITE_AND_WAIT = """
import sys, time
from schedy_backends.files import FileObjectStore
store = FileObjectStore(sys.argv[1])
store.put("from-" + sys.argv[2], b"{}")
print(store._spares()._dir, flush=True)
time.sleep(600)
"""


def _writer(root, name) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", _WRITE_AND_WAIT, str(root), name],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return proc, os.path.basename(proc.stdout.readline().strip())


def test_a_process_that_exits_removes_its_directory(tmp_path):
    code = "import sys; from schedy_backends.files import FileObjectStore; FileObjectStore(sys.argv[1]).put('d', b'{}')"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=ROOT)
    assert _tmp_dirs(tmp_path) == set()
    assert FileObjectStore(tmp_path).get("d").data == b"{}"


def test_directories_of_dead_processes_are_removed(tmp_path):
    killed, killed_dir = _writer(tmp_path, "killed")
    alive, alive_dir = _writer(tmp_path, "alive")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
        legacy = tmp_path / ".tmp" / "12345"  # an older Schedy's directory, with a leftover
        legacy.mkdir()
        (legacy / "leftover").write_bytes(b"x")
        os.utime(legacy, (time.time() - 120, time.time() - 120))
        assert {killed_dir, alive_dir, "12345"} <= _tmp_dirs(tmp_path)

        store = FileObjectStore(tmp_path)
        store.put("mine", b"{}")
        mine = os.path.basename(store._spares()._dir)
        assert _tmp_dirs(tmp_path) == {alive_dir, mine}
        assert store.get("from-killed") is not None and store.get("from-alive") is not None
    finally:
        alive.kill()
        alive.wait(10)


def test_a_marker_file_moved_by_a_claim_is_never_reused(tmp_path, monkeypatch):
    # A job id long enough to be shortened gives its markers a body, so they are written
    # through temporary files. User U rewrites the queued job (and so its queue marker)
    # while worker W takes that marker (a rename, without the lock) just before U's
    # replace: the file W moved must not also be kept as a spare of U, or U's next write
    # would rewrite W's live lease marker, and later a document.
    import threading

    import schedy
    from schedy.lease import keeper

    monkeypatch.setattr(spares_module, "REUSE_SECONDS", 0.2)
    long_id = "L" * 190
    db_u, db_w = schedy.SchedyDB(db=str(tmp_path)), schedy.SchedyDB(db=str(tmp_path))
    db_u.add_experiment(schedy.ManualSearch("E"))
    exp_u, exp_w = db_u.get_experiment("E"), db_w.get_experiment("E")
    exp_u.add_job(job_id=long_id, hyperparameters={"x": 1})
    u_kept, w_took = threading.Event(), threading.Event()

    real_replace = os.replace

    def descheduled_before_replace(tmp, path):
        # In Spares.replace, after the displaced file was (or was not) kept as a spare.
        if "/queue/" in path and not u_kept.is_set():
            u_kept.set()
            assert w_took.wait(10)
        return real_replace(tmp, path)

    monkeypatch.setattr(spares_module.os, "replace", descheduled_before_replace)
    take = db_w.storage.store.take
    takes = []

    def take_after_u_kept(src, dst, age=0.0):
        first = not takes
        takes.append(src)
        if first:
            assert u_kept.wait(10)
        try:
            return take(src, dst, age)
        finally:
            if first:
                w_took.set()

    monkeypatch.setattr(db_w.storage.store, "take", take_after_u_kept)
    job_u = exp_u.get_job(long_id)
    job_u.hyperparameters = {"x": 2}
    read_w = db_w.storage.get_job
    user = threading.Thread(target=job_u.put)

    def read_then_user_writes(ref, job_id):
        found = read_w(ref, job_id)
        if not user.is_alive() and not u_kept.is_set():
            user.start()
        return found

    monkeypatch.setattr(db_w.storage, "get_job", read_then_user_writes)
    job_w = exp_w.next_job()
    keeper.release(job_w)
    user.join(10)
    assert job_w.job_id == long_id and job_w.hyperparameters == {"x": 2}
    time.sleep(0.5)  # past REUSE_SECONDS: any file kept is reusable now
    exp_u.add_job(job_id="X", hyperparameters={"x": 42})
    job_w.status, job_w.results = "DONE", {"r": 1}
    job_w.put()
    assert exp_u.get_job("X").hyperparameters == {"x": 42}
    assert db_u.get_experiment("E").get_job(long_id).status == "DONE"


def test_a_short_write_fails_and_keeps_the_stored_version(tmp_path, monkeypatch):
    # A disk filling up: the kernel takes part of a write, and refuses the rest.
    import errno

    store = FileObjectStore(tmp_path)
    etag = store.put("doc", b'{"v": 1}')
    real_write = os.write
    calls = []

    def filling_up(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spares_module.os, "write", filling_up)
    with pytest.raises(schedy.errors.StorageError, match="No space left on device"):
        store.put("doc", b'{"v": 2, "pad": "' + b"x" * 10_000 + b'"}', if_match=etag)
    monkeypatch.setattr(spares_module.os, "write", real_write)
    assert len(calls) == 2
    assert store.get("doc").data == b'{"v": 1}'


def test_a_job_write_whose_marker_shares_its_lock_stripe_does_not_hang(tmp_path):
    # A shortened job id gives its markers a body; the job write makes its marker under
    # the job's lock, and the two keys may fall on the same one of the 256 lock stripes.
    import threading
    import zlib

    import schedy
    from schedy_backends.files import _STRIPES

    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(schedy.ManualSearch("E"))
    exp, storage = db.get_experiment("E"), db.storage
    ref = exp._ref()

    def stripe(key):
        return zlib.crc32(key.encode()) % _STRIPES

    for i in range(5000):
        job_id = "L" * 190 + str(i)
        exp.add_job(job_id=job_id, hyperparameters={"x": 1})
        doc = storage.get_job(ref, job_id).doc
        if stripe(storage._job_key(ref, job_id)) == stripe(storage._queue_key(ref, doc)):
            break
    else:
        pytest.fail("no job id found whose job and queue marker share a stripe")
    job = exp.get_job(job_id)
    job.hyperparameters = {"x": 2}
    writer = threading.Thread(target=job.put, daemon=True)
    writer.start()
    writer.join(10)
    assert not writer.is_alive(), "the write waits on a lock its own thread holds"
    assert exp.get_job(job_id).hyperparameters == {"x": 2}
