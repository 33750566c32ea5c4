"""Notification assets (group `notifications`): domain events turned into notifications, the
delivery drain with its health check, and the broadcast fan-out job.

Thin: the work is in `domain.notifications.rules`, `.delivery` and `.broadcast`. The delivery policy
(attempts, backoff base, per-channel rate limits, default language, the key that decrypts webhook
secrets) comes from settings through `build_notification_assets`, as the media sensor gets its
retention: orchestration builds these once per deployment.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from domain.errors import DomainError
from domain.markdown import markdown_table
from domain.notifications import broadcast, delivery, rules
from domain.schema import utcnow
from resources.database import OperationalDatabase
from resources.notifiers.base import DeliveryTransport

NOTIFICATIONS_GROUP = "notifications"
NOTIFICATION_BROADCAST_JOB = "notification_broadcast_job"
NOTIFIER_KEYS = {
    "email": "notifier_email",
    "push": "notifier_push",
    "sms": "notifier_sms",
    "webhook": "notifier_webhook",
}
FAILURE_PREVIEW = 10


class NotificationEventsConfig(dg.Config):
    after_seq: int | None = Field(
        default=None,
        description="Handle outbox events after this seq (default: after the newest one already handled).",
    )
    upto_seq: int | None = Field(default=None, description="Up to this seq, inclusive (default: the newest).")


class BroadcastConfig(dg.Config):
    broadcast_id: str = Field(description="The broadcast to fan out (resumes from its cursor).")
    batch_size: int = Field(default=broadcast.BATCH_SIZE, description="Recipients per transaction.")


@dataclass(frozen=True)
class NotificationDefinitions:
    events: dg.AssetsDefinition
    deliveries: dg.AssetsDefinition
    deliveries_not_stuck: dg.AssetChecksDefinition
    broadcast_job: dg.JobDefinition

    @property
    def assets(self) -> list[dg.AssetsDefinition]:
        return [self.events, self.deliveries]


def _tally_metadata(tally: delivery.Tally) -> dict[str, object]:
    per_channel = tally.as_dict()
    metadata: dict[str, object] = {
        "claimed": tally.claimed,
        "sent": tally.total("sent"),
        "retried": tally.total("retried"),
        "failed": tally.total("failed"),
        "bounced": tally.total("bounced"),
        "messages": tally.total("messages"),
        "digests": tally.total("digests"),
        "rate_limit_wait_s": dg.MetadataValue.float(round(tally.waited_s, 3)),
        "by_channel": dg.MetadataValue.md(
            markdown_table(
                ("channel", "sent", "retried", "failed", "bounced", "messages", "digests"),
                [
                    (
                        channel,
                        *(
                            counts.get(k, 0)
                            for k in ("sent", "retried", "failed", "bounced", "messages", "digests")
                        ),
                    )
                    for channel, counts in per_channel.items()
                ],
            )
            if per_channel
            else "nothing was due"
        ),
    }
    for channel, counts in per_channel.items():
        for what in ("sent", "retried", "failed", "bounced"):
            metadata[f"{channel}_{what}"] = counts.get(what, 0)
    if tally.failures:
        metadata["failures"] = dg.MetadataValue.json(tally.failures[:FAILURE_PREVIEW])
    return metadata


def build_notification_assets(policy: delivery.Policy) -> NotificationDefinitions:
    """The notification assets, check and broadcast job for one deployment's delivery policy."""

    @dg.asset(name="notification_events", group_name=NOTIFICATIONS_GROUP, kinds={"python"})
    def notification_events(
        context: dg.AssetExecutionContext,
        config: NotificationEventsConfig,
        database: dg.ResourceParam[OperationalDatabase],
    ) -> dg.MaterializeResult:
        """Domain events from the outbox (content published, media processed or failed, import
        completed, user verified, report ready, alert fired, escalated or resolved) turned into
        notifications by the rules of `domain.notifications.rules`: one `notification_events` row per
        outbox event (unique by seq: a re-run never notifies twice), its notifications threaded under
        it. An event that fails (a broken template) is recorded failed with its error; the others go
        on."""
        with database.session() as session:
            after = config.after_seq if config.after_seq is not None else rules.last_handled_seq(session)
        summary = rules.process_events(
            database.session,
            after=after,
            upto=config.upto_seq,
            now=utcnow(),
            default_language=policy.default_language,
            progress=lambda s: context.log.info(
                f"{s.events} events handled, {s.notifications} notifications"
            ),
        )
        context.log.info(
            f"outbox ({after}, {config.upto_seq or 'newest'}]: {summary.processed} processed, "
            f"{summary.failed} failed, {summary.skipped} already done; {summary.notifications} notifications"
        )
        metadata: dict[str, object] = {
            "after_seq": after,
            "last_seq": summary.last_seq if summary.last_seq is not None else after,
            "events_processed": summary.processed,
            "events_failed": summary.failed,
            "events_skipped": summary.skipped,
            "notifications_created": summary.notifications,
            "by_type": dg.MetadataValue.md(
                markdown_table(
                    ("event type", "events", "notifications"),
                    [
                        (t, summary.by_type[t], summary.notifications_by_type[t])
                        for t in sorted(summary.by_type)
                    ],
                )
                if summary.by_type
                else "no new events"
            ),
        }
        if summary.not_notified:
            metadata["recipients_not_notified"] = dg.MetadataValue.json(dict(summary.not_notified))
        if summary.errors:
            metadata["errors"] = dg.MetadataValue.json(summary.errors[:FAILURE_PREVIEW])
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(
        name="notification_deliveries",
        group_name=NOTIFICATIONS_GROUP,
        kinds={"python"},
        deps=[notification_events],  # lineage: the rules (and broadcasts) queue what the drain sends
    )
    def notification_deliveries(
        context: dg.AssetExecutionContext,
        database: dg.ResourceParam[OperationalDatabase],
        notifier_email: dg.ResourceParam[DeliveryTransport],
        notifier_push: dg.ResourceParam[DeliveryTransport],
        notifier_sms: dg.ResourceParam[DeliveryTransport],
        notifier_webhook: dg.ResourceParam[DeliveryTransport],
    ) -> dg.MaterializeResult:
        """The delivery drain: every due email, push, SMS and webhook delivery (queued, next_retry
        passed; also `sending` ones abandoned by a crashed run) claimed in batches, digests merged
        into one message per user and channel, sent through the channel's transport within its rate
        limit, and recorded: delivered; retried with exponential backoff; failed or bounced with the
        reason after a permanent refusal or the last attempt. Emits `notification.delivered` and
        `notification.failed` outbox events."""
        transports: Mapping[str, DeliveryTransport] = {
            "email": notifier_email,
            "push": notifier_push,
            "sms": notifier_sms,
            "webhook": notifier_webhook,
        }

        def progress(tally: delivery.Tally) -> None:
            context.log.info(
                f"{tally.claimed} claimed: {tally.total('sent')} sent, {tally.total('retried')} to retry, "
                f"{tally.total('failed')} failed, {tally.total('bounced')} bounced"
            )

        tally = delivery.drain(
            database.session, transports, now=utcnow(), clock=utcnow, policy=policy, progress=progress
        )
        return dg.MaterializeResult(metadata=_tally_metadata(tally))

    @dg.asset_check(asset=notification_deliveries, name="notification_deliveries_not_stuck", blocking=False)
    def notification_deliveries_not_stuck(
        context: dg.AssetCheckExecutionContext, database: dg.ResourceParam[OperationalDatabase]
    ) -> dg.AssetCheckResult:
        """No delivery has been `sending` for more than 15 minutes (a drain that died and was not
        reclaimed) and no queued delivery is more than an hour past due (the drain is not running)."""
        now = utcnow()
        with database.session() as session:
            found = delivery.health(session, now=now)
        return dg.AssetCheckResult(
            passed=found.ok,
            severity=dg.AssetCheckSeverity.ERROR if found.stuck_sending else dg.AssetCheckSeverity.WARN,
            description=None
            if found.ok
            else f"{found.stuck_sending} stuck sending, {found.overdue} queued more than an hour past due",
            metadata={
                "stuck_sending": found.stuck_sending,
                "oldest_sending": dg.MetadataValue.text(found.oldest_sending.isoformat())
                if found.oldest_sending
                else "none",
                "overdue_over_1h": found.overdue,
                "due_now": found.due,
                "oldest_due": dg.MetadataValue.text(found.oldest_due.isoformat())
                if found.oldest_due
                else "none",
                "queued": found.queued,
            },
        )

    @dg.op(
        name="fan_out_broadcast",
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
        description="Fan a broadcast out in batches from its cursor; each batch commits its progress.",
    )
    def fan_out_broadcast(
        context: dg.OpExecutionContext,
        config: BroadcastConfig,
        database: dg.ResourceParam[OperationalDatabase],
    ) -> dg.Output:
        broadcast_id = uuid.UUID(config.broadcast_id)

        def report(progress: broadcast.Progress) -> None:
            context.log.info(
                f"broadcast {broadcast_id}: {progress.processed:,}/{progress.total:,} recipients "
                f"({progress.percent}%), {progress.created:,} notifications, batch {progress.batches}"
            )

        try:
            progress = broadcast.run(
                database.session,
                broadcast_id,
                batch_size=config.batch_size,
                default_language=policy.default_language,
                after_batch=report,
            )
        except DomainError as exc:  # no such broadcast, no message to send: retrying cannot help
            broadcast.mark_failed(database.session, broadcast_id, exc.detail, now=utcnow())
            raise dg.Failure(description=exc.detail, allow_retries=False) from exc
        except Exception as exc:  # the op's retry policy resumes from the cursor
            broadcast.mark_failed(
                database.session, broadcast_id, f"{type(exc).__name__}: {exc}", now=utcnow()
            )
            raise
        summary = broadcast.summary(progress)
        context.log.info(f"broadcast {broadcast_id} {progress.status}: {summary}")
        rate = progress.processed / progress.seconds if progress.seconds else 0.0
        metadata = {
            **{k: v for k, v in summary.items() if k != "seconds"},
            "seconds": dg.MetadataValue.float(summary["seconds"]),
            "recipients_per_s": dg.MetadataValue.float(round(rate, 1)),
            "resumed_from": progress.resumed_from or "start",
        }
        if progress.not_notified:
            metadata["not_notified"] = dg.MetadataValue.json(dict(progress.not_notified))
        return dg.Output(summary, metadata=metadata)

    @dg.job(
        name=NOTIFICATION_BROADCAST_JOB,
        description="Fans one broadcast out to its audience (batched, resumable, progress in the run log).",
        tags={"service": "notifications"},
        executor_def=dg.in_process_executor,
    )
    def notification_broadcast_job() -> None:
        fan_out_broadcast()

    return NotificationDefinitions(
        notification_events,
        notification_deliveries,
        notification_deliveries_not_stuck,
        notification_broadcast_job,
    )
