"""Settings: parsing the environment, local defaults, what prod insists on."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.settings import Settings, SettingsError

PROD_ENV = {
    "THMNAYAH_DEPLOYMENT": "prod",
    "THMNAYAH_DATABASE_URL": "postgresql://app:secret@db:5432/thmnayah",
    "THMNAYAH_CLICKHOUSE_HOST": "clickhouse",
    "THMNAYAH_S3_BUCKET": "media",
    "THMNAYAH_NATS_URL": "nats://nats:4222",
    "THMNAYAH_REDIS_URL": "redis://redis:6379/0",
    "THMNAYAH_SECRET_KEY": "k" * 48,
}


def test_empty_environment_gives_embedded_local_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.deployment == "local"
    assert settings.data_dir == Path(".thmnayah")
    assert settings.database_url == "sqlite:///.thmnayah/thmnayah.db"
    assert settings.chdb_path == Path(".thmnayah/chdb")
    assert settings.object_store_dir == Path(".thmnayah/objects")
    assert settings.dagster_home == Path(".thmnayah/dagster_home")
    assert settings.nats_url == settings.redis_url == settings.s3_bucket == ""
    assert (settings.api_port, settings.clickhouse_port, settings.debug) == (8000, 8123, False)


def test_from_env_parses_each_type() -> None:
    settings = Settings.from_env(
        {
            "THMNAYAH_DATA_DIR": "/srv/thmnayah",
            "THMNAYAH_API_PORT": " 9001 ",
            "THMNAYAH_DEBUG": "Yes",
            "THMNAYAH_CLICKHOUSE_SECURE": "0",
            "THMNAYAH_NATS_STREAM": "EVENTS_TEST",
            "THMNAYAH_S3_REGION": "eu-west-1",
        }
    )
    assert settings.data_dir == Path("/srv/thmnayah")
    assert isinstance(settings.data_dir, Path)
    assert settings.api_port == 9001
    assert settings.debug is True
    assert settings.clickhouse_secure is False
    assert settings.nats_stream == "EVENTS_TEST"
    assert settings.s3_region == "eu-west-1"
    # The embedded database follows the data dir.
    assert settings.database_url == "sqlite:////srv/thmnayah/thmnayah.db"


def test_empty_variable_means_default() -> None:
    settings = Settings.from_env({"THMNAYAH_API_PORT": "", "THMNAYAH_DEPLOYMENT": ""})
    assert settings.api_port == 8000
    assert settings.deployment == "local"


def test_from_env_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THMNAYAH_DAGSTER_PORT", "3111")
    assert Settings.from_env().dagster_port == 3111


@pytest.mark.parametrize("raw", ["eighty", "80.5", "8O00"])
def test_bad_int_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="THMNAYAH_API_PORT must be an integer") as info:
        Settings.from_env({"THMNAYAH_API_PORT": raw})
    assert repr(raw) in str(info.value)


def test_bad_bool_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="THMNAYAH_DEBUG"):
        Settings.from_env({"THMNAYAH_DEBUG": "ture"})


def test_unknown_deployment_is_rejected() -> None:
    with pytest.raises(SettingsError, match="THMNAYAH_DEPLOYMENT"):
        Settings.from_env({"THMNAYAH_DEPLOYMENT": "staging"})


def test_prod_with_every_url_loads() -> None:
    settings = Settings.from_env(PROD_ENV)
    assert settings.deployment == "prod"
    assert settings.database_url == PROD_ENV["THMNAYAH_DATABASE_URL"]
    assert settings.clickhouse_host == "clickhouse"


def test_prod_without_urls_names_every_missing_variable() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"THMNAYAH_DEPLOYMENT": "prod"})
    message = str(info.value)
    for name in (
        "THMNAYAH_DATABASE_URL",
        "THMNAYAH_CLICKHOUSE_HOST",
        "THMNAYAH_S3_BUCKET",
        "THMNAYAH_NATS_URL",
        "THMNAYAH_REDIS_URL",
        "THMNAYAH_SECRET_KEY",
    ):
        assert name in message


@pytest.mark.parametrize("missing", sorted(set(PROD_ENV) - {"THMNAYAH_DEPLOYMENT"}))
def test_prod_names_exactly_the_missing_variable(missing: str) -> None:
    env = {k: v for k, v in PROD_ENV.items() if k != missing}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    named = {name for name in PROD_ENV if name in str(info.value)}
    assert named == {"THMNAYAH_DEPLOYMENT", missing}


def test_prod_refuses_a_sqlite_database() -> None:
    env = {**PROD_ENV, "THMNAYAH_DATABASE_URL": "sqlite:///prod.db"}
    with pytest.raises(SettingsError, match="THMNAYAH_DATABASE_URL"):
        Settings.from_env(env)


def test_with_moves_the_derived_database_along_with_data_dir(tmp_path: Path) -> None:
    moved = Settings(data_dir=tmp_path / "a").with_(data_dir=tmp_path / "b")
    assert moved.database_url == f"sqlite:///{tmp_path / 'b' / 'thmnayah.db'}"
    # An explicit URL is kept.
    explicit = Settings(database_url="sqlite:///elsewhere.db").with_(data_dir=tmp_path)
    assert explicit.database_url == "sqlite:///elsewhere.db"


def test_every_field_is_documented_with_a_prefixed_variable() -> None:
    documented = Settings.documented()
    names = [s.env for s in documented]
    assert len(names) == len(set(names))
    assert all(name.startswith("THMNAYAH_") for name in names)
    secrets = {s.env for s in documented if s.secret}
    assert {"THMNAYAH_DATABASE_URL", "THMNAYAH_CLICKHOUSE_PASSWORD"} <= secrets
