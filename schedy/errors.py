"""Errors raised by Schedy.

Every error is a :class:`SchedyError`. The service-shaped hierarchy of the original
client is kept so that code written against it keeps working::

    SchedyError
    +-- ConfigError                      bad configuration or store URL
    +-- HTTPError(body, code)
        +-- ClientError
        |   +-- ClientRequestError
        |   |   +-- ValidationError      invalid input (also a ValueError)
        |   |   +-- ResourceExistsError  create refused: the name is taken
        |   |   +-- ResourceNotFoundError
        |   |   +-- UnsafeUpdateError    the document changed since it was read
        |   |   |   +-- LeaseLostError   another worker holds the job now
        |   |   +-- NoJobError           nothing can be handed out
        |   +-- AuthenticationError
        |   |   +-- ReauthenticateError
        |   +-- UnhandledResponseError
        |       +-- CorruptDocumentError a stored document is not valid
        +-- ServerError
            +-- StorageError             the store failed or is unreachable
            +-- SchedulerError           a scheduler plugin's own code failed

Example:
    >>> from schedy import errors
    >>> try:
    ...     raise errors.NoJobError("No job left for experiment Demo.", None)
    ... except errors.SchedyError as e:
    ...     print(e)
    No job left for experiment Demo.
"""

from __future__ import annotations


class SchedyError(Exception):
    """Base class for all Schedy exceptions."""


class ConfigError(SchedyError):
    """The configuration (store URL, config file, token) cannot be used."""


class HTTPError(SchedyError):
    """Base class for errors of a transaction with a store or service.

    ``body`` is the message, ``code`` the HTTP status code or ``None`` when the
    error did not come from an HTTP response.
    """

    def __init__(self, body, code=None, *args):
        super().__init__(body, code, *args)
        self.body = body
        self.code = code

    def __str__(self) -> str:
        return str(self.body)


class ClientError(HTTPError):
    """Error caused by the client side."""


class ClientRequestError(ClientError):
    """Error caused by the content of the request."""


class ValidationError(ClientRequestError, ValueError):
    """Input that does not fit the wire format or a parameter's rules."""

    def __init__(self, body, code=400, *args):
        super().__init__(body, code, *args)


class AuthenticationError(ClientError):
    """Authentication error: access to the resource is forbidden."""


class ReauthenticateError(AuthenticationError):
    """Authentication error: the client should authenticate again and retry."""


class ResourceExistsError(ClientRequestError):
    """The resource cannot be created because it exists already."""


class ResourceNotFoundError(ClientRequestError):
    """The resource (experiment, job) does not exist."""


class UnsafeUpdateError(ClientRequestError):
    """The resource changed since it was read; writing would overwrite that change."""


class LeaseLostError(UnsafeUpdateError):
    """This worker's lease on a job expired and the job was taken from it."""


class NoJobError(ClientRequestError):
    """No job can be handed out right now."""


class UnhandledResponseError(ClientError):
    """A response or stored document could not be parsed or handled."""


class CorruptDocumentError(UnhandledResponseError):
    """A stored document is not valid JSON or does not fit its schema."""


class ServerError(HTTPError):
    """Error on the store's or service's side."""


class StorageError(ServerError):
    """The store failed or could not be reached."""


class SchedulerError(ServerError):
    """A scheduler plugin's own code failed (a bug in the plugin, not in the request or
    the store); the message names the scheduler, its plugin and the hook that failed."""
