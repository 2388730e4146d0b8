"""Write a chunk of inbound messages to PostgreSQL in one transaction, exactly once per seq.

``INSERT INTO ingested_batches … ON CONFLICT DO NOTHING RETURNING`` decides which batches are
new; its unique index serialises concurrent workers, so a (device, seq) is stored by at most
one transaction. Only the new batches' samples are copied in. The caller acks after commit.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import asyncpg

from fleetlink.cloud.ingest.inbound import (
    DeadLetter,
    EventsIn,
    Inbound,
    Refused,
    StatusIn,
    TelemetryIn,
)
from fleetlink.cloud.ingest.partitions import DailyPartitions

SAMPLE_COLUMNS = ("tenant_id", "vehicle_id", "device_id", "signal_id", "ts", "value")
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(slots=True)
class DeviceAcks:
    tenant: str
    device: str
    seqs: list[int] = field(default_factory=list)
    high_water: int = 0


@dataclass(slots=True)
class ChunkResult:
    """What one committed chunk did: acks to publish per device, counters, refusals."""

    acks: dict[str, DeviceAcks] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    refused: list[Refused] = field(default_factory=list)
    samples: int = 0


@dataclass(slots=True)
class _Assignment:
    vehicle_id: uuid.UUID
    valid_from: datetime
    valid_to: datetime | None


def _vehicle_at(assignments: Sequence[_Assignment], ts: datetime) -> uuid.UUID | None:
    current = None
    for a in assignments:
        if a.valid_from <= ts < (a.valid_to or _FAR_FUTURE):
            return a.vehicle_id
        if a.valid_to is None:
            current = a.vehicle_id
    return current


class ChunkStore:
    """Writes chunks; holds the partition cache, so keep one per worker."""

    def __init__(self) -> None:
        self.partitions = DailyPartitions()

    async def write(self, conn: asyncpg.Connection, items: Sequence[Inbound]) -> ChunkResult:
        """Store ``items`` in one transaction and return what to ack and count.

        Raises asyncpg errors when the database fails; then nothing was committed and the
        whole chunk may be retried.
        """
        result = ChunkResult()
        topic_devices = {
            i.topic.device for i in items if isinstance(i, TelemetryIn | EventsIn | StatusIn)
        }
        registry = {
            r["id"]: r["tenant_id"]
            for r in await conn.fetch(
                "SELECT id, tenant_id FROM devices WHERE id = ANY($1::text[])",
                list(topic_devices),
            )
        }
        accepted: list[TelemetryIn | EventsIn | StatusIn] = []
        dead: list[DeadLetter] = []
        for item in items:
            if isinstance(item, DeadLetter):
                dead.append(item)
            elif isinstance(item, Refused):
                result.refused.append(item)
                result.counters[item.counter] += 1
            elif registry.get(item.topic.device) is None:
                result.refused.append(
                    Refused(
                        item.delivery,
                        "device is not registered",
                        "unknown_device",
                        item.topic.device,
                    )
                )
                result.counters["unknown_device"] += 1
            elif registry[item.topic.device] != item.topic.tenant:
                result.refused.append(
                    Refused(
                        item.delivery,
                        f"device belongs to another tenant than {item.topic.tenant!r}",
                        "wrong_tenant",
                        item.topic.device,
                    )
                )
                result.counters["wrong_tenant"] += 1
            else:
                accepted.append(item)

        batches: dict[tuple[str, int], TelemetryIn | EventsIn] = {}
        statuses: list[StatusIn] = []
        for item in accepted:
            if isinstance(item, StatusIn):
                statuses.append(item)
                continue
            key = (item.device, item.seq)
            if key in batches:
                result.counters["duplicates"] += 1
            else:
                batches[key] = item

        assignments: dict[str, list[_Assignment]] = defaultdict(list)
        if batches:
            for r in await conn.fetch(
                "SELECT device_id, vehicle_id, valid_from, valid_to FROM device_assignments "
                "WHERE device_id = ANY($1::text[]) ORDER BY valid_from",
                list({d for d, _ in batches}),
            ):
                assignments[r["device_id"]].append(
                    _Assignment(r["vehicle_id"], r["valid_from"], r["valid_to"])
                )
            days: set[date] = set()
            for b in batches.values():
                if isinstance(b, TelemetryIn):
                    days |= b.days
            await self.partitions.ensure(conn, days)

        async with conn.transaction():
            new_keys: set[tuple[str, int]] = set()
            if batches:
                keys = sorted(batches)
                new_rows = await conn.fetch(
                    """INSERT INTO ingested_batches
                           (tenant_id, device_id, seq, kind, received_at, sample_count)
                       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[],
                                            $5::timestamptz[], $6::int[])
                       ON CONFLICT DO NOTHING
                       RETURNING device_id, seq""",
                    [batches[k].topic.tenant for k in keys],
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [batches[k].topic.kind.value for k in keys],
                    [batches[k].delivery.received_at for k in keys],
                    [
                        len(b.rows) if isinstance(b, TelemetryIn) else len(b.batch.events)
                        for b in (batches[k] for k in keys)
                    ],
                )
                new_keys = {(r["device_id"], r["seq"]) for r in new_rows}
                result.counters["duplicates"] += len(batches) - len(new_keys)
                await self._write_new(
                    conn, [batches[k] for k in keys if k in new_keys], assignments, result
                )
            for item in statuses:
                await conn.execute(
                    """UPDATE devices SET last_seen = greatest(last_seen, $2), online = $3,
                           agent_version = $4, status = $5::jsonb
                       WHERE id = $1 AND (last_seen IS NULL OR last_seen <= $2)""",
                    item.device,
                    datetime.fromtimestamp(item.status.time_ms / 1000, UTC),
                    item.status.online,
                    item.status.agent_version,
                    item.status.model_dump_json(),
                )
                result.counters["status"] += 1
            if dead:
                await conn.executemany(
                    "INSERT INTO dead_letters (received_at, topic, payload, reason) "
                    "VALUES ($1, $2, $3, $4)",
                    [
                        (d.delivery.received_at, d.delivery.topic, d.delivery.payload, d.reason)
                        for d in dead
                    ],
                )
                result.counters["dead_lettered"] += len(dead)

            for (device, seq), item in batches.items():
                acks = result.acks.setdefault(device, DeviceAcks(item.topic.tenant, device))
                acks.seqs.append(seq)
            for d in dead:
                if d.seq is not None and d.topic is not None:
                    acks = result.acks.setdefault(
                        d.topic.device, DeviceAcks(d.topic.tenant, d.topic.device)
                    )
                    acks.seqs.append(d.seq)
            if result.acks:
                devices = sorted(result.acks)
                for r in await conn.fetch(
                    """SELECT d, (SELECT max(seq) FROM ingested_batches WHERE device_id = d) AS hw
                       FROM unnest($1::text[]) AS d""",
                    devices,
                ):
                    result.acks[r["d"]].high_water = r["hw"] or 0
            counters = sorted((k, v) for k, v in result.counters.items() if v)
            if counters:
                await conn.execute(
                    """INSERT INTO ingest_counters (name, count)
                       SELECT * FROM unnest($1::text[], $2::bigint[])
                       ON CONFLICT (name) DO UPDATE
                       SET count = ingest_counters.count + EXCLUDED.count""",
                    [k for k, _ in counters],
                    [v for _, v in counters],
                )
        for acks in result.acks.values():
            acks.seqs.sort()
        return result

    async def _write_new(
        self,
        conn: asyncpg.Connection,
        new: Sequence[TelemetryIn | EventsIn],
        assignments: dict[str, list[_Assignment]],
        result: ChunkResult,
    ) -> None:
        records: list[tuple[object, ...]] = []
        latest: dict[tuple[uuid.UUID, int], tuple[str, datetime, float]] = {}
        events: list[tuple[object, ...]] = []
        for item in new:
            tenant, device = item.topic.tenant, item.device
            if isinstance(item, TelemetryIn):
                vehicle = _vehicle_at(assignments.get(device, ()), item.first_ts)
                records.extend(
                    [(tenant, vehicle, device, sid, ts, value) for sid, ts, value in item.rows]
                )
                if vehicle is not None:
                    for sid, (ts, value) in item.latest.items():
                        seen = latest.get((vehicle, sid))
                        if seen is None or seen[1] < ts:
                            latest[(vehicle, sid)] = (tenant, ts, value)
                result.counters["batches"] += 1
            else:
                for event in item.batch.events:
                    ts = datetime.fromtimestamp(event.time_ms / 1000, UTC)
                    events.append(
                        (
                            event.id,
                            tenant,
                            device,
                            _vehicle_at(assignments.get(device, ()), ts),
                            ts,
                            event.type,
                            event.severity,
                            json.dumps(event.data),
                        )
                    )
                result.counters["event_batches"] += 1
        if records:
            await conn.copy_records_to_table("samples", records=records, columns=SAMPLE_COLUMNS)
            result.samples = len(records)
            result.counters["samples"] += len(records)
        if latest:
            keys = sorted(latest, key=lambda k: (str(k[0]), k[1]))
            await conn.execute(
                """INSERT INTO latest_signals (tenant_id, vehicle_id, signal_id, ts, value)
                   SELECT * FROM unnest($1::text[], $2::uuid[], $3::smallint[],
                                        $4::timestamptz[], $5::float8[])
                   ON CONFLICT (vehicle_id, signal_id) DO UPDATE
                   SET ts = EXCLUDED.ts, value = EXCLUDED.value
                   WHERE latest_signals.ts < EXCLUDED.ts""",
                [latest[k][0] for k in keys],
                [k[0] for k in keys],
                [k[1] for k in keys],
                [latest[k][1] for k in keys],
                [latest[k][2] for k in keys],
            )
        if events:
            await conn.executemany(
                """INSERT INTO events (id, tenant_id, device_id, vehicle_id, ts, type, severity,
                                       data)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) ON CONFLICT (id) DO NOTHING""",
                events,
            )
            result.counters["events"] += len(events)
