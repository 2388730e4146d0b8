"""Scheduled reports: each schedule mails its report of the last whole period (day, ISO week or
month, UTC) to its recipients when the period is over; a failed mail is retried later and its
error kept on the schedule."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import asyncpg

from fleetlink.cloud.notify.email import Attachment, EmailError, EmailSender
from fleetlink.cloud.reports.csv_export import ExportTooLargeError, report_csv
from fleetlink.cloud.settings import CloudSettings

log = logging.getLogger(__name__)

EVERY = ("daily", "weekly", "monthly")
RETRY_AFTER = timedelta(minutes=15)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def next_run(every: str, after: datetime) -> datetime:
    """Return the first period boundary (UTC midnight; Monday; the 1st) after ``after``."""
    today = after.astimezone(UTC).date()
    if every == "daily":
        return _midnight(today + timedelta(days=1))
    if every == "weekly":
        return _midnight(today + timedelta(days=7 - today.weekday()))
    if every == "monthly":
        return _midnight((today.replace(day=1) + timedelta(days=32)).replace(day=1))
    raise ValueError(f"every is one of {', '.join(EVERY)}, not {every!r}")


def period_before(every: str, boundary: datetime) -> tuple[date, date]:
    """Return the first and last day of the period that ends at ``boundary``."""
    last = boundary.astimezone(UTC).date() - timedelta(days=1)
    if every == "daily":
        return last, last
    if every == "weekly":
        return last - timedelta(days=6), last
    return last.replace(day=1), last


def _sender(settings: CloudSettings) -> EmailSender:
    """Return the configured mail sender; EmailError when FLEETLINK_SMTP_URL is not set."""
    if settings.smtp_url is None:
        raise EmailError("set FLEETLINK_SMTP_URL (smtp://host:port) to mail scheduled reports")
    return EmailSender.from_url(settings.smtp_url.get_secret_value(), settings.smtp_from)


async def run_due_reports(
    pool: asyncpg.Pool, settings: CloudSettings, now: datetime | None = None
) -> int:
    """Send every report that is due; return how many were sent."""
    now = now or datetime.now(UTC)
    sent = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT id, tenant_id, report, every, recipients, next_run_at
                   FROM report_schedules WHERE next_run_at <= $1
                   ORDER BY next_run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED""",
                now,
            )
            if row is None:
                return sent
            first, last = period_before(row["every"], row["next_run_at"])
            try:
                text = await report_csv(conn, row["report"], row["tenant_id"], first, last)
                await _sender(settings).send(
                    list(row["recipients"]),
                    f"Fleetlink {row['report']} report {first} to {last}",
                    f"The {row['report']} report of {first} to {last} is attached.\n",
                    (Attachment(f"{row['report']}-{first}-{last}.csv", text.encode()),),
                )
            except (EmailError, ExportTooLargeError) as exc:
                log.warning("report schedule %s: %s", row["id"], exc)
                await conn.execute(
                    "UPDATE report_schedules SET last_error = $2, next_run_at = $3 WHERE id = $1",
                    row["id"],
                    str(exc)[:1000],
                    now + RETRY_AFTER,
                )
                continue
            await conn.execute(
                """UPDATE report_schedules SET last_run_at = $2, last_error = NULL,
                       next_run_at = $3 WHERE id = $1""",
                row["id"],
                now,
                next_run(row["every"], now),
            )
            sent += 1
