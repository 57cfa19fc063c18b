"""The s3 backend against a real S3-protocol server (moto on loopback, see tests/backends/s3.py).

The storage contract itself runs on S3 through tests/test_contract.py; these tests cover
what is particular to S3: the quick start of docs/s3.md, racing conditional writes,
content-hash ETags, the probe of stores that ignore conditions, request counts, the
store's clock, many worker processes, SIGKILLed workers and injected faults.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time

import pytest

import schedy
from schedy.config import open_storage
from schedy.errors import ConfigError, StorageError, UnsafeUpdateError
from schedy.objects import PreconditionFailed
from schedy_backends.s3 import S3ObjectStore, parse_url
from tests.backends.s3 import MotoServer, point_boto3_at
from tests.workers import claimed_jobs


def raw_store(url: str) -> S3ObjectStore:
    return S3ObjectStore(*parse_url(url))


def race(threads: int, attempt) -> list:
    """Run ``attempt(i)`` in ``threads`` threads released at once; the results."""
    barrier = threading.Barrier(threads)
    results: list = [None] * threads

    def run(i):
        barrier.wait()
        results[i] = attempt(i)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    return results


# -- the documentation's quick start


def _fenced(path: str, language: str) -> list[str]:
    text = open(os.path.join(os.path.dirname(__file__), "..", path), encoding="utf-8").read()
    return [block.split("\n```", 1)[0] for block in text.split(f"```{language}\n")[1:]]


def test_the_s3_quick_start_runs_as_written(s3_store_url, monkeypatch):
    """docs/s3.md: its `schedy` commands through the installed entry point, then its worker
    loop, against the S3 server (its bucket and prefix replaced by the test's)."""
    import shlex
    import subprocess
    import sys

    monkeypatch.setenv("SCHEDY_DB", s3_store_url)
    commands = [line.split("#")[0].strip() for line in _fenced("docs/s3.md", "sh")[0].splitlines()]
    commands = [c for c in commands if c.startswith("schedy ")]
    assert commands, "no schedy command in docs/s3.md"
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "schedy", *shlex.split(command)[1:]],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (command, proc.stderr)
    trained = []

    def train(**hyperparameters):
        # A random search never runs out of jobs: after the third, mark the experiment
        # DONE, as a person would, and the loop ends with NoJobError.
        trained.append(hyperparameters)
        if len(trained) == 3:
            experiment = schedy.SchedyDB(db=s3_store_url).get_experiment("MyTask")
            experiment.status = schedy.Experiment.DONE
            experiment.push_updates()
        return 1.0

    worker = _fenced("docs/s3.md", "python")[0]
    exec(compile(worker, "docs/s3.md", "exec"), {"train": train, "__name__": "s3_quick_start"})
    assert len(trained) == 3 and all(0 <= h["x"] <= 1 for h in trained)
    jobs = list(schedy.SchedyDB(db=s3_store_url).get_experiment("MyTask").all_jobs())
    assert [j.status for j in jobs] == ["DONE"] * 3 and all(j.results == {"loss": 1.0} for j in jobs)


# -- conditional writes on the server


def test_racing_create_only_writes_have_one_winner(s3_store_url):
    store = raw_store(s3_store_url)
    for round_ in range(20):

        def create(i, key=f"race/{round_}"):
            try:
                store.put(key, f"writer {i}".encode(), if_none_match=True)
                return i
            except PreconditionFailed:
                return None

        winners = [w for w in race(16, create) if w is not None]
        assert len(winners) == 1, f"round {round_}: winners {winners}"
        assert store.get(f"race/{round_}").data == f"writer {winners[0]}".encode()
    store.close()


def test_racing_updates_of_the_same_document_have_one_winner(s3_store_url):
    storage = open_storage(s3_store_url)
    storage.create_experiment({"name": "E", "status": "RUNNING", "scheduler": {"Manual": None}, "uid": "a" * 32})
    for round_ in range(10):
        current = storage.get_experiment("E")

        def update(i):
            try:
                return storage.update_experiment(dict(current.doc), current.etag)  # identical content
            except UnsafeUpdateError:
                return None

        winners = [w for w in race(16, update) if w is not None]
        assert len(winners) == 1, f"round {round_}: {len(winners)} winners"
    storage.close()


def test_identical_bytes_keep_their_etag_so_documents_carry_a_revision(s3_store_url):
    store = raw_store(s3_store_url)
    first = store.put("k", b"same", if_none_match=True)
    # The hazard: S3 ETags hash the content, so a stale If-Match writer of identical bytes wins too.
    assert store.put("k", b"same", if_match=first) == first
    assert store.put("k", b"same", if_match=first) == first
    storage = open_storage(s3_store_url)
    etag = storage.create_experiment({"name": "E", "status": "RUNNING", "scheduler": {"Manual": None}, "uid": "a" * 32})
    doc = storage.get_experiment("E").doc
    assert storage.update_experiment(dict(doc), etag) != etag
    with pytest.raises(UnsafeUpdateError):
        storage.update_experiment(dict(doc), etag)
    storage.close()
    store.close()


def test_conditional_delete_and_missing_keys(s3_store_url):
    store = raw_store(s3_store_url)
    etag = store.put("k", b"1")
    store.put("k", b"2")
    with pytest.raises(PreconditionFailed) as stale:
        store.delete("k", if_match=etag)
    assert not stale.value.missing and store.get("k").data == b"2"
    with pytest.raises(PreconditionFailed) as missing:
        store.put("nothing", b"x", if_match=etag)
    assert missing.value.missing and store.get("nothing") is None
    store.delete("k", if_match=store.get("k").etag)
    assert store.get("k") is None
    store.close()


# -- the probe


def test_a_store_that_ignores_conditions_is_refused(tmp_path, monkeypatch):
    server = MotoServer(tmp_path, ignore_conditions=True)
    try:
        point_boto3_at(monkeypatch, server.endpoint, tmp_path)
        bucket = server.new_bucket()
        db = schedy.SchedyDB(db=f"s3://{bucket}/p")
        with pytest.raises(ConfigError) as refused:
            db.add_experiment(schedy.ManualSearch("E"))
        assert server.endpoint in str(refused.value) and "If-None-Match" in str(refused.value)
        store = raw_store(f"s3://{bucket}/p")
        assert store.list("") == [] and store.list("experiments/") == []  # nothing written, probe removed
        db.close()
    finally:
        server.stop()


def test_probe_leaves_nothing_behind(s3_store_url):
    db = schedy.SchedyDB(db=s3_store_url)
    db.add_experiment(schedy.ManualSearch("E"))
    assert raw_store(s3_store_url).list("") == []
    db.close()


def test_bad_urls_and_missing_buckets_are_clear_errors(s3_store_url):
    for url in ("s3://", "s3:///prefix", "s3://bucket/p?x=1"):
        with pytest.raises(ConfigError, match="s3://bucket/prefix|query"):
            open_storage(url)
    db = schedy.SchedyDB(db="s3://no-such-bucket-here/p")
    with pytest.raises(ConfigError, match="bucket 'no-such-bucket-here' does not exist at http://127.0.0.1"):
        db.add_experiment(schedy.ManualSearch("E"))
    # Refused before any request (they used to be retried ten times as network faults).
    for bucket in ("bad!bucket", "host:99", "user@host"):
        with pytest.raises(ConfigError, match=f"'{bucket}' is not an S3 bucket name"):
            open_storage(f"s3://{bucket}/p")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"endpoint_url": "::bad"}, "cannot open s3://b/p: Invalid endpoint"),
        ({"endpoint_url": 5}, "'endpoint_url' must be a string"),
        ({"region": "us east!"}, "cannot open s3://b/p: Provided region_name"),
        # (an error of botocore's endpoint rules, taken for a network fault and retried ten times)
        ({"endpoint_url": "http://127.0.0.1:notaport"}, "was not a valid URI"),
    ],
)
def test_unusable_client_settings_are_config_errors(settings, message):
    db = schedy.SchedyDB(db="s3://b/p", config_override=settings)
    with pytest.raises(ConfigError, match=message):
        db.add_experiment(schedy.ManualSearch("E"))


def test_retries_wait_at_most_the_backoff_max(s3_store_url, monkeypatch):
    # schedy.core.Retry.BACKOFF_MAX, as for the http backend: nine waits of about 8 s in all by default.
    monkeypatch.setattr(schedy.core.Retry, "BACKOFF_MAX", 0.01)
    db = schedy.SchedyDB(db="s3://b/p", config_override={"endpoint_url": "http://127.0.0.1:9"})
    started = time.monotonic()
    with pytest.raises(StorageError, match="at http://127.0.0.1:9 failed 10 times"):
        db.add_experiment(schedy.ManualSearch("E"))
    assert time.monotonic() - started < 3


def test_a_store_out_of_reach_for_long_is_reported_once_while_retrying(s3_store_url, monkeypatch, caplog):
    monkeypatch.setattr(schedy.core.Retry, "BACKOFF_MAX", 0.01)
    monkeypatch.setattr(schedy.core.Retry, "NOTICE_SECONDS", 0.0)
    db = schedy.SchedyDB(db="s3://b/p", config_override={"endpoint_url": "http://127.0.0.1:9"})
    with caplog.at_level(logging.WARNING, logger="schedy"), pytest.raises(StorageError, match="failed 10 times"):
        db.add_experiment(schedy.ManualSearch("E"))
    notices = [record.getMessage() for record in caplog.records if record.name == "schedy"]
    assert len(notices) == 1
    assert notices[0].startswith("S3 ") and "at http://127.0.0.1:9: " in notices[0]
    assert notices[0].endswith("retrying (1 of 10 attempts made)")


def test_a_connection_dropped_while_a_document_comes_is_retried(monkeypatch, tmp_path):
    # moto's S3 app on loopback behind a proxy that, when armed, sends a job document's
    # headers and half its body, then drops the connection.
    import socket

    from moto.server import create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    armed = []

    def dropping(environ, start_response):
        if environ["REQUEST_METHOD"] != "GET" or "/jobs/" not in environ["PATH_INFO"] or not armed:
            return app(environ, start_response)
        armed.pop()
        answer = {}
        body = b"".join(app(environ, lambda status, headers, exc_info=None: answer.update(s=status, h=headers)))
        start_response(answer["s"], answer["h"])  # the whole body's Content-Length

        def half():
            yield body[: len(body) // 2]
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError("dropped on purpose")

        return half()

    class Quiet(WSGIRequestHandler):
        def log(self, *args, **kwargs):
            pass

    app = create_backend_app("s3")
    server = make_server("127.0.0.1", 0, dropping, threaded=False, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        point_boto3_at(monkeypatch, f"http://127.0.0.1:{server.socket.getsockname()[1]}", tmp_path)
        import boto3

        boto3.client("s3").create_bucket(Bucket="dropping")
        db = schedy.SchedyDB(db="s3://dropping/p")
        db.add_experiment(schedy.ManualSearch("E"))
        exp = db.get_experiment("E")
        exp.add_job(job_id="j", hyperparameters={"x": 1})
        armed.append(True)
        assert exp.get_job("j").hyperparameters == {"x": 1}
        armed.append(True)
        assert exp.next_job().job_id == "j"
        assert not armed  # both answers were cut short, and both reads were made again
        assert db.storage.store.retried >= 2
    finally:
        server.shutdown()
        server.server_close()


# -- costs


def _finished(storage, ref, first: int, count: int) -> None:
    for i in range(first, first + count):
        storage.create_job(ref, {
            "schemaVersion": 1, "id": f"done-{i:05d}", "experiment": ref.name, "status": "DONE",
            "hyperparameters": {"i": i}, "results": {"loss": i}, "created": "2026-01-01T00:00:00.000000Z",
        })


def _requests_per_next_job(exp, store) -> int:
    exp.add_job(hyperparameters={"probe": 1})
    before = store.requests
    job = exp.next_job()
    cost = store.requests - before
    job.status = "DONE"
    job.put()
    return cost


def test_next_job_requests_do_not_grow_with_finished_jobs(s3_store_url, monkeypatch):
    from schedy import claims

    monkeypatch.setattr(claims, "RECOVERY_SECONDS", 0.0)  # every claim looks for expired leases: the most requests
    db = schedy.SchedyDB(db=s3_store_url)
    db.add_experiment(schedy.ManualSearch("E"))
    exp = db.get_experiment("E")
    storage = db.storage
    _finished(storage, exp._ref(), 0, 10)
    _requests_per_next_job(exp, storage.store)  # first use: the probe
    few = _requests_per_next_job(exp, storage.store)
    _finished(storage, exp._ref(), 10, 1100)  # more than one listing page
    many = _requests_per_next_job(exp, storage.store)
    assert few == many, (few, many)
    assert few <= 10
    db.close()


def test_a_running_jobs_report_writes_its_lease_marker_once(s3_store_url):
    # The marker is made again after a write only when the job did not need it before
    # (queued, claimed): a report keeps the lease marker its job already had.
    db = schedy.SchedyDB(db=s3_store_url)
    db.add_experiment(schedy.ManualSearch("E"))
    exp = db.get_experiment("E")
    exp.add_job(hyperparameters={"x": 1})
    with exp.next_job() as job:
        store = db.storage.store
        before = store.requests
        job.report(1, loss=0.5)
        assert store.requests - before == 3  # GET (the If-Match check), PUT lease marker, PUT job
    db.close()


def test_relisting_reads_only_documents_that_changed(s3_store_url):
    storage = open_storage(s3_store_url)
    storage.create_experiment({"name": "E", "status": "RUNNING", "scheduler": {"Manual": None}, "uid": "a" * 32})
    ref = schedy.storage.ExperimentRef("E", "a" * 32)
    _finished(storage, ref, 0, 250)
    storage.close()
    storage = open_storage(s3_store_url)  # as another machine: nothing in memory yet
    store = storage.store
    first = store.requests
    assert len(list(storage.iter_jobs(ref))) == 250
    cold = store.requests - first
    second = store.requests
    jobs = {v.doc["id"]: v for v in storage.iter_jobs(ref)}
    warm = store.requests - second
    assert cold >= 250 and warm <= 3, (cold, warm)
    changed = jobs["done-00007"]
    other = open_storage(s3_store_url)  # another worker changes one job
    other.update_job(ref, {**changed.doc, "results": {"loss": -1}}, changed.etag)
    other.close()
    third = store.requests
    again = {v.doc["id"]: v.doc for v in storage.iter_jobs(ref)}
    assert again["done-00007"]["results"] == {"loss": -1}
    assert store.requests - third == warm + 1
    storage.close()


def test_lease_ages_use_the_store_clock_not_the_local_one(s3_store_url, monkeypatch):
    storage = open_storage(s3_store_url)
    store_now = storage.now()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)  # this machine's clock is an hour off
    assert abs(storage.now() - store_now) < 5
    ref = schedy.storage.ExperimentRef("E", "a" * 32)
    storage.renew_lease(ref, "j", 60.0)
    (lease,) = storage.leases(ref)
    assert -2 < lease.age < 5
    storage.close()


# -- many processes, crashes, faults


def _drain(url: str, name: str, out: str) -> None:
    db = schedy.SchedyDB(db=url)
    exp = db.get_experiment(name)
    ran = []
    for job in claimed_jobs(exp):
        with job:
            job.results["by"] = os.getpid()
            ran.append(job.job_id)
    store = db.storage.store
    with open(out, "w") as f:
        json.dump({"ran": ran, "retried": store.retried, "confirmed": store.confirmed}, f)
    db.close()


def _run_workers(url: str, name: str, count: int, tmp_path) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    outs = [str(tmp_path / f"ran-{i}.json") for i in range(count)]
    procs = [ctx.Process(target=_drain, args=(url, name, out)) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(900)
        assert p.exitcode == 0
    return [json.load(open(out)) for out in outs]


def _add_jobs(exp, count: int) -> set[str]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(lambda i: exp.add_job(hyperparameters={"i": i}).job_id, range(count)))


@pytest.mark.timeout(900)
def test_eight_processes_claim_800_jobs_exactly_once(s3_store_url, tmp_path):
    # Twice the 400 jobs of the files store's test. The test server lists a prefix by
    # scanning the whole bucket, so a drain's time grows faster than its jobs: 3,200 jobs
    # took over ten minutes, 800 take about a minute and a half.
    db = schedy.SchedyDB(db=s3_store_url)
    db.add_experiment(schedy.ManualSearch("Race"))
    exp = db.get_experiment("Race")
    added = _add_jobs(exp, 800)
    reports = _run_workers(s3_store_url, "Race", 8, tmp_path)
    ran = [job_id for report in reports for job_id in report["ran"]]
    assert len(ran) == len(set(ran)), "a job ran twice"
    assert set(ran) == added, "a job was lost"
    assert sum(1 for report in reports if report["ran"]) >= 2, "one worker did everything: no race was run"
    statuses = [j.status for j in exp.all_jobs()]
    assert statuses.count("DONE") == len(added) == len(statuses)
    db.close()


def _claim_and_hang(url: str, name: str, out: str) -> None:
    exp = schedy.SchedyDB(db=url).get_experiment(name)
    job = exp.next_job()
    with open(out, "w") as f:
        f.write(job.job_id)
    time.sleep(600)


@pytest.mark.timeout(300)
def test_a_sigkilled_worker_job_is_recovered_and_retried_once(s3_store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "2")
    db = schedy.SchedyDB(db=s3_store_url)
    db.add_experiment(schedy.ManualSearch("Crash"))
    exp = db.get_experiment("Crash")
    added = _add_jobs(exp, 6)
    out = tmp_path / "claimed"
    victim = multiprocessing.get_context("spawn").Process(target=_claim_and_hang, args=(s3_store_url, "Crash", str(out)))
    victim.start()
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    lost = out.read_text()
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(30)
    time.sleep(5)  # the lease (2 s) expires by the store's clock, in whole seconds, ages taken one younger
    reports = _run_workers(s3_store_url, "Crash", 2, tmp_path)
    ran = [job_id for report in reports for job_id in report["ran"]]
    assert len(ran) == len(set(ran))
    assert set(ran) == (added - {lost}) | {f"{lost}-2"}
    crashed = db.storage.get_job(exp._ref(), lost).doc
    assert crashed["status"] == "CRASHED" and "lease expired" in crashed["error"]
    assert exp.get_job(f"{lost}-2").status == "DONE"
    db.close()


@pytest.mark.timeout(900)
def test_injected_faults_lose_no_job_and_run_none_twice(faulty_s3_server, tmp_path, monkeypatch):
    point_boto3_at(monkeypatch, faulty_s3_server.endpoint, tmp_path)
    url = f"s3://{faulty_s3_server.new_bucket()}/faults"
    db = schedy.SchedyDB(db=url)
    db.add_experiment(schedy.ManualSearch("Faults"))
    exp = db.get_experiment("Faults")
    added = _add_jobs(exp, 240)
    assert db.storage.store.retried > 0, "no fault was injected"
    reports = _run_workers(url, "Faults", 4, tmp_path)
    ran = [job_id for report in reports for job_id in report["ran"]]
    assert len(ran) == len(set(ran)), "a job ran twice"
    assert set(ran) == added, "a job was lost"
    assert sum(report["retried"] for report in reports) > 0
    # Answers lost after the write happened, recognised by reading the write back:
    assert db.storage.store.confirmed + sum(report["confirmed"] for report in reports) > 0
    assert all(j.status == "DONE" for j in exp.all_jobs())
    db.close()


# -- answers that are not S3's, and S3's clock


class _Proxy:
    """moto's S3 app on loopback behind ``answer(environ, start_response, app)``, which
    may change what S3 would answer; ``dated`` False sends no Date header."""

    def __init__(self, monkeypatch, tmp_path, answer, dated: bool = True):
        from moto.server import create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Handler(WSGIRequestHandler):
            def log(self, *args, **kwargs):
                pass

            def send_response(self, code, message=None):
                if dated:
                    return super().send_response(code, message)
                self.log_request(code)
                self.send_response_only(code, message)

        app = create_backend_app("s3")

        def undated(environ, start_response):
            def starting(status, headers, exc_info=None):
                return start_response(status, [(k, v) for k, v in headers if dated or k.lower() != "date"], exc_info)

            return answer(environ, starting, app)

        self.server = make_server("127.0.0.1", 0, undated, threaded=False, request_handler=Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        point_boto3_at(monkeypatch, f"http://127.0.0.1:{self.server.socket.getsockname()[1]}", tmp_path)
        import boto3

        # (moto's buckets live in this process, from one test to the next)
        self.bucket = f"proxied-{os.urandom(6).hex()}"
        boto3.client("s3").create_bucket(Bucket=self.bucket)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _html(status: str):
    def answer(environ, start_response, app):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        body = b"<html><body>Welcome to the company proxy</body></html>"
        start_response(status, [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
        return [body]

    return answer


@pytest.mark.parametrize("status, message", [
    ("200 OK", r"the answer is not S3's \(no (ETag|IsTruncated); is it an S3 endpoint\?\)"),
    ("404 Not Found", r"failed: HTTP 404 without an S3 error code \(is it an S3 endpoint\?\)"),
])
def test_an_endpoint_that_is_not_s3_is_named_not_taken_for_an_empty_store(monkeypatch, tmp_path, status, message):
    # 200 answers listed nothing (an empty store) and failed writes on KeyError: 'ETag';
    # 404 made `schedy add` say the experiment existed.
    html = []

    def answer(environ, start_response, app):
        return (_html(status) if html else lambda e, s, a: a(e, s))(environ, start_response, app)

    proxy = _Proxy(monkeypatch, tmp_path, answer)
    try:
        db = schedy.SchedyDB(db=f"s3://{proxy.bucket}/p")
        db.add_experiment(schedy.ManualSearch("E"))
        html.append(True)
        for call in (lambda: schedy.SchedyDB(db=f"s3://{proxy.bucket}/q").add_experiment(schedy.ManualSearch("F")),
                     lambda: list(db.get_experiments()), lambda: db.get_experiment("E")):
            with pytest.raises(StorageError, match=message):
                call()
        db.close()
    finally:
        proxy.stop()


def test_an_expired_token_while_listing_is_a_storage_error(monkeypatch, tmp_path):
    refusing = []

    def answer(environ, start_response, app):
        if refusing and "list-type=2" in environ.get("QUERY_STRING", ""):
            body = b"<?xml version='1.0'?><Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>"
            start_response("400 Bad Request", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    proxy = _Proxy(monkeypatch, tmp_path, answer)
    try:
        db = schedy.SchedyDB(db=f"s3://{proxy.bucket}/p")
        db.add_experiment(schedy.ManualSearch("E"))
        exp = db.get_experiment("E")
        refusing.append(True)
        with pytest.raises(StorageError, match=rf"S3 list of s3://{proxy.bucket}/p/.* failed: 400 ExpiredToken"):
            exp.next_job()
        db.close()
    finally:
        proxy.stop()


def test_an_endpoint_that_dates_no_answer_is_judged_by_this_machines_clock(monkeypatch, tmp_path):
    proxy = _Proxy(monkeypatch, tmp_path, lambda environ, start_response, app: app(environ, start_response), dated=False)
    try:
        db = schedy.SchedyDB(db=f"s3://{proxy.bucket}/p")
        with pytest.warns(UserWarning, match="sends no Date header: lease ages are judged by this machine's clock"):
            db.add_experiment(schedy.ManualSearch("E"))
        exp = db.get_experiment("E")
        exp.add_job(job_id="j", hyperparameters={})
        with exp.next_job() as job:
            job.results["ok"] = 1
        assert exp.get_job("j").status == "DONE"
        assert abs(db.storage.now() - time.time()) < 2
        db.close()
    finally:
        proxy.stop()


def test_a_lease_just_renewed_never_looks_older_than_it_is(s3_store_url):
    # LastModified is whole seconds: a marker renewed at x.93 s was dated x, and read at once
    # looked 0.9 s old, so leases of a second or so expired under a live worker.
    storage = open_storage(s3_store_url)
    ref = schedy.storage.ExperimentRef("E", "a" * 32)
    storage.now()
    excess = []
    for tenth in range(10):
        time.sleep((tenth / 10 + 0.05 - time.time() % 1) % 1)
        renewed = time.monotonic()
        storage.renew_lease(ref, "j", 1.0)
        (lease,) = storage.leases(ref)
        excess.append(lease.age - (time.monotonic() - renewed))
    assert max(excess) <= 0.05, excess
    storage.close()
