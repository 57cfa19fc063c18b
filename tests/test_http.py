"""The Schedy service against a real ``schedy serve`` subprocess: auth, the REST details,
exactly-once claims through a SIGKILL and restart, and schemathesis on the OpenAPI document.

The storage contract itself runs through the http backend in test_contract.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest
import requests

import schedy
from schedy.errors import AuthenticationError
from schedy.server.api import ROUTES
from tests.backends.http import Service
from tests.workers import claimed_jobs

API = "/api/v1"


def schedy_cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "schedy", *args], capture_output=True, text=True, env=env, timeout=timeout)


def error_schema():
    import jsonschema

    from schedy import schema

    return jsonschema.Draft202012Validator(schema.get("urn:schedy:error"))


def auth(service):
    return {"Authorization": f"Bearer {service.token}"}


# -- authentication


def _route_path(pattern):
    values = iter(["E x/..", "j%1"])
    return API + "/" + "/".join(requests.utils.quote(next(values), safe="") if p == "{}" else p for p in pattern)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer schedy_wrong"}, {"Authorization": "Basic abc"}])
def test_every_route_but_health_needs_a_valid_token(http_service, headers):
    validator = error_schema()
    routes = [(m, p) for m, p, _ in ROUTES] + [("GET", ("openapi.json",))]
    for method, pattern in routes:
        response = requests.request(method, http_service.url + _route_path(pattern), headers=headers, json={}, timeout=10)
        if pattern == ("health",):
            assert response.status_code == 200
            continue
        assert response.status_code == 401, (method, pattern, response.status_code)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        validator.validate(response.json())
        assert http_service.token not in response.text


def test_client_errors_are_clear(http_service, monkeypatch):
    monkeypatch.setenv("SCHEDY_TOKEN", "schedy_wrong")
    db = schedy.SchedyDB(db=http_service.url)
    with pytest.raises(AuthenticationError, match="refused the token"):
        db.add_experiment(schedy.ManualSearch("E"))
    env = {**os.environ, "SCHEDY_TOKEN": "schedy_wrong"}
    result = schedy_cli("login", http_service.url, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "refused the token" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_service_that_never_answers_is_reported_while_the_client_waits(caplog):
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # takes connections, answers nothing
    try:
        from schedy_backends.http import HTTPStorage

        storage = HTTPStorage(f"http://127.0.0.1:{listener.getsockname()[1]}", retries=0, timeout=(5.0, 4.0))
        started = time.monotonic()
        with pytest.raises(schedy.errors.StorageError, match="did not answer within 4s"):
            storage.get_experiment("E")
        assert time.monotonic() - started < 30
        waits = [r.getMessage() for r in caplog.records if "has not answered for" in r.getMessage()]
        assert len(waits) == 1 and "experiment 'E'" in waits[0] and "waiting up to 4s" in waits[0]
    finally:
        listener.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://127 .0.0.1", "http://[::1"])
def test_service_urls_that_cannot_be_one_are_config_errors(url, monkeypatch):
    monkeypatch.delenv("SCHEDY_TOKEN", raising=False)
    with pytest.raises(schedy.errors.ConfigError, match="not a service URL"):
        schedy.SchedyDB(db=url).storage


@pytest.mark.parametrize("token", ["abc\n", "two words", "\u2713"])
def test_tokens_a_header_cannot_carry_are_config_errors(token, monkeypatch):
    monkeypatch.setenv("SCHEDY_TOKEN", token)
    with pytest.raises(schedy.errors.ConfigError, match="cannot carry"):
        schedy.SchedyDB(db="http://127.0.0.1:9").storage


@pytest.mark.parametrize(
    "answer, call, message",
    [
        (b"<html>hello</html>", lambda db: list(db.get_experiments()), "not a page"),
        ([], lambda db: db.get_experiment("E"), "the service answered, for experiment 'E': the document must be object, not array"),
        ({"items": []}, lambda db: db.get_experiment("E"), "for experiment 'E': the document lacks name, status, scheduler"),
        ({"items": [{"document": [1], "etag": "x"}], "next": None}, lambda db: list(db.get_experiments()),
         "the service answered, for experiments: the document must be object, not array"),
        ({"items": [{"document": {}}], "next": None}, lambda db: list(db.get_experiments()), "not a page"),
        # A write answered 200 by something that stored nothing was taken for done.
        ({}, lambda db: db.add_experiment(schedy.ManualSearch("E")), "for experiment 'E': the document lacks name, status, scheduler"),
        ({"name": "E", "status": "RUNNING", "scheduler": {"Manual": None}}, lambda db: db.add_experiment(schedy.ManualSearch("E")),
         "experiment 'E': the service answered without an ETag"),
        # Acting on another document than the one asked for: `schedy rm E` deleted OTHER.
        (({"name": "OTHER", "status": "RUNNING", "scheduler": {"Manual": None}, "uid": "0" * 32}, '"x"'),
         lambda db: db.get_experiment("E"), "experiment 'E': the service answered a document whose name is 'OTHER'"),
        # A listing whose cursor never moves on paged for ever.
        ({"items": [], "next": "same"}, lambda db: list(db.get_experiments()), "does not move on"),
    ],
)
def test_answers_that_are_not_the_services_are_clear_errors(answer, call, message):
    import http.server
    import json
    import threading

    document, etag = answer if isinstance(answer, tuple) else (answer, None)

    class WrongShapes(http.server.BaseHTTPRequestHandler):
        def answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = document if isinstance(document, bytes) else json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WrongShapes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        db = schedy.SchedyDB(db=f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(schedy.errors.UnhandledResponseError) as raised:
            call(db)
        assert message in str(raised.value)
    finally:
        server.shutdown()


def test_token_commands_and_revocation(http_service, tmp_path):
    store = http_service.store
    created = schedy_cli("token", "create", "bob", "--db", store)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("schedy_")
    listed = schedy_cli("token", "list", "--json", "--db", store)
    assert [t["name"] for t in json.loads(listed.stdout)] == ["bob", "tests"]
    assert token not in listed.stdout
    stored = b"".join(p.read_bytes() for p in tmp_path.parent.rglob("*") if p.is_file())  # temporary files too
    assert token.encode() not in stored, "the token itself was stored"
    duplicate = schedy_cli("token", "create", "bob", "--db", store)
    assert duplicate.returncode == 1 and "exists already" in duplicate.stderr
    url = http_service.url + API + "/experiments"
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    assert schedy_cli("token", "revoke", "bob", "--db", store).returncode == 0
    deadline = time.monotonic() + 30
    while requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code != 401:
        assert time.monotonic() < deadline, "a revoked token is still accepted"
        time.sleep(0.2)
    assert requests.get(url, headers=auth(http_service), timeout=10).status_code == 200


def test_a_token_made_through_another_replica_is_retried_until_the_service_reads_it(http_service, monkeypatch):
    from schedy.config import open_storage
    from schedy.server.tokens import CACHE_SECONDS, TokenStore

    tokens = TokenStore(open_storage(http_service.store))  # as `schedy token create` on another replica
    url = http_service.url + API + "/experiments"
    for retries, name in ((0, "first"), (2, "second")):
        time.sleep(CACHE_SECONDS + 0.1)
        assert requests.get(url, headers=auth(http_service), timeout=10).status_code == 200  # the service reads its tokens
        read = time.monotonic()
        monkeypatch.setenv("SCHEDY_TOKEN", tokens.create(name))
        monkeypatch.setattr(schedy.core, "NUM_AUTH_RETRIES", retries)
        db = schedy.SchedyDB(db=http_service.url)
        started = time.monotonic()
        assert started - read < CACHE_SECONDS / 2, "too slow to meet the service's copy of the tokens"
        if retries == 0:
            with pytest.raises(AuthenticationError, match="refused the token"):
                db.add_experiment(schedy.ManualSearch("Fresh"))
        else:
            db.add_experiment(schedy.ManualSearch("Fresh"))
            assert time.monotonic() - started >= schedy.core.AUTH_RETRY_SECONDS  # refused first, then retried
        db.close()
    assert [e.name for e in schedy.SchedyDB(db=http_service.url).get_experiments()] == ["Fresh"]


def test_login_writes_a_private_config_that_clients_use(http_service, tmp_path, monkeypatch):
    monkeypatch.delenv("SCHEDY_TOKEN")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDY_")}
    config = tmp_path / "xdg-config" / "schedy" / "client.json"
    config.parent.mkdir(parents=True)
    config.write_text("{broken")
    result = schedy_cli("gen-token", http_service.url, "--token", http_service.token, env=env)
    assert result.returncode == 1 and "cannot be read" in result.stderr and "Traceback" not in result.stderr
    assert config.read_text() == "{broken"  # the user's to fix, not replaced
    config.write_text('{"db": "/elsewhere", "note": "kept"}')
    result = schedy_cli("gen-token", http_service.url, "--token", http_service.token, env=env)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"db": http_service.url, "token": http_service.token, "note": "kept"}
    assert sorted(p.name for p in config.parent.iterdir()) == ["client.json"]
    # A config kept elsewhere and linked is written where it is kept.
    kept = tmp_path / "dotfiles" / "client.json"
    kept.parent.mkdir()
    config.rename(kept)
    config.symlink_to(kept)
    assert schedy_cli("gen-token", http_service.url, "--token", http_service.token, env=env).returncode == 0
    assert config.is_symlink() and json.loads(kept.read_text())["note"] == "kept"
    # With only the original client's file, its other keys move to the new one.
    config.unlink()
    original = tmp_path / "home" / ".schedy" / "client.json"
    original.parent.mkdir(parents=True)
    original.write_text('{"root": "http://127.0.0.1:1", "token": "old", "note": "from the original"}')
    assert schedy_cli("gen-token", http_service.url, "--token", http_service.token, env=env).returncode == 0
    assert json.loads(config.read_text()) == {
        "root": "http://127.0.0.1:1", "db": http_service.url, "token": http_service.token, "note": "from the original"
    }
    db = schedy.SchedyDB()  # URL and token from the user config
    db.add_experiment(schedy.ManualSearch("FromConfig"))
    assert db.get_experiment("FromConfig").name == "FromConfig"


def test_login_reads_a_piped_token_and_refuses_an_empty_line(http_service, monkeypatch):
    # Prompting again on an empty line read from a pipe asked for ever, then "Aborted."
    monkeypatch.delenv("SCHEDY_TOKEN")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDY_")}
    argv = [sys.executable, "-m", "schedy", "login", http_service.url]
    empty = subprocess.run(argv, input="\n", capture_output=True, text=True, env=env, timeout=60)
    assert (empty.returncode, empty.stderr) == (2, "Error: no token given: pass it as an argument or option, or on standard input\n")
    piped = subprocess.run(argv, input=http_service.token + "\n", capture_output=True, text=True, env=env, timeout=60)
    assert piped.returncode == 0 and piped.stdout.startswith(f"Logged in to {http_service.url}"), piped.stderr


def test_serve_refuses_a_public_address_without_auth(tmp_path):
    result = schedy_cli("serve", "--db", str(tmp_path / "s"), "--host", "0.0.0.0", "--no-auth", timeout=30)
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_port_0_says_the_port_it_listens_on(tmp_path):
    import re

    argv = [sys.executable, "-m", "schedy", "serve", "--db", str(tmp_path / "s"), "--port", "0", "--no-auth"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDY_")}
    server = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    try:
        said = server.stderr.readline()
        port = int(re.search(r"on http://127\.0\.0\.1:(\d+) ", said)[1])
        assert port != 0, said
        deadline = time.monotonic() + 60
        while True:
            try:
                assert requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).status_code == 200
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, said
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_on_an_address_in_use_is_one_line_and_exit_code_1(http_service, tmp_path):
    port = http_service.port  # (a port of its own could be one another test's service is about to take)
    result = schedy_cli("serve", "--db", str(tmp_path / "s"), "--port", str(port), timeout=30)
    assert result.returncode == 1
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize(
    "missing, args, message",
    [
        ("uvicorn", ["serve", "--db", "{tmp}"], "schedy serve needs the uvicorn package: pip install 'schedy[server]'"),
        ("requests", ["--db", "http://127.0.0.1:1", "list"], "the http backend (http(s):// stores) needs the requests package: pip install 'schedy[http]'"),
        ("boto3", ["--db", "s3://bucket/x", "list"], "the S3 backend (s3:// stores) needs the boto3 package: pip install 'schedy[s3]'"),
    ],
)
def test_a_missing_extra_names_what_to_install(tmp_path, missing, args, message):
    # The package is made unimportable in a real process, as on a machine without it.
    code = f"import sys; sys.modules[{missing!r}] = None; from schedy.cli.app import run; sys.exit(run(sys.argv[1:]))"
    args = [a.replace("{tmp}", str(tmp_path / "s")) for a in args]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (1, f"Error: {message}\n")


# -- REST details


def test_odd_limits_and_conditions_are_400s(http_service):
    s = requests.Session()
    s.headers.update(auth(http_service))
    base = http_service.url + API
    doc = {"name": "Q", "status": "RUNNING", "scheduler": {"Manual": None}}
    assert s.post(base + "/experiments", json=doc, timeout=10).status_code == 201
    for limit in ("1_0", " 10", "\u0661\u0660"):
        answer = s.get(base + "/experiments", params={"limit": limit}, timeout=10)
        assert answer.status_code == 400 and "limit must be an integer" in answer.json()["message"]
    star = s.put(base + "/experiments/Q", json=doc, headers={"If-Match": "*"}, timeout=10)
    assert star.status_code == 400 and "If-Match: * is not taken" in star.json()["message"]


def test_etags_conditions_errors_and_raw_path_routing(http_service):
    s = requests.Session()
    s.headers.update(auth(http_service))
    base = http_service.url + API
    validator = error_schema()
    name = "a/b %2F .."
    path = base + "/experiments/" + requests.utils.quote(name, safe="").replace(".", "%2E")
    doc = {"name": name, "status": "RUNNING", "scheduler": {"Manual": None}}
    created = s.post(base + "/experiments", json=doc, timeout=10)
    assert created.status_code == 201 and created.headers["ETag"].startswith('"')
    got = s.get(path, timeout=10)
    assert got.json()["name"] == name and got.headers["ETag"] == created.headers["ETag"]
    again = s.put(path, json=doc, headers={"If-None-Match": "*"}, timeout=10)
    assert again.status_code == 412 and again.json()["error"] == "ResourceExistsError"
    updated = s.put(path, json={**got.json(), "status": "DONE"}, headers={"If-Match": got.headers["ETag"]}, timeout=10)
    assert updated.status_code == 200 and updated.headers["ETag"] != got.headers["ETag"]
    stale = s.put(path, json=got.json(), headers={"If-Match": got.headers["ETag"]}, timeout=10)
    assert stale.status_code == 412 and stale.json()["error"] == "UnsafeUpdateError"
    missing = s.get(path + "/jobs/nope", timeout=10)
    assert missing.status_code == 404 and "'nope'" in missing.json()["message"] and name in missing.json()["message"]
    unknown = s.post(base + "/experiments", json={**doc, "name": "U", "scheduler": {"NoSuch": None}}, timeout=10)
    assert unknown.status_code == 400 and "NoSuch" in unknown.json()["message"]
    bad_json = s.post(base + "/experiments", data=b"{nope", headers={"Content-Type": "application/json"}, timeout=10)
    assert bad_json.status_code == 400
    too_big = s.post(base + "/experiments", data=b" " * (9 * 1024 * 1024), timeout=30)
    assert too_big.status_code == 413
    for response in (again, stale, missing, unknown, bad_json, too_big):
        validator.validate(response.json())
    assert s.get(path, timeout=10).json()["status"] == "DONE", "a refused write changed the document"


def test_methods_no_route_takes_get_json_errors_naming_the_allowed_ones(http_service):
    s = requests.Session()
    s.headers.update(auth(http_service))
    validator = error_schema()
    for method, path, allowed in (
        ("TRACE", API + "/experiments", "GET, POST"),
        ("FOO", API + "/experiments", "GET, POST"),
        ("POST", "/", "GET, HEAD"),
    ):
        response = s.request(method, http_service.url + path, timeout=10)
        assert response.status_code == 405 and response.headers["Content-Type"] == "application/json"
        assert response.json()["error"] == "MethodNotAllowed" and response.headers["Allow"] == allowed
        validator.validate(response.json())
    anonymous = requests.request("TRACE", http_service.url + API + "/experiments", timeout=10)
    assert anonymous.status_code == 401  # the token is checked first, as for any API request


def test_settings_no_float_holds_are_refused_when_the_experiment_is_made(http_service):
    # Whole numbers are exact in Python and in JSON: a range or weights that fit a float
    # each but not once subtracted or summed failed later, in every claim, with a 500.
    s = requests.Session()
    s.headers.update(auth(http_service))
    for name, dist in (
        ("R", {"uniform": {"low": -(10**308), "high": 10**308}}),
        ("W", {"choice": {"values": [1, 2], "weights": [10**308, 10**308]}}),
    ):
        doc = {"name": name, "status": "RUNNING", "scheduler": {"RandomSearch": {"x": dist}}}
        response = s.post(http_service.url + API + "/experiments", json=doc, timeout=10)
        assert response.status_code == 400 and response.json()["error"] == "ValidationError", response.text
        assert "finite" in response.json()["message"]


def test_a_job_too_large_for_the_service_ends_crashed_not_running(http_service):
    db = schedy.SchedyDB(db=http_service.url)
    db.add_experiment(schedy.ManualSearch("E"))
    exp = db.get_experiment("E")
    exp.add_job(job_id="big", hyperparameters={"x": 1})
    with pytest.raises(schedy.errors.ValidationError, match="larger than"):
        with exp.next_job() as job:
            job.results["blob"] = "x" * (9 * 1024 * 1024)  # the service takes 8 MiB by default
    stored = exp.get_job("big")
    assert (stored.status, stored.results) == ("CRASHED", {})
    assert "could not store the job" in stored.error and "larger than" in stored.error


def test_writes_that_would_lose_or_hide_data_are_refused(http_service):
    """Found by fuzzing the service: each used to answer 200/201/204 or 500."""
    s = requests.Session()
    s.headers.update(auth(http_service))
    base = http_service.url + API
    validator = error_schema()
    s.post(base + "/experiments", json={"name": "Keep", "status": "RUNNING", "scheduler": {"Manual": None}}, timeout=10)
    stored = s.get(base + "/experiments/Keep", timeout=10)
    uid = stored.json()["uid"]
    job = {"id": "j", "experiment": "Keep", "status": "QUEUED", "hyperparameters": {"x": 1}, "results": {}}
    assert s.post(base + "/experiments/Keep/jobs", json=job, timeout=10).status_code == 201

    # An update without a uid keeps the experiment's (a new one would cut it off from its jobs).
    plain_update = {"name": "Keep", "status": "DONE", "scheduler": {"Manual": None}}
    updated = s.put(base + "/experiments/Keep", json=plain_update, headers={"If-Match": stored.headers["ETag"]}, timeout=10)
    assert updated.status_code == 200 and updated.json()["uid"] == uid
    assert [i["document"]["id"] for i in s.get(base + "/experiments/Keep/jobs", timeout=10).json()["items"]] == ["j"]
    moved = s.put(base + "/experiments/Keep", json={**plain_update, "uid": "f" * 32},
                  headers={"If-Match": updated.headers["ETag"]}, timeout=10)
    assert moved.status_code == 400 and "uid" in moved.json()["message"]

    # An empty If-Match is not "no condition".
    blank = s.put(base + "/experiments/Keep", json=plain_update, headers={"If-Match": '""'}, timeout=10)
    assert blank.status_code == 400

    # A job write under another uid (a deleted experiment's) is refused, not stored out of sight.
    ghost = {**job, "id": "ghost", "status": "DONE"}
    foreign = s.put(base + "/experiments/Keep/jobs/ghost", params={"uid": "a" * 32}, json=ghost,
                    headers={"If-None-Match": "*"}, timeout=10)
    assert foreign.status_code == 404 and "deleted" in foreign.json()["message"]

    # A job id ending in a newline: it used to be stored, and then no one could claim, list
    # or delete it (every client refuses the name; Python's "$" let it through the schema).
    poison = {**job, "id": "q\n"}
    refused = s.post(base + "/experiments/Keep/jobs", json=poison, timeout=10)
    assert refused.status_code == 400 and "id" in refused.json()["message"]
    validator.validate(refused.json())

    # A job under an id the experiment's scheduler keeps for itself (a PBT slice), in any write that creates it.
    pbt = {"name": "P", "status": "RUNNING",
           "scheduler": {"PBT": {"objective": "max", "qualityResultName": "acc", "exploit": {"truncate": 0.2}}}}
    assert s.post(base + "/experiments", json=pbt, timeout=10).status_code == 201
    def refused_in_every_creating_write(doc: dict, message: str) -> None:
        jobs = f"{base}/experiments/{doc['experiment']}/jobs"
        for refused in (
            s.post(jobs, json=doc, timeout=10),
            s.put(f"{jobs}/{doc['id']}", json=doc, headers={"If-None-Match": "*"}, timeout=10),
            s.put(f"{jobs}/{doc['id']}", json=doc, timeout=10),
        ):
            assert refused.status_code == 400 and message in refused.json()["message"], refused.text
            validator.validate(refused.json())

    refused_in_every_creating_write({**job, "id": "m000-g001", "experiment": "P"}, "slice id")
    assert s.get(base + "/experiments/P/jobs", timeout=10).json()["items"] == []

    # A job a random search could never have proposed (a hyperparameter missing or unknown),
    # in any write that creates it; an existing job's update is the write's to decide, as for clients.
    rs = {"name": "R", "status": "RUNNING", "scheduler": {"RandomSearch": {"x": {"uniform": {"low": 0, "high": 1}}}}}
    assert s.post(base + "/experiments", json=rs, timeout=10).status_code == 201
    for hps in ({}, {"x": 0.5, "y": 1}):
        unfit = {**job, "id": "r1", "experiment": "R", "hyperparameters": hps}
        refused_in_every_creating_write(unfit, "need exactly the hyperparameters x")
    assert s.get(base + "/experiments/R/jobs", timeout=10).json()["items"] == []
    fit = {**job, "id": "r1", "experiment": "R", "hyperparameters": {"x": 0.5}}
    assert s.post(base + "/experiments/R/jobs", json=fit, timeout=10).status_code == 201
    overwrite = s.put(base + "/experiments/R/jobs/r1", json={**fit, "hyperparameters": {}}, timeout=10)
    assert overwrite.status_code == 200, overwrite.text

    # No lease marker for a job that does not exist.
    lease = s.put(base + "/experiments/Keep/jobs/nope/lease", json={"seconds": 5}, timeout=10)
    assert lease.status_code == 404

    # Values no reader could use: 400 with the value named, never 500.
    deep = "[" * 5000 + "]" * 5000
    bodies = [
        ("deep JSON", b'{"name": "D", "status": "RUNNING", "scheduler": {"Manual": null}, "x": ' + deep.encode() + b"}"),
        ("nested job values", json.dumps({**job, "id": "n", "hyperparameters": {"x": json.loads("[" * 100 + "]" * 100)}}).encode()),
        ("huge int", json.dumps({**job, "id": "h", "results": {"acc": 10**400}}).encode()),
        ("lone surrogate", json.dumps({**job, "id": "s", "hyperparameters": {"f": "\ud800"}}).encode()),
        ("lone surrogate id", json.dumps({**job, "id": "\udfff"}).encode()),
    ]
    for what, body in bodies:
        url = base + ("/experiments" if what == "deep JSON" else "/experiments/Keep/jobs")
        response = s.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 400, (what, response.status_code, response.text[:300])
        validator.validate(response.json())
    surrogate_worker = json.dumps({"worker": {"id": "\ud800", "host": "h", "pid": 1}}).encode()
    claim = s.post(base + "/experiments/Keep/nextjob", data=surrogate_worker, headers={"Content-Type": "application/json"},
                   timeout=10)
    assert claim.status_code == 400
    assert s.get(base + "/experiments/Keep/jobs/j", timeout=10).json()["status"] == "QUEUED"
    huge_lease = {"name": "L", "status": "RUNNING", "scheduler": {"Manual": None}, "settings": {"leaseSeconds": 1e300}}
    assert s.post(base + "/experiments", json=huge_lease, timeout=10).status_code == 400
    assert [i["document"]["id"] for i in s.get(base + "/experiments/Keep/jobs", timeout=10).json()["items"]] == ["j"]


# -- exactly once through a killed and restarted service


def _worker(url: str, token: str, name: str, out: str) -> None:
    os.environ["SCHEDY_TOKEN"] = token
    exp = schedy.SchedyDB(db=url).get_experiment(name)
    with open(out, "w") as f:
        for job in claimed_jobs(exp):
            with job:
                job.results["by"] = os.getpid()
            f.write(job.job_id + "\n")
            f.flush()


def _count_lines(paths):
    total = 0
    for path in paths:
        if os.path.exists(path):
            with open(path) as f:
                total += sum(1 for _ in f)
    return total


@pytest.mark.timeout(900)
def test_exactly_once_through_a_killed_service(tmp_path):
    workers, per_worker = 8, 400
    store = str(tmp_path / "store")
    service = Service(store).start().wait()
    try:
        db = schedy.SchedyDB(db=store)  # fill the queue directly: the claims are under test
        db.add_experiment(schedy.ManualSearch("Stress"))
        exp = db.get_experiment("Stress")
        added = {exp.add_job(hyperparameters={"i": i}).job_id for i in range(workers * per_worker)}
        outs = [str(tmp_path / f"ran-{i}") for i in range(workers)]
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(service.url, service.token, "Stress", out)) for out in outs]
        for p in procs:
            p.start()
        kills = 0
        for fraction in (0.25, 0.6):
            deadline = time.monotonic() + 600
            while _count_lines(outs) < fraction * len(added) and time.monotonic() < deadline:
                time.sleep(0.05)
            service.kill()
            kills += 1
            time.sleep(0.5)
            service.restart()
        for p in procs:
            p.join(600)
            assert p.exitcode == 0
        assert kills == 2
        ran = [line for out in outs for line in open(out).read().split("\n") if line]
        assert len(ran) == len(set(ran)), "a job ran twice"
        assert set(ran) == added, "a job was lost"
        jobs = list(exp.all_jobs())
        assert {j.job_id for j in jobs} == added, "a job appeared or vanished"
        assert all(j.status == "DONE" and "by" in j.results for j in jobs)
    finally:
        service.stop()


# -- OpenAPI


def test_openapi_document_is_valid_and_built_on_the_shipped_schemas(http_service):
    from jsonschema import Draft202012Validator

    doc = requests.get(http_service.url + API + "/openapi.json", headers=auth(http_service), timeout=10).json()
    assert doc["openapi"].startswith("3.1")
    for name, component in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(component)
    job = doc["components"]["schemas"]["Job"]
    assert job["properties"]["id"] == {"$ref": "#/components/schemas/Common_name"}
    assert set(job["required"]) >= {"id", "experiment", "status", "hyperparameters", "results"}


@pytest.mark.timeout(900)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(http_service, tmp_path):
    checks = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance"
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", http_service.url + API + "/openapi.json",
         "-H", f"Authorization: Bearer {http_service.token}", "--checks", checks,
         "--max-examples", "25", "--seed", "1", "--no-color", "--report-dir", str(tmp_path / "st")],
        capture_output=True, text=True, timeout=800, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Tested: 14" in result.stdout


def test_a_store_the_service_cannot_write_is_a_503_naming_the_path(http_service):
    experiments = os.path.join(http_service.store, "experiments")
    shutil.rmtree(experiments, ignore_errors=True)
    with open(experiments, "w") as f:
        f.write("in the way")
    s = requests.Session()
    s.headers.update(auth(http_service))
    doc = {"name": "E", "status": "RUNNING", "scheduler": {"Manual": None}}
    answer = s.post(http_service.url + API + "/experiments", json=doc, timeout=10)
    assert answer.status_code == 503
    assert answer.json()["error"] == "StorageError"
    assert answer.json()["message"].startswith(f"Not a directory: {experiments}")
    error_schema().validate(answer.json())
    assert s.get(http_service.url + "/api/v1/health", timeout=10).status_code == 200
    # A client that gives up on the 503 says what the service said.
    from schedy_backends.http import HTTPStorage

    client = HTTPStorage(http_service.url, http_service.token, retries=1)
    with pytest.raises(schedy.errors.StorageError, match=f"answered 503: Not a directory: {experiments}"):
        client.create_experiment(doc)


def test_a_token_store_that_cannot_be_read_is_a_503(http_service):
    (tokens,) = [os.path.join(d, n) for d, _, names in os.walk(http_service.store) for n in names if n == "tokens.json"]
    os.remove(tokens)
    os.mkdir(tokens)
    answer = requests.get(http_service.url + API + "/experiments", headers=auth(http_service), timeout=10)
    assert answer.status_code == 503 and answer.json()["error"] == "StorageError"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    error_schema().validate(answer.json())


def test_a_lease_is_renewed_only_for_the_running_job_under_it(http_service):
    from schedy.lease import keeper

    s = requests.Session()
    s.headers.update(auth(http_service))
    base = http_service.url + API
    db = schedy.SchedyDB(db=http_service.url)
    exp = schedy.ManualSearch("L")
    exp.lease_seconds = 30
    db.add_experiment(exp)
    exp = db.get_experiment("L")
    exp.add_job(job_id="j", hyperparameters={"x": 1})
    lease = base + "/experiments/L/jobs/j/lease"
    running = os.path.join(http_service.store, "running")

    def markers():
        return [name for _, _, names in os.walk(running) for name in names]

    queued = s.put(lease, json={"seconds": 30}, timeout=10)
    assert queued.status_code == 412 and "QUEUED" in queued.json()["message"]
    assert markers() == []

    stale_etag = exp.get_job("j").etag
    job = exp.next_job()
    keeper.release(job)  # renewed by hand below
    assert len(markers()) == 1
    for seconds, etag in ((60, job.etag), (30, stale_etag)):
        refused = s.put(lease, json={"seconds": seconds}, headers={"If-Match": f'"{etag}"'}, timeout=10)
        assert refused.status_code == 412, (seconds, etag)
    assert len(markers()) == 1
    assert s.put(lease, json={"seconds": 30}, headers={"If-Match": f'"{job.etag}"'}, timeout=10).status_code == 204
    assert job._heartbeat()

    taken = exp.get_job("j")
    taken.status = "DONE"
    taken.put()
    assert s.put(lease, json={"seconds": 30}, timeout=10).status_code == 412
    assert not job._heartbeat() and job.should_stop()


def test_the_dashboard_runs_only_its_own_script_and_answers_are_never_sniffed(http_service):
    import base64
    import hashlib
    import re

    page = requests.get(http_service.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        (source,) = re.findall(rf"<{tag}>(.*?)</{tag}>", page.text, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert policy[directive] == f"'sha256-{digest}'", tag
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and page.headers["X-Frame-Options"] == "DENY"
    echoed = requests.get(http_service.url + "/<script>alert(1)</script>", timeout=10)
    assert echoed.status_code == 404 and echoed.headers["Content-Type"] == "application/json"
    for response in (page, echoed, requests.get(http_service.url + API + "/health", timeout=10)):
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_claims_of_one_process_never_share_a_claim_time(monkeypatch):
    # A retried claim is found by worker id (one per process) and claim time: two threads
    # claiming in the same microsecond must not name the same claim, even with a clock
    # that stands still.
    import threading

    from schedy_backends import http as http_backend

    monkeypatch.setattr(http_backend.time, "time", lambda: 1_800_000_000.25)
    stamps: list[str] = []

    def claim_times():
        stamps.extend(http_backend.claim_time() for _ in range(500))

    threads = [threading.Thread(target=claim_times) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == len(set(stamps)) == 2000
