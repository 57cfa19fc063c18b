"""The s3 backend: ``s3://bucket/prefix`` on AWS S3 or an S3-compatible store.

Many machines share one experiment through one bucket, with no server. Claims rest on
S3's conditional writes: ``PUT`` with ``If-None-Match: *`` creates only if the key is
absent, ``PUT``/``DELETE`` with ``If-Match: <etag>`` change only the version that was
read. 412 PreconditionFailed is a conflict the core sees; 409
ConditionalRequestConflict, 500, 502, 503 (SlowDown), 504 and dropped connections are
retried with exponential backoff and full jitter.

S3 ETags are content hashes: writing identical bytes keeps the ETag, so two writers
holding the old ETag could both win. :class:`~schedy.objects.ObjectStorage` puts a
fresh random ``revision`` in every document, so every write changes the bytes.

A write retried after a fault whose outcome is unknown (the connection dropped after
the request was sent, a 500) may have happened already: a 412 on the retry is then
checked by reading the key back. If the stored bytes are the ones this client sent
(their revision makes them unique), the write is taken as done.

On first use of a bucket and prefix, a probe makes sure the endpoint enforces
conditional writes (some gateways accept the headers and ignore them): it creates a
fresh key twice with ``If-None-Match: *`` and writes a missing key with ``If-Match``;
unless both repeated writes are refused, the store is not used.

Connection settings come from boto3's standard chain: credentials and region from the
environment, ``~/.aws`` or an instance role, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``) for S3-compatible stores. A config file may also set
``endpoint_url``, ``profile`` and ``region``.

Lease ages are judged by the store's clock: objects' LastModified against the ``Date``
header of the store's responses (local elapsed time only fills in between responses),
both whole seconds, so ages are taken a second younger (``clock_resolution``).

Example:
    >>> storage = S3Backend.open("s3://my-bucket/team/schedy", {})  # doctest: +SKIP
    >>> storage.store.requests  # doctest: +SKIP
    0
"""

from __future__ import annotations

import collections
import email.utils
import os
import re
import sys
import threading
import time
import warnings
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

from schedy import core
from schedy.errors import ConfigError, StorageError
from schedy.extras import need
from schedy.forks import renew_locks_in_children
from schedy.hookspecs import hookimpl
from schedy.objects import ObjectInfo, ObjectStorage, ObjectStore, PreconditionFailed, StoredObject

#: Attempts per request before a transient fault becomes a StorageError.
ATTEMPTS = 10
#: The first retry's longest wait; later ones double, up to schedy.core.Retry.BACKOFF_MAX.
BACKOFF_BASE = 0.05
#: HTTP connections kept per client: get_many and many worker threads share them.
POOL_CONNECTIONS = 64
#: Threads fetching documents in parallel in get_many.
FETCH_THREADS = 16
#: Documents remembered by ETag so that relisting a prefix reads only what changed.
CACHE_ENTRIES = 50_000
CACHE_MAX_BYTES = 256 * 1024
RETRY_STATUSES = (409, 500, 502, 503, 504)
RETRY_CODES = ("ConditionalRequestConflict", "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout")

#: What botocore lets through as a bucket name (wider than AWS's rules, for S3-compatible stores).
_BUCKET_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}\Z")

_probed: set[tuple[str, str, str]] = set()


def _new_locks() -> None:
    global _probe_lock
    _probe_lock = threading.Lock()


_new_locks()
renew_locks_in_children(sys.modules[__name__])


class _Ambiguous:
    """Whether an earlier attempt of this request may have reached the store."""

    def __init__(self):
        self.maybe_done = False


def parse_url(url: str) -> tuple[str, str]:
    """``(bucket, root)`` of an ``s3://bucket/prefix`` URL; ``root`` is ``""`` or ends in '/'.

    Example:
        >>> parse_url("s3://my-bucket/team/schedy/")
        ('my-bucket', 'team/schedy/')
    """
    parsed = urlparse(url)
    if parsed.scheme.lower() != "s3" or not parsed.netloc:
        raise ConfigError(f"an S3 store URL looks like s3://bucket/prefix, not {url!r}")
    if parsed.query or parsed.fragment:
        raise ConfigError(f"an S3 store URL takes no query or fragment: {url!r}")
    if not _BUCKET_NAME.match(parsed.netloc):
        raise ConfigError(f"{parsed.netloc!r} is not an S3 bucket name (letters, digits, '.', '-' and '_'): {url!r}")
    prefix = parsed.path.strip("/")
    return parsed.netloc, (prefix + "/" if prefix else "")


class S3ObjectStore(ObjectStore):
    """An :class:`~schedy.objects.ObjectStore` in an S3 bucket. See the module docstring.

    ``requests`` counts the HTTP requests sent (retries included), ``retried`` the
    attempts that failed transiently and were retried, ``confirmed`` the writes found
    done by an earlier attempt whose answer was lost.
    """

    #: LastModified and Date are whole seconds.
    clock_resolution = 1.0

    def __init__(
        self,
        bucket: str,
        root: str = "",
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
    ):
        need("boto3", "s3", "the S3 backend (s3:// stores)")
        self.bucket = bucket
        self.root = root
        self.url = f"s3://{bucket}/{root}".rstrip("/")
        self._endpoint_url = endpoint_url
        self._profile = profile
        self._region = region
        self._pid: int | None = None
        self._client_obj: Any = None
        self._executor: Any = None
        self._new_locks()
        renew_locks_in_children(self)
        self.requests = 0
        self.retried = 0
        self.confirmed = 0
        self._offset: float | None = None  # store clock minus local monotonic clock (lower bound)
        self._offset_at = 0.0
        self._cache: collections.OrderedDict[str, StoredObject] = collections.OrderedDict()
        self._listed: dict[str, str] = {}

    def _new_locks(self) -> None:
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()

    # -- the client (one per process: a forked child must not share its parent's sockets)
    def _client(self) -> Any:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._client_obj = self._make_client()
                    self._executor = None
                    self._pid = os.getpid()
        return self._client_obj

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        try:
            session = boto3.session.Session(profile_name=self._profile)
        except Exception as e:  # botocore's ProfileNotFound and kin
            raise ConfigError(f"cannot open {self.url}: {e}") from None
        config = Config(
            max_pool_connections=POOL_CONNECTIONS,
            retries={"total_max_attempts": 1},  # retried here, where conditional writes are understood
            connect_timeout=10,
            read_timeout=60,
            tcp_keepalive=True,
        )
        try:
            client = session.client(
                "s3", endpoint_url=self._endpoint_url, region_name=self._region or session.region_name or "us-east-1",
                config=config,
            )
        except Exception as e:  # a malformed endpoint URL or region (ValueError, botocore's InvalidRegionError...)
            raise ConfigError(f"cannot open {self.url}: {e}") from None
        client.meta.events.register("before-send.s3", self._count_request)
        return client

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to."""
        return self._client().meta.endpoint_url

    def _count_request(self, **kwargs) -> None:
        with self._count_lock:
            self.requests += 1

    # -- requests, retries and the store's clock
    def _note_date(self, metadata: dict) -> None:
        date = (metadata.get("HTTPHeaders") or {}).get("date")
        if not date:
            return
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return
        local = time.monotonic()
        # Date is rounded down to the second and was stamped before it arrived: a lower
        # bound of the offset; the largest recent one is the tightest.
        bound = server - local
        with self._lock:
            if self._offset is None or local - self._offset_at > 60 or bound > self._offset:
                self._offset, self._offset_at = bound, local

    def _call(
        self, operation: str, key: str | None, ambiguous: _Ambiguous | None = None, read_body: bool = False, **params
    ) -> dict:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            EndpointProviderError,
            NoCredentialsError,
            ParamValidationError,
            PartialCredentialsError,
        )

        client = self._client()
        where = f"s3://{self.bucket}/{key}" if key is not None else f"s3://{self.bucket}/{self.root}"
        retry = core.Retry(BACKOFF_BASE, ATTEMPTS)
        for attempt in range(ATTEMPTS):
            try:
                response = getattr(client, operation)(Bucket=self.bucket, **params)
                if read_body:  # a connection dropped while the body comes is retried too
                    response = {**response, "Body": response["Body"].read()}
            except ClientError as e:
                self._note_date(e.response.get("ResponseMetadata") or {})
                status = (e.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
                code = (e.response.get("Error") or {}).get("Code", "")
                if status in RETRY_STATUSES or code in RETRY_CODES:
                    if ambiguous is not None and status != 503 and code != "ConditionalRequestConflict":
                        ambiguous.maybe_done = True
                    error = f"{status} {code}"
                elif code == "NoSuchBucket" or (operation == "head_bucket" and status == 404):
                    raise ConfigError(f"bucket {self.bucket!r} does not exist at {self.endpoint}") from None
                elif status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                    raise ConfigError(f"access to {where} at {self.endpoint} was denied: {code}") from None
                else:
                    raise
            except (ParamValidationError, EndpointProviderError) as e:  # refused before sending: retrying cannot help
                raise ConfigError(f"S3 {operation} of {where}: {' '.join(str(e).split())}") from None
            except (NoCredentialsError, PartialCredentialsError):
                raise ConfigError(
                    f"no AWS credentials for {self.url}: set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                    "or use an instance role"
                ) from None
            except BotoCoreError as e:
                if ambiguous is not None and not isinstance(e, (EndpointConnectionError, ConnectTimeoutError)):
                    ambiguous.maybe_done = True  # sent, but no answer came back
                error = type(e).__name__
            else:
                self._note_date(response.get("ResponseMetadata") or {})
                return response
            with self._count_lock:
                self.retried += 1
            if attempt + 1 < ATTEMPTS:
                retry.wait(attempt + 1, f"S3 {operation} of {where} at {self.endpoint}: {error}")
        raise StorageError(f"S3 {operation} of {where} at {self.endpoint} failed {ATTEMPTS} times; last: {error}", 503)

    @staticmethod
    def _status(error: Exception) -> tuple[int | None, str]:
        response = getattr(error, "response", None) or {}
        return (response.get("ResponseMetadata") or {}).get("HTTPStatusCode"), (response.get("Error") or {}).get("Code", "")

    def _key(self, key: str) -> str:
        return self.root + key

    # -- conditional-write probe
    def _ensure_probed(self) -> None:
        ident = (self.endpoint, self.bucket, self.root)
        if ident in _probed:
            return
        with _probe_lock:
            if ident not in _probed:
                self._probe()
                _probed.add(ident)

    def _probe(self) -> None:
        token = os.urandom(8).hex()
        key = f".schedy-probe-{token}"
        refusing = f"refusing to use {self.url}: workers could claim the same job twice"

        def refused(data: bytes, conditions: dict) -> bool:
            try:
                self._put(key if "IfNoneMatch" in conditions else key + "-missing", data, conditions)
            except PreconditionFailed:
                return True
            return False

        self._put(key, token.encode(), {"IfNoneMatch": "*"})
        try:
            if not refused(b"second", {"IfNoneMatch": "*"}):
                raise ConfigError(
                    f"the S3 endpoint {self.endpoint} accepted a second create-only write "
                    f"(If-None-Match: *) of an existing key: it ignores conditional writes; {refusing}"
                )
            if not refused(b"missing", {"IfMatch": '"0"'}):
                self.delete(key + "-missing")
                raise ConfigError(
                    f"the S3 endpoint {self.endpoint} accepted an If-Match write of a missing key: "
                    f"it does not enforce conditional writes; {refusing}"
                )
        finally:
            self.delete(key)

    # -- cache of documents by ETag
    def _remember(self, key: str, obj: StoredObject) -> None:
        if len(obj.data) > CACHE_MAX_BYTES:
            return
        with self._lock:
            self._cache[key] = obj
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_ENTRIES:
                old, _ = self._cache.popitem(last=False)
                self._listed.pop(old, None)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._cache.pop(key, None)
            self._listed.pop(key, None)

    # -- the ObjectStore contract
    def get(self, key: str) -> StoredObject | None:
        from botocore.exceptions import ClientError

        full = self._key(key)
        try:
            response = self._call("get_object", full, read_body=True, Key=full)
            data = response["Body"]
        except ClientError as e:
            if self._status(e)[1] in ("NoSuchKey", "404"):
                self._forget(key)
                return None
            raise self._error("get", full, e) from None
        obj = StoredObject(data, self._field(response, "ETag", "get", full), self._field(response, "LastModified", "get", full).timestamp())
        self._remember(key, obj)
        return obj

    def get_many(self, keys: Iterable[str]) -> list[StoredObject | None]:
        """Fetch in parallel; a key listed just before with an unchanged ETag is served from memory."""
        keys = list(keys)
        results: list[StoredObject | None] = [None] * len(keys)
        missing = []
        with self._lock:
            for i, key in enumerate(keys):
                cached = self._cache.get(key)
                if cached is not None and self._listed.get(key) == cached.etag:
                    results[i] = cached
                else:
                    missing.append(i)
        if len(missing) == 1:
            results[missing[0]] = self.get(keys[missing[0]])
        elif missing:
            for i, obj in zip(missing, self._pool().map(self.get, [keys[i] for i in missing])):
                results[i] = obj
        return results

    def _pool(self) -> Any:
        self._client()
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="schedy-s3")
        return self._executor

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
        if before_write is not None:
            current = None
            if if_match is not None:
                # No lock to compare under: a read first, so that a write sure to be refused
                # does not run before_write (the conditional PUT still decides).
                current = self.get(key)
                if current is None or current.etag != if_match:
                    raise PreconditionFailed(key, missing=current is None)
            before_write(current)
        conditions: dict[str, str] = {}
        if if_none_match:
            conditions["IfNoneMatch"] = "*"
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if conditions:
            self._ensure_probed()
        return self._put(key, data, conditions)

    def _put(self, key: str, data: bytes, conditions: dict) -> str:
        from botocore.exceptions import ClientError

        full = self._key(key)
        ambiguous = _Ambiguous()
        try:
            response = self._call("put_object", full, ambiguous, Key=full, Body=data, **conditions)
        except ClientError as e:
            status, code = self._status(e)
            # (a 404 is a missing key's If-Match, said with S3's code; any other is no S3 answer)
            if status not in (404, 412) or not conditions or (status == 404 and code != "NoSuchKey"):
                raise self._error("put", full, e) from None
            if ambiguous.maybe_done:
                current = self.get(key)
                if current is not None and current.data == data:
                    with self._count_lock:
                        self.confirmed += 1
                    return current.etag  # an earlier attempt of this very write went through
            self._forget(key)
            raise PreconditionFailed(key, missing=status == 404 or code == "NoSuchKey") from None
        etag = self._field(response, "ETag", "put", full)
        self._remember(key, StoredObject(data, etag, self.now()))
        return etag

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        from botocore.exceptions import ClientError

        full = self._key(key)
        ambiguous = _Ambiguous()
        params = {"IfMatch": if_match} if if_match is not None else {}
        if params:
            self._ensure_probed()
        try:
            self._call("delete_object", full, ambiguous, Key=full, **params)
        except ClientError as e:
            status, code = self._status(e)
            if not params or status not in (404, 412):
                raise self._error("delete", full, e) from None
            missing = status == 404 or code == "NoSuchKey"
            if not (missing and ambiguous.maybe_done):  # gone after our own earlier attempt: done
                raise PreconditionFailed(key, missing=missing) from None
        finally:
            self._forget(key)

    def list(self, prefix: str, *, start_after: str | None = None, limit: int = 1000) -> list[ObjectInfo]:
        from botocore.exceptions import ClientError

        found: list[ObjectInfo] = []
        params: dict[str, Any] = {"Prefix": self._key(prefix), "Delimiter": "/"}
        if start_after is not None:
            params["StartAfter"] = self._key(start_after)
        skip = len(self.root)
        listed = {}
        while len(found) < limit:
            try:
                response = self._call("list_objects_v2", self._key(prefix), MaxKeys=min(1000, limit - len(found)), **params)
            except ClientError as e:
                raise self._error("list", self._key(prefix), e) from None
            self._field(response, "IsTruncated", "list", self._key(prefix))  # (an answer that is not S3's lists nothing)
            for item in response.get("Contents", ()):
                key = item["Key"][skip:]
                found.append(ObjectInfo(key, item["LastModified"].timestamp()))
                listed[key] = item["ETag"]
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                break
            params.pop("StartAfter", None)
            params["ContinuationToken"] = token
        with self._lock:
            self._listed.update(listed)
        return found[:limit]

    def now(self) -> float:
        if self._offset is None or time.monotonic() - self._offset_at > 60:
            from botocore.exceptions import ClientError

            try:
                self._call("head_bucket", None)
            except ClientError as e:
                raise self._error("head", self.root, e) from None
            if self._offset is None:
                # An endpoint (or a proxy before it) that dates no answer: this machine's clock
                # stands in for the store's, which leases on several machines then rely on.
                warnings.warn(f"the S3 endpoint {self.endpoint} sends no Date header: lease ages are judged "
                              "by this machine's clock", stacklevel=2)
                with self._lock:
                    self._offset, self._offset_at = time.time() - time.monotonic(), time.monotonic()
        return time.monotonic() + self._offset

    def _error(self, verb: str, full_key: str, error: Exception) -> StorageError:
        status, code = self._status(error)
        said = f"{status} {code}" if code and code != str(status) else f"HTTP {status} without an S3 error code (is it an S3 endpoint?)"
        return StorageError(f"S3 {verb} of s3://{self.bucket}/{full_key} at {self.endpoint} failed: {said}", status)

    def _field(self, response: dict, name: str, verb: str, full_key: str) -> Any:
        """``response[name]``; a StorageError if the answer lacks it (an endpoint, or a
        proxy, answering 200 with something that is not S3's)."""
        try:
            return response[name]
        except KeyError:
            raise StorageError(f"S3 {verb} of s3://{self.bucket}/{full_key} at {self.endpoint}: the answer is not "
                               f"S3's (no {name}; is it an S3 endpoint?)", 502) from None

    def close(self) -> None:
        if self._executor is not None and self._pid == os.getpid():
            self._executor.shutdown(wait=False)
        if self._client_obj is not None and self._pid == os.getpid():
            self._client_obj.close()
        self._client_obj = self._executor = None
        self._pid = None


class S3Backend:
    """Backend plugin for ``s3://bucket/prefix`` URLs."""

    NAME = "s3"
    SCHEMES = ("s3",)

    @classmethod
    def open(cls, url: str, config: dict) -> ObjectStorage:
        """Open the store at ``url``; ``config`` may hold ``endpoint_url``, ``profile``, ``region``."""
        bucket, root = parse_url(url)
        settings = {}
        for name in ("endpoint_url", "profile", "region"):
            value = config.get(name) or None
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"the S3 setting {name!r} must be a string, not {value!r}")
            settings[name] = value
        return ObjectStorage(S3ObjectStore(bucket, root, **settings))


@hookimpl
def register_backends(register):
    register(S3Backend)
