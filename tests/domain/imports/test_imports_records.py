"""Imported records: dedupe by source and key, unchanged vs updated, each conflict policy (a hand
edit winning under merge until unlocked), publish policy, failed items, and the content's origin."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from domain import content
from domain.errors import IllegalTransition
from domain.imports import jobs, records
from domain.schema import ContentItem, ImportedContent, ImportJob, ImportSource, OutboxEvent


def record(
    n: int = 1, *, title: str = "Episode one", description: str = "About it", **mapped
) -> records.Record:
    return records.Record(
        dedupe_key=f"rss:guid-{n}",
        external_id=f"guid-{n}",
        original={"guid": f"guid-{n}", "title": title, "summary": description},
        transformed={
            "type": "audio",
            "title": {"en": title},
            "description": {"en": description},
            "tags": ["podcast"],
            **mapped,
        },
        url=f"https://feeds.example.test/ep/{n}",
    )


def run(db, source_id, editor, items) -> tuple[uuid.UUID, list[records.Outcome]]:
    """One run of the source importing `items`: its job id and each item's outcome."""
    with db.session() as session:
        job = jobs.create_job(session, source_id, "incremental", actor=editor)
        jobs.start(session, job.id)
        source = session.get(ImportSource, source_id)
        outcomes = [records.upsert(session, job, source, item) for item in items]
        jobs.complete(session, job.id)
        return job.id, outcomes


def outcomes_of(db, source_id, editor, items) -> list[str]:
    return [o.outcome for o in run(db, source_id, editor, items)[1]]


def item_of(db, content_id) -> ContentItem:
    with db.session() as session:
        item = session.get(ContentItem, content_id)
        session.expunge(item)
        return item


def edit(db, content_id, editor, changes) -> None:
    with db.session() as session:
        item = session.get(ContentItem, content_id)
        content.update_content(session, content_id, changes, expected_version=item.version, actor=editor)


def count(db, table) -> int:
    with db.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(table))


def test_a_re_run_creates_no_duplicates_and_finds_everything_unchanged(db, editor, make_source) -> None:
    source_id = make_source()
    items = [record(1), record(2, title="Episode two")]
    first_job, first = run(db, source_id, editor, items)
    assert [o.outcome for o in first] == ["new", "new"]
    second_job, second = run(db, source_id, editor, items)
    assert [o.outcome for o in second] == ["unchanged", "unchanged"]
    assert [o.content_id for o in second] == [o.content_id for o in first]
    assert count(db, ContentItem) == 2 and count(db, ImportedContent) == 2
    with db.session() as session:
        job = session.get(ImportJob, second_job)
        assert (job.unchanged_items, job.created_items, jobs.success_rate(job)) == (2, 0, 1.0)
        created = session.scalars(
            sa.select(OutboxEvent.aggregate_id).where(OutboxEvent.event_type == content.CONTENT_CREATED)
        ).all()
        assert sorted(created) == sorted(str(o.content_id) for o in first)
        imported = records.find(session, source_id, "rss:guid-1")
        assert imported.import_job_id == second_job and imported.import_status == "success"
        assert imported.original_data["guid"] == "guid-1" and imported.transformed_data["title"] == {
            "en": "Episode one"
        }


def test_the_same_key_in_two_sources_is_two_items(db, editor, make_source) -> None:
    a, b = make_source(), make_source()
    assert outcomes_of(db, a, editor, [record(1)]) == ["new"]
    assert outcomes_of(db, b, editor, [record(1)]) == ["new"]
    with db.session() as session:
        assert {row.source_id for row in records.by_external_id(session, "guid-1")} == {a, b}


def test_an_updated_record_is_written_and_emits_content_updated(db, editor, make_source) -> None:
    source_id = make_source(conflict_policy="overwrite")
    _, (first,) = run(db, source_id, editor, [record(1)])
    _, (second,) = run(db, source_id, editor, [record(1, title="Episode one (remastered)")])
    assert second.outcome == "updated"
    item = item_of(db, first.content_id)
    assert (
        item.title == {"en": "Episode one (remastered)"} and item.version == 2 and item.updated_by == editor
    )
    with db.session() as session:
        updated = session.scalars(
            sa.select(OutboxEvent).where(OutboxEvent.event_type == content.CONTENT_UPDATED)
        ).one()
        assert updated.aggregate_id == str(first.content_id)


def test_skip_leaves_the_content_alone(db, editor, make_source) -> None:
    source_id = make_source(conflict_policy="skip")
    _, (first,) = run(db, source_id, editor, [record(1)])
    assert outcomes_of(db, source_id, editor, [record(1, title="Changed upstream")]) == ["skipped"]
    assert item_of(db, first.content_id).title == {"en": "Episode one"}
    with db.session() as session:
        assert records.find(session, source_id, "rss:guid-1").import_status == "skipped"


def test_overwrite_replaces_an_editor_s_hand_edit(db, editor, make_source) -> None:
    source_id = make_source(conflict_policy="overwrite")
    _, (first,) = run(db, source_id, editor, [record(1)])
    edit(db, first.content_id, editor, {"title": {"en": "Editor's title"}})
    assert outcomes_of(db, source_id, editor, [record(1, description="New summary")]) == ["updated"]
    item = item_of(db, first.content_id)
    assert item.title == {"en": "Episode one"} and item.description == {"en": "New summary"}


def test_merge_keeps_an_editor_s_hand_edit_and_takes_the_rest(db, editor, make_source) -> None:
    source_id = make_source(conflict_policy="merge")
    _, (first,) = run(db, source_id, editor, [record(1)])
    edit(db, first.content_id, editor, {"title": {"en": "Editor's title"}, "tags": ["podcast", "picked"]})
    _, (merged,) = run(
        db, source_id, editor, [record(1, title="Upstream title", description="Upstream summary")]
    )
    assert merged.outcome == "updated" and merged.kept == ["title.en"]
    item = item_of(db, first.content_id)
    assert item.title == {"en": "Editor's title"}  # the hand edit wins
    assert item.description == {"en": "Upstream summary"}  # untouched by hand: the source's
    assert item.tags == ["podcast", "picked"]  # unchanged upstream: the editor's stays
    # Only the hand-edited field changed upstream: nothing to write, the item is skipped.
    assert outcomes_of(
        db, source_id, editor, [record(1, title="Upstream again", description="Upstream summary")]
    ) == ["skipped"]
    assert item_of(db, first.content_id).title == {"en": "Editor's title"}


def test_an_unlocked_field_goes_back_to_the_source(db, editor, make_source) -> None:
    source_id = make_source(conflict_policy="merge")
    _, (first,) = run(db, source_id, editor, [record(1)])
    edit(db, first.content_id, editor, {"title": {"en": "Editor's title"}})
    with db.session() as session:
        records.unlock(session, first.content_id, ["title.en"])
    assert outcomes_of(db, source_id, editor, [record(1, title="Upstream title")]) == ["updated"]
    assert item_of(db, first.content_id).title == {"en": "Upstream title"}


def test_merge_works_per_language_and_per_metadata_key(db, editor, make_source) -> None:
    source_id = make_source(conflict_policy="merge")
    bilingual = record(1, metadata={"duration": 60, "season": 1})
    bilingual.transformed["title"] = {"en": "Episode one", "ar": "الحلقة الأولى"}
    _, (first,) = run(db, source_id, editor, [bilingual])
    item = item_of(db, first.content_id)
    edit(
        db,
        first.content_id,
        editor,
        {"title": {"ar": "عنوان المحرر"}, "metadata": {**item.meta, "season": 2}},
    )
    changed = record(1, title="Episode 1", metadata={"duration": 61, "season": 3})
    changed.transformed["title"] = {"en": "Episode 1", "ar": "الحلقة ١"}
    _, (merged,) = run(db, source_id, editor, [changed])
    assert sorted(merged.kept) == ["metadata.season", "title.ar"]
    item = item_of(db, first.content_id)
    assert item.title == {"en": "Episode 1", "ar": "عنوان المحرر"}
    assert (item.meta["duration"], item.meta["season"]) == (61, 2)
    assert item.meta["import"]["external_id"] == "guid-1"  # the origin stays on the item


def test_published_policy_publishes_through_the_workflow(db, editor, make_source) -> None:
    source_id = make_source(publish_policy="published")
    _, (first,) = run(db, source_id, editor, [record(1)])
    item = item_of(db, first.content_id)
    assert item.status == "published" and item.published_at is not None
    with db.session() as session:
        types = session.scalars(
            sa.select(OutboxEvent.event_type)
            .where(OutboxEvent.aggregate_id == str(item.id))
            .order_by(OutboxEvent.seq)
        ).all()
    assert types == [content.CONTENT_CREATED, content.CONTENT_UPDATED, content.CONTENT_PUBLISHED]
    assert item_of(db, make_draft(db, editor, make_source)).status == "draft"


def make_draft(db, editor, make_source) -> uuid.UUID:
    _, (outcome,) = run(db, make_source(publish_policy="draft"), editor, [record(9)])
    return outcome.content_id


def test_an_invalid_record_fails_alone_and_is_recorded(db, editor, make_source) -> None:
    source_id = make_source()
    no_title = record(2)
    no_title.transformed["title"] = {}
    bad_type = record(3, type="hologram")
    job_id, outcomes = run(db, source_id, editor, [record(1), no_title, bad_type, record(4)])
    assert [o.outcome for o in outcomes] == ["new", "failed", "failed", "new"]
    assert "title" in outcomes[1].error and "type" in outcomes[2].error
    with db.session() as session:
        job = session.get(ImportJob, job_id)
        assert (job.successful_imports, job.failed_imports, jobs.success_rate(job)) == (2, 2, 0.5)
        assert [entry["external_id"] for entry in job.error_log] == ["guid-2", "guid-3"]
        failed = records.find(session, source_id, "rss:guid-2")
        assert (failed.import_status, failed.content_id) == (
            "failed",
            None,
        ) and "title" in failed.error_message
    assert count(db, ContentItem) == 2
    # Fixed upstream: the failed item is imported on the next run, once.
    assert outcomes_of(db, source_id, editor, [record(2)]) == ["new"]
    assert count(db, ContentItem) == 3 and count(db, ImportedContent) == 4


def test_an_item_an_editor_deleted_is_not_brought_back(db, editor, make_source) -> None:
    source_id = make_source(conflict_policy="overwrite")
    _, (first,) = run(db, source_id, editor, [record(1)])
    with db.session() as session:
        content.soft_delete(session, first.content_id, actor=editor)
    assert outcomes_of(db, source_id, editor, [record(1, title="Changed")]) == ["skipped"]
    with db.session() as session:
        assert (
            session.scalar(
                sa.select(sa.func.count()).select_from(ContentItem).where(ContentItem.deleted_at.is_(None))
            )
            == 0
        )


def test_the_origin_of_an_imported_item_is_queryable(db, editor, make_source) -> None:
    source_id = make_source()
    _, (first,) = run(db, source_id, editor, [record(1)])
    with db.session() as session:
        origin = records.origin(session, first.content_id)
        assert (origin.source_id, origin.external_id, origin.external_url) == (
            source_id,
            "guid-1",
            "https://feeds.example.test/ep/1",
        )
        assert records.origin(session, uuid.uuid4()) is None
    meta = item_of(db, first.content_id).meta["import"]
    assert meta == {
        "source_id": str(source_id),
        "source_type": "rss",
        "external_id": "guid-1",
        "dedupe_key": "rss:guid-1",
        "url": "https://feeds.example.test/ep/1",
    }


def test_content_hash_ignores_key_order() -> None:
    assert records.content_hash({"a": 1, "b": {"x": 1, "y": 2}}) == records.content_hash(
        {"b": {"y": 2, "x": 1}, "a": 1}
    )
    assert records.content_hash({"a": 1}) != records.content_hash({"a": 2})


def test_only_a_running_job_of_the_source_imports(db, editor, make_source) -> None:
    source_id, other_id = make_source(), make_source()
    with db.session() as session:
        job = jobs.create_job(session, source_id, "manual", actor=editor)
        source, other = session.get(ImportSource, source_id), session.get(ImportSource, other_id)
        with pytest.raises(IllegalTransition):
            records.upsert(session, job, source, record(1))  # still pending
        jobs.start(session, job.id)
        with pytest.raises(IllegalTransition):
            records.upsert(session, job, other, record(1))
    assert count(db, ContentItem) == 0 and count(db, ImportedContent) == 0
