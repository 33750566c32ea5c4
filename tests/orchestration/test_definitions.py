"""The one Definitions loads under both deployments with the same resource keys, and its sensors
and op jobs do their work against real databases (and a real NATS in prod); the sensors' own tests
are in tests/sensors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from assets.media import media_partitions
from domain.auth.keys import Keyring
from domain.db import sync_engine
from domain.ids import new_id
from domain.migrate import upgrade
from domain.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.deployment import RESOURCE_KEYS, build_client, build_resources
from orchestration.jobs import auth_housekeeping_job
from resources.database import OperationalDatabase
from sensors.media import MEDIA_ANALYSIS_GROUP, analysis_assets
from tests.conftest import record_test_upload
from tests.sensors.test_cms_sensors import schedule_item


@pytest.fixture
def prod_settings(
    data_dir, postgres_url, nats_url, redis_url, s3_endpoint, aws_credentials, monkeypatch
) -> Settings:
    monkeypatch.setenv("THMNAYAH_DATABASE_URL", postgres_url)
    import boto3

    bucket = f"thmnayah-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return Settings(
        deployment="prod",
        data_dir=data_dir,
        database_url=postgres_url,
        clickhouse_host="127.0.0.1",
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        nats_url=nats_url,
        redis_url=redis_url,
        secret_key="s" * 40,
        nats_stream=f"T_{uuid.uuid4().hex[:8]}",
        nats_subject_prefix=f"t{uuid.uuid4().hex[:8]}",
    )


def _check_loaded(defs: dg.Definitions) -> dg.RepositoryDefinition:
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"content_items_snapshot", "stg_cms__content_items", "dim_content"} <= keys
    for key in repo.asset_graph.get_all_asset_keys():
        node = repo.asset_graph.get(key)
        assert node.group_name, f"{key} has no group"
        assert node.description, f"{key} has no description"
    assert {"publish_due_content_job", "outbox_relay_job", "content_analytics_job"} <= set(repo.job_names)
    assert {s.name for s in repo.sensor_defs} >= {
        "scheduled_content_sensor",
        "outbox_relay_sensor",
        "content_changes_sensor",
    }
    return repo


def test_definitions_load_under_local(local_settings: Settings) -> None:
    _check_loaded(build_definitions(local_settings))


def test_definitions_load_under_prod(prod_settings: Settings) -> None:
    defs = build_definitions(prod_settings)
    repo = _check_loaded(defs)
    # The prod resources resolve (EnvVar included) and answer: sensors run against PostgreSQL and NATS.
    upgrade(prod_settings.database_url)
    sensor = repo.get_sensor_def("scheduled_content_sensor")
    with dg.build_sensor_context(resources=defs.resources) as context:
        assert isinstance(sensor(context), dg.SkipReason)
    schedule_item(prod_settings.database_url, timedelta(hours=1))
    store = build_client(defs.resources["object_store"])
    store.put_bytes("probe/hello.txt", b"hello")
    assert store.get_bytes("probe/hello.txt") == b"hello" and store.health()["backend"] == "s3"
    assert build_client(defs.resources["event_bus"]).health()["backend"] == "nats"
    relay = repo.get_sensor_def("outbox_relay_sensor")
    with dg.build_sensor_context(resources=defs.resources) as context:
        assert isinstance(relay(context), dg.RunRequest)


def test_resource_keys_are_the_same_for_every_deployment(
    local_settings: Settings, prod_settings: Settings
) -> None:
    local, prod = build_resources(local_settings), build_resources(prod_settings)
    assert set(local) == set(prod) == set(RESOURCE_KEYS)
    assert {type(v).__name__ for v in local.values()} != {type(v).__name__ for v in prod.values()}


def test_auth_housekeeping_purges_only_what_ended_long_ago(migrated_url: str) -> None:
    from domain.auth import audit, rbac, sessions, users
    from domain.schema import OneTimeToken, UsedRefreshToken, UserSession

    engine = sync_engine(migrated_url)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        rbac.seed_system_roles(session)
        user = users.create_user(
            session,
            users.NewUser("keeper", "keeper@example.test", None),
            created_by=None,
            origin=audit.Origin(),
        )
        old, token = sessions.open_session(
            session,
            user,
            client_type="web",
            device_id="",
            origin=audit.Origin(),
            now=now - timedelta(days=40),
        )
        current, _ = sessions.open_session(
            session, user, client_type="mobile", device_id="", origin=audit.Origin()
        )
        session.add(
            UsedRefreshToken(token_hash="a" * 64, session_id=old.session_id, used_at=now - timedelta(days=40))
        )
        users.issue_link_token(session, user, "verify_email", Keyring("secret"), now=now - timedelta(days=3))
        fresh_link = users.issue_link_token(session, user, "reset_password", Keyring("secret"))
        current_id = current.session_id
    run = auth_housekeeping_job.execute_in_process(
        resources={"database": OperationalDatabase(url=migrated_url)}
    )
    assert run.success
    with Session(engine) as session:
        assert [s.session_id for s in session.scalars(sa.select(UserSession))] == [current_id]
        assert session.scalar(sa.select(sa.func.count()).select_from(UsedRefreshToken)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(OneTimeToken)) == 1
    engine.dispose()
    assert fresh_link


def test_tus_cleanup_removes_expired_unfinished_uploads_and_their_bytes(migrated_url: str, data_dir) -> None:
    from domain.media.uploads import new_tus_upload
    from domain.schema import TusUpload
    from orchestration.jobs import tus_cleanup_job
    from resources.object_store import LocalObjectStore
    from resources.upload_staging import UploadStaging

    staging = UploadStaging(root=str(data_dir / "uploads"))
    (data_dir / "uploads").mkdir()
    engine = sync_engine(migrated_url)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        stale = new_tus_upload(
            session, length=10, metadata={}, owner_id=None, staging_key="x", now=now - timedelta(days=2)
        )
        live = new_tus_upload(session, length=10, metadata={}, owner_id=None, staging_key="y")
        stale_id, live_id = stale.id, live.id
    staging.path(stale_id).write_bytes(b"12345")
    staging.path(live_id).write_bytes(b"123")
    run = tus_cleanup_job.execute_in_process(
        resources={
            "database": OperationalDatabase(url=migrated_url),
            "upload_staging": staging,
            "object_store": LocalObjectStore(root=str(data_dir / "objects")),
        }
    )
    assert run.success and run.output_for_node("purge_expired_uploads") == 1
    with Session(engine) as session:
        assert [u.id for u in session.scalars(sa.select(TusUpload))] == [live_id]
    engine.dispose()
    assert not staging.path(stale_id).exists() and staging.path(live_id).read_bytes() == b"123"


@dg.asset(partitions_def=media_partitions, group_name=MEDIA_ANALYSIS_GROUP)
def media_analysis_probe() -> None:
    """Stands in for the transcription and moderation assets of a later issue."""


def test_media_sensor_takes_the_retention_setting_and_analysis_assets_join_the_media_job(
    local_settings: Settings,
) -> None:
    upgrade(local_settings.database_url)
    engine = sync_engine(local_settings.database_url)
    with Session(engine) as session, session.begin():
        media_id = new_id()
        _, job = record_test_upload(session, media_id=media_id, size=1, filename="a.mp4")
        job.status, job.finished_at = "completed", datetime.now(UTC) - timedelta(days=8)
    engine.dispose()
    kept = {}
    for days in (7, 30):  # the upload is a partition already and its event read (cursor: its seq)
        defs = build_definitions(local_settings.with_(media_partition_retention_days=days))
        sensor = defs.get_repository_def().get_sensor_def("media_uploads_sensor")
        with (
            dg.DagsterInstance.ephemeral() as instance,
            dg.build_sensor_context(
                instance=instance, definitions=defs, resources=defs.resources, cursor="1"
            ) as context,
        ):
            instance.add_dynamic_partitions(media_partitions.name, [str(media_id)])
            sensor(context)
            kept[days] = instance.get_dynamic_partitions(media_partitions.name)
    assert kept == {7: [], 30: [str(media_id)]}

    assert analysis_assets(defs.get_repository_def()) == []
    repo = dg.Definitions.merge(defs, dg.Definitions(assets=[media_analysis_probe])).get_repository_def()
    assert analysis_assets(repo) == [media_analysis_probe.key]
    assert media_analysis_probe.key in repo.get_job("media_job").asset_layer.executable_asset_keys
