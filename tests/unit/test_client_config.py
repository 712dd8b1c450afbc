"""Where a client finds its server and key: arguments, environment, then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from faena.client_config import DEFAULT_SERVER, resolve_config


def test_arguments_win_over_the_environment() -> None:
    env = {"FAENA_SERVER": "http://env:1", "FAENA_API_KEY": "fk_env"}
    config = resolve_config("http://arg:2", "fk_arg", env=env)
    assert (config.server, config.api_key) == ("http://arg:2", "fk_arg")


def test_the_environment_wins_over_defaults(tmp_path: Path) -> None:
    (tmp_path / "admin.key").write_text("fk_file\n")
    env = {"FAENA_SERVER": "http://env:1", "FAENA_API_KEY": "fk_env", "FAENA_HOME": str(tmp_path)}
    config = resolve_config(env=env)
    assert (config.server, config.api_key) == ("http://env:1", "fk_env")


def test_the_admin_key_file_of_faena_home_is_the_last_resort(tmp_path: Path) -> None:
    (tmp_path / "admin.key").write_text("fk_file\n")
    config = resolve_config(env={"FAENA_HOME": str(tmp_path)})
    assert (config.server, config.api_key) == (DEFAULT_SERVER, "fk_file")


def test_faena_home_defaults_to_dot_faena(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".faena").mkdir()
    (tmp_path / ".faena" / "admin.key").write_text("fk_local")
    assert resolve_config(env={}).api_key == "fk_local"


def test_no_key_anywhere_is_none(tmp_path: Path) -> None:
    assert resolve_config(env={"FAENA_HOME": str(tmp_path)}).api_key is None


def test_a_host_and_port_becomes_a_url() -> None:
    assert resolve_config("localhost:9000/", env={}).server == "http://localhost:9000"
