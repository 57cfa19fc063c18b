"""The http backend: a client of a Schedy service (``http(s)://host:port``).

One ``requests`` Session per storage (connections are reused), a timeout on every
request, and retries with exponential backoff and full jitter when the service cannot
be reached or answers 502/503/504 (a restart, a load balancer without a healthy
replica); a request refused for its token is sent again ``schedy.core.NUM_AUTH_RETRIES``
times. The token comes from ``SCHEDY_TOKEN`` or the user config (``schedy login``).

Retrying writes is safe because every write is conditional, and a retry whose first
attempt did reach the store is recognised:

* a retried create (POST, or PUT with ``If-None-Match: *``) or If-Match update that
  gets 412 reads the stored document; if it is the one this client sent (all but the
  server-set ``revision``), the write is taken as done and its ETag returned, otherwise
  the conflict is raised (``ResourceExistsError`` / ``UnsafeUpdateError``);
* a retried delete that gets 404 is taken as done;
* a retried ``nextjob`` carries the same worker id and claim time with ``retry: true``:
  the service returns the job it claimed on the first attempt, if any, so a claim is
  never handed out twice nor left orphaned.

Example:
    >>> storage = HTTPStorage("http://127.0.0.1:8421", token="schedy_...")  # doctest: +SKIP
    >>> storage.get_experiment("MyTask").doc["status"]  # doctest: +SKIP
    'RUNNING'
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from urllib.parse import quote, urlparse

from schedy import core, errors, jsonio, schema
from schedy.extras import need
from schedy.forks import renew_locks_in_children
from schedy.hookspecs import hookimpl
from schedy.names import format_time
from schedy.objects import EXPERIMENT_SCHEMA, JOB_SCHEMA
from schedy.storage import ClaimingStorage, ExperimentRef, Page, Versioned

API = "/api/v1"
#: (connect, read) timeouts in seconds.
TIMEOUT = (5.0, 120.0)
RETRIES = 10
#: The first retry's longest wait; later ones double, up to schedy.core.Retry.BACKOFF_MAX.
BACKOFF_BASE = 0.1
RETRY_STATUSES = (502, 503, 504)

_ERRORS = {
    name: getattr(errors, name)
    for name in (
        "ValidationError",
        "ResourceExistsError",
        "ResourceNotFoundError",
        "UnsafeUpdateError",
        "LeaseLostError",
        "NoJobError",
        "AuthenticationError",
        "CorruptDocumentError",
        "SchedulerError",
        "StorageError",
        "ConfigError",
    )
}


def segment(name: str) -> str:
    """One path segment for ``name``: everything but letters, digits and ``_-~`` percent-encoded.

    >>> segment("../a b/%")
    '%2E%2E%2Fa%20b%2F%25'
    """
    return quote(name, safe="-_~").replace(".", "%2E")


def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "revision"}


def _error_body(response) -> tuple[str, str] | None:
    """(error name, message) of an answer holding an error document, else None."""
    try:
        body = response.json()
        return body["error"], body["message"]
    except (ValueError, KeyError, TypeError):
        return None


def _said(response) -> str:
    """What an error answer's body says, as ": <message>" (a 503 names the store's failure)."""
    said = _error_body(response)
    return f": {' '.join(str(said[1]).split())[:300]}" if said and said[1] else ""


class HTTPStorage(ClaimingStorage):
    """The storage contract over the Schedy service's REST API. See the module docstring."""

    def __init__(self, url: str, token: str | None = None, retries: int = RETRIES, timeout=TIMEOUT):
        requests = need("requests", "http", "the http backend (http(s):// stores)")

        try:
            parsed = urlparse(url)
            parsed.port  # noqa: B018 (raises for a port that is not a number in range)
            requests.Request("GET", url).prepare()
        except (ValueError, requests.exceptions.RequestException) as e:
            raise errors.ConfigError(f"not a service URL: {url!r} ({e})") from None
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise errors.ConfigError(f"not a service URL: {url!r} (expected http(s)://host:port)")
        if token and not (token.isascii() and token.isprintable() and " " not in token):
            raise errors.ConfigError("the service token has characters an HTTP header cannot carry (check SCHEDY_TOKEN)")
        self.url = url
        self._base = url.rstrip("/") + API
        self._requests = requests
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        self._has_token = bool(token)
        self.retries = retries
        self.timeout = timeout

    # -- transport
    def _send(self, method: str, path: str, *, body=None, params=None, headers=None, what: str = "", retry_body=None):
        """(response, attempts used); raises StorageError when the service stays out of reach.

        ``retry_body``, if given, is sent instead of ``body`` by every retry.
        """
        data = jsonio.dumps(body) if body is not None else None
        all_headers = dict(headers or {})
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        attempt, auth_retries = 1, 0  # a request refused for its token was not handled: no attempt
        retry = core.Retry(BACKOFF_BASE, self.retries + 1)
        while True:
            if attempt == 2 and retry_body is not None:
                data = jsonio.dumps(retry_body)
            try:
                with _waits.waiting(self, what):
                    response = self._session.request(
                        method, self._base + path, data=data, params=params, headers=all_headers, timeout=self.timeout
                    )
            except (self._requests.ConnectionError, self._requests.exceptions.ChunkedEncodingError) as e:
                # A body cut short (the service died while answering) is as unknown as no answer.
                failure = f"cannot reach the Schedy service at {self.url}: {type(e).__name__}"
            except self._requests.Timeout:
                failure = f"the Schedy service at {self.url} did not answer within {self.timeout[1]:g}s"
            else:
                if response.status_code == 401 and self._has_token and auth_retries < core.NUM_AUTH_RETRIES:
                    auth_retries += 1
                    time.sleep(core.AUTH_RETRY_SECONDS)
                    continue
                if response.status_code not in RETRY_STATUSES:
                    return response, attempt
                failure = f"the Schedy service at {self.url} answered {response.status_code}{_said(response)}"
            if attempt > self.retries:
                raise errors.StorageError(f"{failure} ({what}; gave up after {attempt} attempts)", None)
            retry.wait(attempt, f"{failure} ({what})")
            attempt += 1

    def _error(self, response, what: str) -> errors.SchedyError:
        name, message = _error_body(response) or ("", response.text[:200].strip() or response.reason)
        code = response.status_code
        if code == 401:
            hint = "set SCHEDY_TOKEN or run `schedy login URL`" if not self._has_token else "check SCHEDY_TOKEN / `schedy login`"
            return errors.AuthenticationError(f"the Schedy service at {self.url} refused the token: {message} ({hint})", code)
        if code == 403:
            return errors.AuthenticationError(f"the Schedy service at {self.url} forbids this: {message}", code)
        if code == 413:  # a document the service will never take, as one that fails its schema
            return errors.ValidationError(f"{what}: {message}", code)
        cls = _ERRORS.get(name)
        if name == "NoJobError":
            return errors.NoJobError(message, None)
        if cls is None:
            if code == 404:
                cls, message = errors.ResourceNotFoundError, f"{what}: {message}"
            elif code == 412:
                cls = errors.UnsafeUpdateError
            elif code >= 500:
                cls = errors.ServerError
            else:
                cls = errors.UnhandledResponseError
        return cls(message, code)

    def _doc(self, response, what: str, schema_id: str) -> Versioned:
        """The document of an answer, checked as a store's reads are: a server that is not
        a Schedy service (or a broken one) is an error naming what was asked, never a
        document the caller trips over, nor a write taken for done."""
        try:
            doc = response.json()
        except ValueError:
            raise errors.UnhandledResponseError(f"{what}: the service answered something that is not JSON", response.status_code) from None
        etag = (response.headers.get("ETag") or "").removeprefix("W/").strip('"')
        return Versioned(self._checked(doc, schema_id, what, response.status_code), etag or self._no_etag(what, response))

    @staticmethod
    def _checked(doc, schema_id: str, what: str, status: int) -> dict:
        try:
            schema.check(doc, schema_id, what)
        except errors.ValidationError as e:
            raise errors.UnhandledResponseError(f"the service answered, for {e}", status) from None
        return doc

    @staticmethod
    def _no_etag(what: str, response) -> str:
        raise errors.UnhandledResponseError(f"{what}: the service answered without an ETag", response.status_code)

    def _call(self, method: str, path: str, what: str, **kwargs):
        response, _ = self._send(method, path, what=what, **kwargs)
        if response.status_code >= 400:
            raise self._error(response, what)
        return response

    def _write(self, method: str, path: str, doc: dict, what: str, schema_id: str, params=None, headers=None) -> str:
        response, attempts = self._send(method, path, body=doc, params=params, headers=headers, what=what)
        if response.status_code == 412 and attempts > 1:
            # Our first attempt may have been written before its answer was lost.
            try:
                stored = self._doc(self._call("GET", path, what, params=params), what, schema_id)
            except errors.ResourceNotFoundError:
                stored = None
            if stored is not None and _strip(stored.doc) == _strip(doc):
                return stored.etag
        if response.status_code >= 400:
            raise self._error(response, what)
        return self._doc(response, what, schema_id).etag

    @staticmethod
    def _conditions(etag: str | None, create: bool = False) -> dict:
        if create:
            return {"If-None-Match": "*"}
        return {"If-Match": f'"{etag}"'} if etag else {}

    def _page(self, response, schema_id: str, what: str, cursor: str | None) -> Page:
        try:
            body = response.json()
            schema.check(body, "urn:schedy:page", what)
            found = [(item["document"], item["etag"]) for item in body["items"]]
            if not all(isinstance(etag, str) and etag for _, etag in found):
                raise ValueError("an item without an ETag")
        except (ValueError, KeyError, errors.ValidationError):
            raise errors.UnhandledResponseError(
                f"{what} at {self.url}: the service answered something that is not a page", response.status_code
            ) from None
        items = [Versioned(self._checked(doc, schema_id, what, response.status_code), etag) for doc, etag in found]
        following = body.get("next")
        if following is not None and cursor is not None and following <= cursor:
            # A service's cursors are keys, in order: one that does not move on would page for ever.
            raise errors.UnhandledResponseError(
                f"{what} at {self.url}: the service's listing does not move on (cursor {following!r} after {cursor!r})",
                response.status_code,
            )
        return Page(items, following, list(body.get("problems", [])))

    # -- experiments
    def _exp_path(self, name: str) -> str:
        return f"/experiments/{segment(name)}"

    def get_experiment(self, name: str) -> Versioned:
        what = f"experiment {name!r}"
        return _named(self._doc(self._call("GET", self._exp_path(name), what), what, EXPERIMENT_SCHEMA), what, name=name)

    def create_experiment(self, doc: dict) -> str:
        path = self._exp_path(doc["name"])
        return self._write("PUT", path, doc, f"experiment {doc['name']!r}", EXPERIMENT_SCHEMA, headers=self._conditions(None, True))

    def update_experiment(self, doc: dict, etag: str | None) -> str:
        path = self._exp_path(doc["name"])
        return self._write("PUT", path, doc, f"experiment {doc['name']!r}", EXPERIMENT_SCHEMA, headers=self._conditions(etag))

    def delete_experiment(self, name: str, etag: str | None = None) -> None:
        self._delete(self._exp_path(name), f"experiment {name!r}", etag)

    def _delete(self, path: str, what: str, etag: str | None, params=None) -> None:
        response, attempts = self._send("DELETE", path, params=params, headers=self._conditions(etag), what=what)
        if response.status_code == 404 and attempts > 1:
            return  # the first attempt deleted it
        if response.status_code >= 400:
            raise self._error(response, what)

    def list_experiments(self, cursor: str | None = None, limit: int = 100) -> Page:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._page(self._call("GET", "/experiments", "experiments", params=params), EXPERIMENT_SCHEMA, "experiments", cursor)

    def heartbeat_ages(self, exp: ExperimentRef) -> dict[str, float] | None:
        what = f"leases of experiment {exp.name!r}"
        try:
            response = self._call("GET", f"{self._exp_path(exp.name)}/leases", what, params={"uid": exp.uid})
        except errors.ResourceNotFoundError:
            return None  # a service older than this route (or the experiment deleted meanwhile): not known
        try:
            body = response.json()
        except ValueError:
            body = None
        self._checked(body, "urn:schedy:leases", what, response.status_code)
        return {lease["job"]: lease["age"] for lease in body["leases"]}

    # -- jobs
    def _job_path(self, exp: ExperimentRef, job_id: str) -> str:
        return f"{self._exp_path(exp.name)}/jobs/{segment(job_id)}"

    @staticmethod
    def _job_what(exp: ExperimentRef, job_id: str) -> str:
        return f"job {job_id!r} of experiment {exp.name!r}"

    def get_job(self, exp: ExperimentRef, job_id: str) -> Versioned:
        what = self._job_what(exp, job_id)
        versioned = self._doc(self._call("GET", self._job_path(exp, job_id), what, params={"uid": exp.uid}), what, JOB_SCHEMA)
        return _named(versioned, what, id=job_id, experiment=exp.name)

    def create_job(self, exp: ExperimentRef, doc: dict) -> str:
        path = self._job_path(exp, doc["id"])
        return self._write(
            "PUT", path, doc, self._job_what(exp, doc["id"]), JOB_SCHEMA, {"uid": exp.uid}, self._conditions(None, True)
        )

    def update_job(self, exp: ExperimentRef, doc: dict, etag: str | None) -> str:
        path = self._job_path(exp, doc["id"])
        return self._write("PUT", path, doc, self._job_what(exp, doc["id"]), JOB_SCHEMA, {"uid": exp.uid}, self._conditions(etag))

    def delete_job(self, exp: ExperimentRef, job_id: str, etag: str | None = None) -> None:
        self._delete(self._job_path(exp, job_id), self._job_what(exp, job_id), etag, {"uid": exp.uid})

    def list_jobs(
        self, exp: ExperimentRef, cursor: str | None = None, limit: int = 100, status: str | None = None
    ) -> Page:
        params = {"uid": exp.uid, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        if status:
            params["status"] = status
        path, what = f"{self._exp_path(exp.name)}/jobs", f"jobs of experiment {exp.name!r}"
        page = self._page(self._call("GET", path, what, params=params), JOB_SCHEMA, what, cursor)
        for item in page.items:
            _named(item, what, experiment=exp.name)
        return page

    def renew_lease(self, exp: ExperimentRef, job_id: str, seconds: float) -> None:
        self._call(
            "PUT", self._job_path(exp, job_id) + "/lease", self._job_what(exp, job_id),
            body={"seconds": seconds}, params={"uid": exp.uid},
        )

    # -- claims
    def claim(self, exp: ExperimentRef, worker: dict, lease_seconds: float | None) -> Versioned:
        what = f"next job of experiment {exp.name!r}"
        request = {"worker": worker, "leaseSeconds": lease_seconds, "claimed": claim_time(), "uid": exp.uid}
        path = f"{self._exp_path(exp.name)}/nextjob"
        versioned = self._doc(self._call("POST", path, what, body=request, retry_body={**request, "retry": True}), what, JOB_SCHEMA)
        return _named(versioned, what, experiment=exp.name, status="RUNNING")

    def close(self) -> None:
        self._session.close()


def _named(versioned: Versioned, what: str, **expected: str) -> Versioned:
    """``versioned`` if its document is the one asked for (its name, id, experiment...):
    acting on another (``schedy rm`` deleting it) because a service or a proxy answered
    with it would act on the wrong document."""
    for field, value in expected.items():
        if versioned.doc.get(field) != value:
            raise errors.UnhandledResponseError(
                f"{what}: the service answered a document whose {field} is {versioned.doc.get(field)!r}", None
            )
    return versioned


class _Waits:
    """Reports, once, a request that has waited ``schedy.core.Retry.NOTICE_SECONDS`` for
    its answer: a service that takes connections and never answers would otherwise look
    like a hang until the read timeout. One thread a process looks every half second; a
    request only adds and removes itself (a timer a request cost more than a fast answer)."""

    def __init__(self) -> None:
        self._count = 0
        self.reset()

    def reset(self) -> None:
        """Start afresh (in a forked child: the parent's requests and thread are not its own)."""
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[float, "HTTPStorage", str]] = {}
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def waiting(self, storage: "HTTPStorage", what: str):
        with self._lock:
            self._count += 1
            key = self._count
            self._pending[key] = (time.monotonic(), storage, what)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="schedy-http-waits", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._pending.pop(key, None)

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            with self._lock:
                overdue = [(key, *entry) for key, entry in self._pending.items() if now - entry[0] >= core.Retry.NOTICE_SECONDS]
                for key, *_ in overdue:
                    self._pending.pop(key)
            for _, started, storage, what in overdue:
                core.log.warning(
                    "the Schedy service at %s has not answered for %.0fs (%s); waiting up to %gs",
                    storage.url, now - started, what, storage.timeout[1],
                )


_waits = _Waits()
_last_claim_micros = 0


def _new_locks() -> None:
    global _claims_lock
    _claims_lock = threading.Lock()
    _waits.reset()


_new_locks()
renew_locks_in_children(sys.modules[__name__])


def claim_time() -> str:
    """Now, in the wire format, but never a time an earlier claim of this process had.

    The service finds the job a retried claim made by its worker id and claim time; the
    threads of a process share the worker id, so two of their claims in one microsecond
    would name each other's job.

    Example:
        >>> claim_time() < claim_time()
        True
    """
    global _last_claim_micros
    with _claims_lock:
        micros = _last_claim_micros = max(round(time.time() * 1_000_000), _last_claim_micros + 1)
    return format_time(micros / 1_000_000)


class HTTPBackend:
    """Backend plugin for ``http://`` and ``https://`` URLs (a Schedy service)."""

    NAME = "http"
    SCHEMES = ("http", "https")

    @classmethod
    def open(cls, url: str, config: dict) -> HTTPStorage:
        """Open the service at ``url``; ``config["token"]`` authenticates, else SCHEDY_TOKEN or the user config's."""
        token = config.get("token")
        if not token:
            from schedy.config import resolve

            token = resolve().token
        return HTTPStorage(url, token=token)


@hookimpl
def register_backends(register):
    register(HTTPBackend)
