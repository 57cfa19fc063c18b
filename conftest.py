"""Every test and doctest runs with its own store and config directories."""

import pytest

SCHEDY_VARIABLES = (
    "SCHEDY_DB",
    "SCHEDY_TOKEN",
    "SCHEDY_LEASE_SECONDS",
    "SCHEDY_PLUGINS",
    "SCHEDY_DEBUG",
    "SCHEDY_EXPERIMENT",
    "SCHEDY_JOB_ID",
    "SCHEDY_HYPERPARAMETERS",
    "SCHEDY_RESULTS_FILE",
)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """Point the home, user data and config directories into tmp_path; clear SCHEDY_* settings."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # (~/.schedy/client.json is read too)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    for name in SCHEDY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    # A job a test left RUNNING would keep beating against a store that is gone, filling
    # later tests' output with heartbeat warnings.
    from schedy.lease import keeper

    for job in keeper.held():
        keeper.release(job)
