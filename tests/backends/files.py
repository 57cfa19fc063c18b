"""The files store for the contract tests."""

import pytest


@pytest.fixture
def files_store_url(tmp_path):
    return str(tmp_path / "store")
