"""Where the store is: the documented order of precedence."""

import io
import json

import pytest

import schedy
from schedy.config import default_store, resolve, user_config_path
from schedy.errors import ConfigError


def write_user_config(data):
    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_default_is_a_files_store_in_the_user_data_dir(tmp_path):
    config = resolve()
    assert config.source == "default store"
    assert config.url == str(tmp_path / "xdg-data" / "schedy" / "store") == str(default_store())
    db = schedy.SchedyDB()
    db.add_experiment(schedy.ManualSearch("E"))
    assert (default_store() / "experiments" / "E.json").exists()


def test_order_of_precedence(tmp_path, monkeypatch):
    file_config = tmp_path / "client.json"
    file_config.write_text(json.dumps({"db": "/from/config_path", "token": "t-file"}))
    write_user_config({"db": "/from/user/config", "token": "t-user"})
    assert resolve().url == "/from/user/config"
    monkeypatch.setenv("SCHEDY_DB", "/from/env")
    monkeypatch.setenv("SCHEDY_TOKEN", "t-env")
    assert (resolve().url, resolve().token) == ("/from/env", "t-env")
    assert (resolve(config_path=file_config).url, resolve(config_path=file_config).token) == ("/from/config_path", "t-file")
    assert resolve(config_path=file_config, config_override={"db": "/from/override"}).url == "/from/override"
    # A layer without a token leaves the token to the next one that names the same store or none.
    assert resolve(config_path=file_config, config_override={"db": "/from/config_path"}).token == "t-file"
    assert resolve(config_path=file_config, config_override={"token": "t-o"}).token == "t-o"
    assert resolve(config_path=file_config, config_override={"db": "/o"}, db="/from/flag").url == "/from/flag"
    monkeypatch.delenv("SCHEDY_DB")
    assert resolve(db="/from/flag").token == "t-env"  # SCHEDY_TOKEN alone goes with any store


def test_a_stores_settings_are_never_applied_to_another_store(tmp_path, monkeypatch):
    write_user_config({"db": "http://127.0.0.1:1", "token": "t-user", "endpoint_url": "http://127.0.0.1:2", "profile": "p"})
    for config in (resolve(db="http://127.0.0.1:3"), resolve(config_override={"db": "s3://other/p"})):
        assert config.token is None and "endpoint_url" not in config.extra and "profile" not in config.extra
    monkeypatch.setenv("SCHEDY_DB", "http://127.0.0.1:4")
    monkeypatch.setenv("SCHEDY_TOKEN", "t-env")
    assert resolve(db="http://127.0.0.1:3").token is None
    same = resolve(db="http://127.0.0.1:1")  # the user config's own store, given again
    assert (same.token, same.extra["profile"]) == ("t-user", "p")


def test_the_original_clients_config_file_is_read_when_there_is_no_user_config(tmp_path):
    original = tmp_path / "home" / ".schedy" / "client.json"
    original.parent.mkdir(parents=True)
    original.write_text(json.dumps({"root": "http://127.0.0.1:1", "token": "t-original"}))
    config = resolve()
    assert (config.url, config.token, config.source) == ("http://127.0.0.1:1", "t-original", f"config file {original}")
    write_user_config({"db": "/from/user/config"})
    assert (resolve().url, resolve().token) == ("/from/user/config", None)


def test_config_path_can_be_an_open_file():
    assert resolve(config_path=io.StringIO('{"db": "/x"}')).url == "/x"


def test_the_original_root_key_is_understood():
    assert resolve(config_override={"root": "http://127.0.0.1:1"}).url == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "cannot be read"), ("[1, 2]", "must hold a JSON object"),
     ("[" * 100_000 + "]" * 100_000, "cannot be read: maximum recursion depth")],
)
def test_bad_config_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        schedy.SchedyDB(config_path=path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        schedy.SchedyDB(config_path=tmp_path / "missing.json")


def test_file_urls(tmp_path):
    db = schedy.SchedyDB(db=(tmp_path / "a b").as_uri())
    db.add_experiment(schedy.ManualSearch("E"))
    assert (tmp_path / "a b" / "experiments" / "E.json").exists()
    with pytest.raises(ConfigError, match="not a host"):
        schedy.SchedyDB(db="file://remotehost/x").get_experiment("E")


def test_a_home_directory_no_one_has_is_a_config_error():
    with pytest.raises(ConfigError, match="no home directory for the files store path '~no-such-user-here/x'"):
        schedy.SchedyDB(db="~no-such-user-here/x").add_experiment(schedy.ManualSearch("E"))


@pytest.mark.parametrize("where", ["file", "under a file", "dangling link"])
def test_a_file_as_the_store_is_a_storage_error_naming_it_for_reads_too(tmp_path, where):
    (tmp_path / "file").write_text("not a directory")
    path = {"file": tmp_path / "file", "under a file": tmp_path / "file" / "store", "dangling link": tmp_path / "link"}[where]
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    for use in (lambda db: db.add_experiment(schedy.ManualSearch("E")), lambda db: list(db.get_experiments())):
        with pytest.raises(schedy.errors.StorageError, match=f"^the files store path {path} is not a directory"):
            use(schedy.SchedyDB(db=str(path)))
    assert (tmp_path / "file").read_text() == "not a directory"


@pytest.mark.parametrize("value", [False, 0, ""])
def test_a_store_url_that_is_there_but_false_is_an_error_not_the_next_store(value):
    # Skipping it would store the data in the next layer's store (the default one here).
    write_user_config({"db": value})
    with pytest.raises(ConfigError, match="the store URL from config file"):
        resolve()
    write_user_config({"db": "/x", "token": value})
    with pytest.raises(ConfigError, match="the token from config file"):
        resolve()


def test_a_broken_user_config_file_is_skipped_when_the_store_is_given(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("SCHEDY_DB", raising=False)
    broken = tmp_path / "client.json"
    broken.write_text("{not json")
    monkeypatch.setattr(schedy.config, "user_config_path", lambda: broken)
    with pytest.raises(ConfigError, match="cannot be read"):
        resolve()  # it would say where the store is: an error
    with caplog.at_level("WARNING", logger="schedy.config"):
        assert resolve(db=str(tmp_path / "store")).url == str(tmp_path / "store")
    assert "cannot be read" in caplog.text and "skipped: the store is the one --db gives" in caplog.text
    monkeypatch.setenv("SCHEDY_DB", str(tmp_path / "env-store"))
    assert resolve().url == str(tmp_path / "env-store")
