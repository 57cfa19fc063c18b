"""Fixtures shared by the test suite.

``store_url`` is parametrized over every backend: each backend's fixture module
(``tests/backends/*.py``, loaded as pytest plugins below) provides ``<name>_store_url``.
"""

import pytest

import schedy

pytest_plugins = ["tests.backends.files", "tests.backends.http", "tests.backends.s3"]

#: Backend name -> fixture giving a fresh, empty store URL for one test.
BACKENDS = {"files": "files_store_url", "http": "http_store_url", "s3": "s3_store_url"}


@pytest.fixture(params=sorted(BACKENDS))
def store_url(request):
    """A fresh store on each backend."""
    return request.getfixturevalue(BACKENDS[request.param])


@pytest.fixture
def db(store_url):
    """A SchedyDB on a fresh store of each backend."""
    database = schedy.SchedyDB(db=store_url)
    yield database
    database.close()
