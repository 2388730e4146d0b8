"""Write a chunk of inbound messages to PostgreSQL in one transaction, exactly once per seq.

``INSERT INTO ingested_batches … ON CONFLICT DO NOTHING RETURNING`` decides which batches are
new; its unique index serialises concurrent workers, so a (device, seq) is stored by at most
one transaction. Only the new batches' samples are copied in. The caller acks after commit.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import repeat
from typing import Any

import asyncpg

from fleetlink.cloud.ingest.inbound import (
    DeadLetter,
    EventsIn,
    HelloIn,
    Inbound,
    Quarantined,
    Refused,
    StatusIn,
    TelemetryIn,
)
from fleetlink.cloud.ingest.partitions import DailyPartitions
from fleetlink.cloud.ingest.series import POINT_COLUMNS, SeriesIds, SeriesKey
from fleetlink.cloud.trips.dirty import DirtyDay, mark_dirty
from fleetlink.shared.messages import GAP_EVENT, MAX_SEQ, MAX_TIME_MS, Event
from fleetlink.shared.signals import by_name

# Reported readings the vehicle's profile follows (never backwards: a larger value set by
# hand stays until the vehicle reports beyond it).
_PROFILE_COLUMNS = {
    by_name("Vehicle.TraveledDistance").id: "odometer_km",
    by_name("Vehicle.Powertrain.CombustionEngine.EngineHours").id: "engine_hours",
}

# The columns of the ``samples`` view, for tools and tests that write through it.
SAMPLE_COLUMNS = ("tenant_id", "vehicle_id", "device_id", "signal_id", "ts", "value")
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(slots=True)
class DeviceAcks:
    """What to tell one device after a commit: the seqs now held (with the digest of the bytes
    held under each), the high-water mark, hello nonces to answer, and how to sign."""

    tenant: str
    device: str
    seqs: list[int] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    high_water: int = 0
    nonces: list[str] = field(default_factory=list)
    key: bytes | None = None
    # Counter of the first message to this device from this chunk; each message takes one.
    first_counter: int = 0

    @property
    def message_count(self) -> int:
        return (1 if self.seqs else 0) + len(self.nonces)


@dataclass(slots=True)
class ChunkResult:
    """What one committed chunk did: acks to publish per device, counters, refusals."""

    acks: dict[str, DeviceAcks] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    refused: list[Refused] = field(default_factory=list)
    samples: int = 0
    # The batches this chunk stored for the first time, with the vehicle each belongs to:
    # what the live feed publishes once the transaction has committed.
    new: list[tuple[TelemetryIn | EventsIn, uuid.UUID | None]] = field(default_factory=list)


_HIGH_WATER_SQL = """
    SELECT d, greatest(
        (SELECT max(seq) FROM ingested_batches WHERE device_id = d),
        (SELECT max(seq) FROM dead_letters WHERE device_id = d AND quarantined)) AS hw
    FROM unnest($1::text[]) AS d"""


# Per device: tenant, high-water mark (as _HIGH_WATER_SQL) and assignments oldest first. One
# index probe per device and table: the devices by unnest (not a scan filtered by ANY, which
# the planner picks for a chunk of a small fleet), the assignments in one aggregate.
_DEVICES_SQL = """
    SELECT d.id, d.tenant_id,
        greatest(
            (SELECT max(seq) FROM ingested_batches WHERE device_id = d.id),
            (SELECT max(seq) FROM dead_letters WHERE device_id = d.id AND quarantined)) AS hw,
        coalesce(a.vehicles, '{}') AS vehicles, coalesce(a.valid_from, '{}') AS valid_from,
        coalesce(a.valid_to, '{}') AS valid_to
    FROM unnest($1::text[]) AS u(id)
    JOIN devices d ON d.id = u.id
    LEFT JOIN LATERAL (
        SELECT array_agg(vehicle_id ORDER BY valid_from) AS vehicles,
               array_agg(valid_from ORDER BY valid_from) AS valid_from,
               array_agg(valid_to ORDER BY valid_from) AS valid_to
        FROM device_assignments WHERE device_id = d.id) a ON true"""


async def high_water_marks(conn: asyncpg.Connection, devices: Sequence[str]) -> dict[str, int]:
    """Return each device's high-water mark: the largest seq the cloud holds for it (stored
    or quarantined), 0 for a device it holds nothing from."""
    rows = await conn.fetch(_HIGH_WATER_SQL, list(devices))
    # Seqs stored before the contract bounded them could exceed MAX_SEQ; an ack cannot.
    return {r["d"]: min(r["hw"] or 0, MAX_SEQ) for r in rows}


_GAP_COUNTS = ("samples", "batches", "events")


def _ms(value: object, default: int) -> datetime:
    ms = value if isinstance(value, int) and 0 <= value < MAX_TIME_MS else default
    return datetime.fromtimestamp(ms / 1000, UTC)


def gap_row(
    event: Event, tenant: str, device: str, vehicle: uuid.UUID | None
) -> tuple[object, ...] | None:
    """Return the ``gaps`` row a gap event describes, or None if its data is not a gap's
    (the event itself is stored either way)."""
    data = event.data
    reason = data.get("reason")
    counts = [data.get(k, 0) for k in _GAP_COUNTS]
    if not isinstance(reason, str) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**31 for c in counts
    ):
        return None
    start = _ms(data.get("start_ms"), event.time_ms)
    end = max(start, _ms(data.get("end_ms"), event.time_ms))
    signals = data.get("signals")
    return (
        event.id,
        tenant,
        device,
        vehicle,
        start,
        end,
        signals if isinstance(signals, str) else "",
        data.get("signals_cut") is True,
        *counts,
        reason,
    )


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


FromDevice = TelemetryIn | EventsIn | StatusIn | HelloIn | Quarantined
# The largest jump a device's seq may make past its high-water mark: far more than any outbox
# holds, far less than the seq space, so a forged or corrupt seq cannot exhaust it.
DEFAULT_MAX_SEQ_JUMP = 10_000_000


class ChunkStore:
    """Writes chunks; holds the partition and series caches, so keep one per worker."""

    def __init__(self, max_seq_jump: int = DEFAULT_MAX_SEQ_JUMP) -> None:
        self.partitions = DailyPartitions()
        self.series = SeriesIds()
        self.max_seq_jump = max_seq_jump

    async def write(self, conn: asyncpg.Connection, items: Sequence[Inbound]) -> ChunkResult:
        """Store ``items`` in one transaction and return what to ack and count.

        Raises asyncpg errors when the database fails; then nothing was committed and the
        whole chunk may be retried.
        """
        result = ChunkResult()
        from_devices = [i for i in items if isinstance(i, FromDevice)]
        # One round trip for what the checks need of every device in the chunk: its tenant,
        # high-water mark and assignments (D88).
        known = await conn.fetch(_DEVICES_SQL, list({i.topic.device for i in from_devices}))
        registry = {r["id"]: r["tenant_id"] for r in known}
        accepted: list[FromDevice] = []
        dead: list[DeadLetter] = []
        for item in items:
            if isinstance(item, DeadLetter):
                dead.append(item)
            elif isinstance(item, Refused):
                result.refused.append(item)
                result.counters[item.counter] += 1
            elif registry.get(item.topic.device) is None:
                self._refuse(result, item, "device is not registered", "unknown_device")
            elif registry[item.topic.device] != item.topic.tenant:
                reason = f"device belongs to another tenant than {item.topic.tenant!r}"
                self._refuse(result, item, reason, "wrong_tenant")
            else:
                accepted.append(item)

        marks = {r["id"]: min(r["hw"] or 0, MAX_SEQ) for r in known}
        batches: dict[tuple[str, int], TelemetryIn | EventsIn] = {}
        quarantined: dict[tuple[str, int], Quarantined] = {}
        statuses: list[StatusIn] = []
        hellos: list[HelloIn] = []
        for item in accepted:
            if isinstance(item, StatusIn):
                statuses.append(item)
                continue
            if isinstance(item, HelloIn):
                hellos.append(item)
                continue
            limit = marks.get(item.device, 0) + self.max_seq_jump
            if item.seq > limit:
                reason = (
                    f"seq {item.seq} is more than {self.max_seq_jump} beyond the device's "
                    f"high-water mark {marks.get(item.device, 0)}"
                )
                self._refuse(result, item, reason, "seq_jump")
                continue
            key = (item.device, item.seq)
            target = quarantined if isinstance(item, Quarantined) else batches
            if key in target:
                result.counters["duplicates"] += 1
            else:
                target[key] = item  # type: ignore[assignment]

        assignments: dict[str, list[_Assignment]] = defaultdict(list)
        if batches:
            with_batches = {d for d, _ in batches}
            for r in known:
                if r["id"] in with_batches:
                    assignments[r["id"]] = [
                        _Assignment(*a)
                        for a in zip(r["vehicles"], r["valid_from"], r["valid_to"], strict=True)
                    ]
            days: set[date] = set()
            for b in batches.values():
                if isinstance(b, TelemetryIn):
                    days |= b.days
            await self.partitions.ensure(conn, days)

        held: dict[tuple[str, int], str] = {}
        created: dict[SeriesKey, int] = {}  # series ids this transaction creates
        async with conn.transaction():
            if batches:
                keys = sorted(batches)
                new_rows = await conn.fetch(
                    """INSERT INTO ingested_batches
                           (tenant_id, device_id, seq, kind, received_at, sample_count, digest)
                       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[],
                                            $5::timestamptz[], $6::int[], $7::text[])
                       ON CONFLICT DO NOTHING
                       RETURNING device_id, seq""",
                    [batches[k].topic.tenant for k in keys],
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [batches[k].topic.kind.value for k in keys],
                    [batches[k].delivery.received_at for k in keys],
                    [
                        b.sample_count if isinstance(b, TelemetryIn) else len(b.batch.events)
                        for b in (batches[k] for k in keys)
                    ],
                    [batches[k].digest for k in keys],
                )
                new_keys = {(r["device_id"], r["seq"]) for r in new_rows}
                result.counters["duplicates"] += len(batches) - len(new_keys)
                held |= {k: batches[k].digest for k in new_keys}
                held |= await self._held_digests(
                    conn, "ingested_batches", [k for k in keys if k not in new_keys], batches
                )
                await self._write_new(
                    conn, [batches[k] for k in keys if k in new_keys], assignments, result, created
                )
            if quarantined:
                keys = sorted(quarantined)
                new_rows = await conn.fetch(
                    """INSERT INTO dead_letters (received_at, topic, payload, reason, device_id,
                                                 seq, quarantined, digest)
                       SELECT r, t, p, why, d, s, true, g
                       FROM unnest($1::timestamptz[], $2::text[], $3::bytea[], $4::text[],
                                   $5::text[], $6::bigint[], $7::text[])
                            AS u(r, t, p, why, d, s, g)
                       ON CONFLICT (device_id, seq) WHERE quarantined DO NOTHING
                       RETURNING device_id, seq""",
                    [quarantined[k].delivery.received_at for k in keys],
                    [quarantined[k].delivery.topic for k in keys],
                    [quarantined[k].delivery.payload for k in keys],
                    [quarantined[k].reason for k in keys],
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [quarantined[k].digest for k in keys],
                )
                new_keys = {(r["device_id"], r["seq"]) for r in new_rows}
                result.counters["quarantined"] += len(new_keys)
                result.counters["duplicates"] += len(keys) - len(new_keys)
                held |= {k: quarantined[k].digest for k in new_keys}
                held |= await self._held_digests(
                    conn,
                    "dead_letters",
                    [k for k in keys if k not in new_keys],
                    quarantined,
                )
            for item in statuses:
                await conn.execute(
                    """UPDATE devices SET last_seen = greatest(last_seen, $2), online = $3,
                           agent_version = $4, status = $5::jsonb
                       WHERE id = $1 AND (last_seen IS NULL OR last_seen <= $2)""",
                    item.device,
                    item.seen_at,
                    item.status.online,
                    item.status.agent_version,
                    item.status.model_dump_json(),
                )
                result.counters["status"] += 1
                if item.skewed:
                    result.counters["status_clock_ahead"] += 1
            if dead:
                await conn.executemany(
                    "INSERT INTO dead_letters (received_at, topic, payload, reason, device_id, "
                    "seq, digest) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    [
                        (
                            d.delivery.received_at,
                            d.delivery.topic,
                            d.delivery.payload,
                            d.reason,
                            d.topic.device if d.topic else None,
                            d.seq,
                            d.digest,
                        )
                        for d in dead
                    ],
                )
                result.counters["dead_lettered"] += len(dead)

            def acks_for(tenant: str, device: str) -> DeviceAcks:
                return result.acks.setdefault(device, DeviceAcks(tenant, device))

            for (device, seq), digest in sorted(held.items()):
                tenant = (batches.get((device, seq)) or quarantined[(device, seq)]).topic.tenant
                acks = acks_for(tenant, device)
                acks.seqs.append(seq)
                acks.digests.append(digest)
            for d in dead:
                if d.seq is not None and d.topic is not None:
                    acks = acks_for(d.topic.tenant, d.topic.device)
                    acks.seqs.append(d.seq)
                    acks.digests.append(d.digest)
            for hello in hellos:
                acks_for(hello.topic.tenant, hello.device).nonces.append(hello.hello.nonce)
                result.counters["hellos"] += 1
            if result.acks:
                devices = sorted(result.acks)
                self._set_high_water(result.acks, marks, held)
                if hellos:
                    # A hello's answer is what the device renumbers by: read the mark as
                    # committed now, not as it was when the chunk began.
                    asked = sorted({h.device for h in hellos})
                    for device, hw in (await high_water_marks(conn, asked)).items():
                        result.acks[device].high_water = hw
                # Every message to a device takes the next value of its counter.
                for r in await conn.fetch(
                    """UPDATE device_keys k SET counter = k.counter + u.n
                       FROM unnest($1::text[], $2::int[]) AS u(d, n)
                       WHERE k.device_id = u.d
                       RETURNING k.device_id, k.key, k.counter, u.n""",
                    devices,
                    [result.acks[d].message_count for d in devices],
                ):
                    acks = result.acks[r["device_id"]]
                    acks.key = bytes(r["key"])
                    acks.first_counter = r["counter"] - r["n"] + 1
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
        self.series.remember_committed(created)
        return result

    @staticmethod
    def _set_high_water(
        acks: dict[str, DeviceAcks], marks: dict[str, int], held: dict[tuple[str, int], str]
    ) -> None:
        """Set each ack's high-water mark: the mark read at the chunk's start, raised by the
        seqs the cloud now holds. A batch another writer committed meanwhile may be missing
        from it; a device only raises its next seq by an ack's mark, so a low one is harmless."""
        for acked in acks.values():
            acked.high_water = marks.get(acked.device, 0)
        for device, seq in held:
            if seq > acks[device].high_water:
                acks[device].high_water = seq

    @staticmethod
    def _refuse(result: ChunkResult, item: FromDevice, reason: str, counter: str) -> None:
        result.refused.append(Refused(item.delivery, reason, counter, item.topic.device))
        result.counters[counter] += 1

    @staticmethod
    async def _held_digests(
        conn: asyncpg.Connection,
        table: str,
        keys: list[tuple[str, int]],
        arrived: dict[tuple[str, int], Any],
    ) -> dict[tuple[str, int], str]:
        """Return the digest of what the cloud already holds under each (device, seq) in
        ``keys``; rows written before digests were kept count as the arrived bytes."""
        if not keys:
            return {}
        quarantine = " AND quarantined" if table == "dead_letters" else ""
        rows = await conn.fetch(
            f"""SELECT t.device_id, t.seq, t.digest FROM {table} t
                JOIN unnest($1::text[], $2::bigint[]) AS u(d, s)
                  ON t.device_id = u.d AND t.seq = u.s{quarantine}""",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {
            (r["device_id"], r["seq"]): r["digest"] or arrived[(r["device_id"], r["seq"])].digest
            for r in rows
        }

    async def _write_new(
        self,
        conn: asyncpg.Connection,
        new: Sequence[TelemetryIn | EventsIn],
        assignments: dict[str, list[_Assignment]],
        result: ChunkResult,
        created: dict[SeriesKey, int],
    ) -> None:
        # Telemetry with the series key prefix (tenant, vehicle, device) its rows belong to.
        telemetry: list[tuple[TelemetryIn, str, uuid.UUID | None, str]] = []
        latest: dict[tuple[uuid.UUID, int], tuple[str, datetime, float]] = {}
        events: list[tuple[object, ...]] = []
        gaps: list[tuple[object, ...]] = []
        # The (vehicle, day)s whose trips and rollups this write changes.
        dirty: set[DirtyDay] = set()
        for item in new:
            tenant, device = item.topic.tenant, item.device
            if isinstance(item, TelemetryIn):
                vehicle = _vehicle_at(assignments.get(device, ()), item.first_ts)
                telemetry.append((item, tenant, vehicle, device))
                result.new.append((item, vehicle))
                if vehicle is not None:
                    dirty |= {(tenant, vehicle, day) for day in item.days}
                    for sid, (ts, value) in item.latest.items():
                        seen = latest.get((vehicle, sid))
                        if seen is None or seen[1] < ts:
                            latest[(vehicle, sid)] = (tenant, ts, value)
                result.counters["batches"] += 1
                if item.not_finite:
                    result.counters["samples_not_finite"] += item.not_finite
            else:
                for event in item.batch.events:
                    ts = datetime.fromtimestamp(event.time_ms / 1000, UTC)
                    vehicle = _vehicle_at(assignments.get(device, ()), ts)
                    if vehicle is not None:
                        dirty.add((tenant, vehicle, ts.date()))
                    events.append(
                        (
                            event.id,
                            tenant,
                            device,
                            vehicle,
                            ts,
                            event.type,
                            event.severity,
                            json.dumps(event.data),
                        )
                    )
                    if event.type == GAP_EVENT:
                        gap = gap_row(event, tenant, device, vehicle)
                        if gap is None:
                            result.counters["gaps_unreadable"] += 1
                        else:
                            gaps.append(gap)
                batch_vehicle = events[-1][3] if item.batch.events else None
                result.new.append(
                    (item, batch_vehicle if isinstance(batch_vehicle, uuid.UUID) else None)
                )
                result.counters["event_batches"] += 1
        if telemetry:
            # Series ids per (tenant, vehicle, device), from the cache; only the series it
            # lacks are resolved in the database. Every signal of a batch's rows has a latest
            # value (both hold the finite samples only).
            ids_of: dict[tuple[str, uuid.UUID | None, str], Mapping[int, int]] = {}
            missing: set[SeriesKey] = set()
            for item, tenant, vehicle, device in telemetry:
                prefix = (tenant, vehicle, device)
                ids = ids_of.get(prefix)
                if ids is None:
                    ids = ids_of[prefix] = self.series.known(prefix)
                missing.update((*prefix, sid) for sid in item.latest if sid not in ids)
            if missing:
                added: dict[tuple[str, uuid.UUID | None, str], dict[int, int]] = defaultdict(dict)
                for key, series_id in (await self.series.resolve(conn, missing, created)).items():
                    added[key[:3]][key[3]] = series_id
                for prefix, ids in added.items():
                    ids_of[prefix] = {**ids_of[prefix], **ids}
            records: list[tuple[int, datetime, float]] = []
            # zip builds the record tuples in C, a series at a time.
            for item, tenant, vehicle, device in telemetry:
                ids = ids_of[(tenant, vehicle, device)]
                for sid, stamps, values in item.series:
                    records += zip(repeat(ids[sid], len(values)), stamps, values, strict=True)
            if records:
                await conn.copy_records_to_table(
                    "sample_points", records=records, columns=POINT_COLUMNS
                )
            result.samples = len(records)
            result.counters["samples"] += len(records)
        if latest:
            # UUIDs order as their text does, so writers lock rows in one order.
            keys = sorted(latest)
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
            for signal_id, column in _PROFILE_COLUMNS.items():
                follow = [(k[0], latest[k][2]) for k in keys if k[1] == signal_id]
                if follow:
                    await conn.executemany(
                        f"""UPDATE vehicles SET {column} = $2
                            WHERE id = $1 AND $2 >= 0
                              AND ({column} IS NULL OR {column} < $2)""",
                        follow,
                    )
        if events:
            await conn.executemany(
                """INSERT INTO events (id, tenant_id, device_id, vehicle_id, ts, type, severity,
                                       data)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) ON CONFLICT (id) DO NOTHING""",
                events,
            )
            result.counters["events"] += len(events)
            result.counters["inbox_items"] += await conn.fetchval(
                "SELECT fleetlink_inbox_from_events($1::uuid[])", [e[0] for e in events]
            )
        if gaps:
            await conn.executemany(
                """INSERT INTO gaps (id, tenant_id, device_id, vehicle_id, start_ts, end_ts,
                                     signals, signals_cut, samples, batches, events, reason)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                   ON CONFLICT (id) DO NOTHING""",
                gaps,
            )
            result.counters["gaps"] += len(gaps)
            result.counters["gap_samples"] += sum(int(g[8]) for g in gaps)  # type: ignore[call-overload]
        await mark_dirty(conn, dirty)
