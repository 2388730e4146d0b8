"""Retention: how long each tenant's samples and rollups are kept, and the job that enforces it.

Samples live in daily partitions shared by all tenants. A whole day's partition is dropped
(no row-by-row delete, no bloat) once every tenant's policy lets it go and the ingest would
quarantine anything for that day anyway; a tenant whose policy is shorter than the longest has
its older rows deleted from the partitions that stay (docs/decisions.md, D38). Rollups are
deleted per tenant.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from fleetlink.cloud.ingest.partitions import partition_name
from fleetlink.cloud.storage.timescale import drop_chunks_before, is_hypertable

log = logging.getLogger(__name__)
_DAILY = re.compile(r"^sample_(points|blocks)_\d{8}$")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    raw_days: int = 400
    rollup_1m_days: int = 400
    rollup_1h_days: int = 3650


DEFAULT_POLICY = RetentionPolicy()


@dataclass(slots=True)
class RetentionResult:
    partitions_dropped: list[str]
    rows_deleted: int


async def _policies(conn: asyncpg.Connection) -> dict[str, RetentionPolicy]:
    tenants = [r["id"] for r in await conn.fetch("SELECT id FROM tenants")]
    found = {
        r["tenant_id"]: RetentionPolicy(r["raw_days"], r["rollup_1m_days"], r["rollup_1h_days"])
        for r in await conn.fetch("SELECT * FROM retention_policies")
    }
    return {t: found.get(t, DEFAULT_POLICY) for t in tenants}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def _drop_chunks(
    conn: asyncpg.Connection,
    policies: dict[str, RetentionPolicy],
    today: date,
    oldest_kept: date,
    result: RetentionResult,
) -> None:
    """TimescaleDB: drop the sample chunks before ``oldest_kept`` and the rollup chunks older
    than the longest rollup policy (per-tenant rollup cuts need a native rollup table)."""
    dropped = await drop_chunks_before(conn, "sample_points", _midnight(oldest_kept))
    longest_1m = max(
        (p.rollup_1m_days for p in policies.values()), default=DEFAULT_POLICY.rollup_1m_days
    )
    longest_1h = max(
        (p.rollup_1h_days for p in policies.values()), default=DEFAULT_POLICY.rollup_1h_days
    )
    for cagg, days in (("sample_rollups_1m", longest_1m), ("sample_rollups_1h", longest_1h)):
        dropped += await drop_chunks_before(conn, cagg, _midnight(today - timedelta(days=days)))
    if dropped:
        result.partitions_dropped.append(f"{dropped} chunk(s)")


async def apply_retention(
    pool: asyncpg.Pool, ingest_accept_past_days: int, today: date | None = None
) -> RetentionResult:
    """Drop the partitions and delete the rows every policy lets go; return what went."""
    today = today or datetime.now(UTC).date()
    result = RetentionResult([], 0)
    async with pool.acquire() as conn:
        policies = await _policies(conn)
        keep_days = max((p.raw_days for p in policies.values()), default=DEFAULT_POLICY.raw_days)
        # Never drop a day the ingest still accepts data for: it would have no partition.
        keep_days = max(keep_days, ingest_accept_past_days + 1)
        oldest_kept = today - timedelta(days=keep_days)
        hypertable = await is_hypertable(conn, "sample_points")
        if hypertable:
            await _drop_chunks(conn, policies, today, oldest_kept, result)
        for r in await conn.fetch(
            """SELECT p.relname AS parent, c.relname FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent
               WHERE p.relname IN ('sample_points', 'sample_blocks') ORDER BY c.relname"""
        ):
            name, parent = r["relname"], r["parent"]
            oldest = partition_name(oldest_kept).replace("sample_points", parent)
            if _DAILY.match(name) and name < oldest:
                await conn.execute(f'DROP TABLE "{name}"')
                result.partitions_dropped.append(name)
        for tenant, policy in sorted(policies.items()):
            midnight = _midnight(today)
            status = await conn.execute(
                """DELETE FROM sample_points p USING sample_series s
                   WHERE s.id = p.series_id AND s.tenant_id = $1 AND p.ts < $2""",
                tenant,
                midnight - timedelta(days=policy.raw_days),
            )
            result.rows_deleted += int(status.split()[-1])
            if not hypertable:
                # Blocks start on the hour and the cut-off is a midnight: whole blocks go.
                status = await conn.execute(
                    """DELETE FROM sample_blocks b USING sample_series s
                       WHERE s.id = b.series_id AND s.tenant_id = $1 AND b.hour < $2""",
                    tenant,
                    midnight - timedelta(days=policy.raw_days),
                )
                result.rows_deleted += int(status.split()[-1])
            # Continuous aggregates take no row deletes: their chunks go in _drop_chunks.
            cuts = {
                "signal_rollups_1m": policy.rollup_1m_days,
                "signal_rollups_1h": policy.rollup_1h_days,
            }
            for table, days in cuts.items() if not hypertable else []:
                status = await conn.execute(
                    f"DELETE FROM {table} WHERE tenant_id = $1 AND bucket < $2",
                    tenant,
                    midnight - timedelta(days=days),
                )
                result.rows_deleted += int(status.split()[-1])
    if result.partitions_dropped or result.rows_deleted:
        log.info(
            "retention dropped %d partition(s) and deleted %d row(s)",
            len(result.partitions_dropped),
            result.rows_deleted,
        )
    return result
