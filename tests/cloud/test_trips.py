"""Trips and totals: computed from ignition and speed, and the same whatever order the same
batches arrive in (stored through the ingest's store, recomputed from the marks it writes)."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlink.cloud.ingest.inbound import Delivery, IngestRules, classify
from fleetlink.cloud.ingest.store import ChunkStore
from fleetlink.cloud.registry import assign_device, create_device, create_tenant, create_vehicle
from fleetlink.cloud.trips.dirty import mark_dirty
from fleetlink.cloud.trips.recompute import FUEL_RATE, RPM, SPEED, recompute_marked
from fleetlink.cloud.trips.segment import DaySignals, Detection, DeviceEvent, compute_day
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Event, EventBatch, Series, TelemetryBatch
from fleetlink.shared.topics import Kind, topic

from .conftest import make_fleet

VEHICLE = uuid.UUID(int=1)
DAY = datetime(2026, 3, 2, tzinfo=UTC)
T0 = DAY.timestamp() + 8 * 3600


def _drive(
    start: float, speeds: list[float], rpm_on: bool = True
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    speed = [(start + i, v) for i, v in enumerate(speeds)]
    rpm = [(start + i, 800.0 + 30 * v if rpm_on else 0.0) for i, v in enumerate(speeds)]
    return speed, rpm


def test_a_trip_has_distance_idle_max_speed_fuel_and_engine_hours() -> None:
    # 60 s idle, 0 -> 72 km/h in 20 s, 600 s at 72 km/h, stop, 60 s idle; fuel 3.6 l/h.
    speeds = [0.0] * 60 + [3.6 * i for i in range(21)] + [72.0] * 600
    speeds += [72.0 - 7.2 * i for i in range(11)] + [0.0] * 60
    speed, rpm = _drive(T0, speeds)
    day = DaySignals(speed=speed, rpm=rpm, fuel_rate_lph=[(t, 3.6) for t, _ in speed])
    [trip] = compute_day(VEHICLE, day, Detection(idling_min_s=50))
    assert trip.started_at == T0 and trip.ended_at == T0 + len(speeds) - 1
    # 20 s ramp (0.2 km) + 601 s at 20 m/s (12.02 km) + 10 s braking (0.1 km)
    assert trip.distance_km == pytest.approx(12.32)
    assert trip.max_speed_kmh == 72.0
    assert trip.idle_s == 121  # 61 s standing before moving off, 60 s after the stop
    assert trip.fuel_used_l == pytest.approx(3.6 * trip.duration_s / 3600)
    assert trip.engine_hours == pytest.approx(trip.duration_s / 3600)
    # Braking at 2 m/s² is not harsh; both idles of >= 50 s are idling events.
    assert [e.type for e in trip.events] == ["idling", "idling"]


def test_ignition_off_and_silence_split_trips_and_standing_with_engine_off_is_no_trip() -> None:
    first, rpm1 = _drive(T0, [30.0] * 120)
    parked, rpm_off = _drive(T0 + 120, [0.0] * 60, rpm_on=False)
    second, rpm2 = _drive(T0 + 180, [40.0] * 120)
    # 10 minutes of silence (longer than gap_s) between the second and third drive.
    third, rpm3 = _drive(T0 + 900, [50.0] * 60)
    day = DaySignals(speed=first + parked + second + third, rpm=rpm1 + rpm_off + rpm2 + rpm3)
    trips = compute_day(VEHICLE, day, Detection())
    assert [(t.started_at - T0, t.ended_at - T0) for t in trips] == [
        (0, 119),
        (180, 299),
        (900, 959),
    ]


def test_harsh_braking_and_speeding_are_derived_from_speed_unless_the_device_reported_them() -> (
    None
):
    # Cruise at 130 for 30 s (limit 110), then brake 130 -> 0 at 6 m/s² (21.6 km/h per s).
    speeds = [60.0] * 10 + [130.0] * 30 + [max(0.0, 130 - 21.6 * i) for i in range(1, 8)]
    speeds += [0.0] * 5
    speed, rpm = _drive(T0, speeds)
    [trip] = compute_day(VEHICLE, DaySignals(speed=speed, rpm=rpm), Detection())
    kinds = {e.type: e for e in trip.events}
    assert set(kinds) == {"harsh_acceleration", "speeding", "harsh_braking"}
    assert kinds["speeding"].magnitude == 20.0 and kinds["speeding"].duration_s == 30
    assert kinds["harsh_braking"].magnitude == pytest.approx(6.0)
    assert all(e.source == "derived" for e in trip.events)
    reported = DeviceEvent(uuid.uuid4(), T0 + 41, "harsh_braking", {"decel_ms2": 6.5})
    day = DaySignals(speed=speed, rpm=rpm, events=[reported])
    [trip] = compute_day(VEHICLE, day, Detection())
    braking = [e for e in trip.events if e.type == "harsh_braking"]
    assert [(e.source, e.event_id, e.magnitude) for e in braking] == [("device", reported.id, 6.5)]


# --- the same batches in any order give the same trips -------------------------------------

BASE = (datetime.now(UTC) - timedelta(days=3)).replace(hour=7, minute=0, second=0, microsecond=0)


def _profile(seed: int) -> list[tuple[int, float, float, float]]:
    """(offset s, speed, rpm, fuel l/h) of a morning with two or three drives."""
    rng = random.Random(seed)
    rows: list[tuple[int, float, float, float]] = []
    t = 0
    for _ in range(rng.randint(2, 3)):
        speed = 0.0
        for _ in range(rng.randint(180, 420)):
            target = rng.choice([0.0, 30.0, 50.0, 80.0, 125.0])
            step = rng.uniform(1.0, 15.0)
            speed = max(0.0, min(target, speed + step) if target > speed else speed - step)
            rows.append((t, speed, 700 + 25 * speed, 0.8 + speed / 20))
            t += 1
        for _ in range(rng.randint(30, 90)):  # parked, engine off
            rows.append((t, 0.0, 0.0, 0.0))
            t += 1
        t += rng.choice([0, 400])  # sometimes a silence longer than a trip gap
    return rows


def _batches(
    device: str, rows: list[tuple[int, float, float, float]], cuts: list[int]
) -> list[bytes]:
    bounds = sorted({0, len(rows), *(c % len(rows) for c in cuts)})
    payloads = []
    seq = 0
    for lo, hi in itertools.pairwise(bounds):
        part = rows[lo:hi]
        first = part[0][0]
        seq += 1
        payloads.append(
            encode(
                TelemetryBatch(
                    device_id=device,
                    seq=seq,
                    base_time_ms=int(BASE.timestamp() * 1000) + first * 1000,
                    series=[
                        Series(
                            signal_id=sid,
                            offsets_ms=[(r[0] - first) * 1000 for r in part],
                            values=[r[column] for r in part],
                        )
                        for sid, column in ((SPEED, 1), (RPM, 2), (FUEL_RATE, 3))
                    ],
                )
            )
        )
    seq += 1
    when = int(BASE.timestamp() * 1000) + rows[len(rows) // 3][0] * 1000
    event = Event(id=uuid.uuid4(), time_ms=when, type="harsh_cornering", data={"lateral_ms2": 4.2})
    payloads.append(encode(EventBatch(device_id=device, seq=seq, events=[event])))
    return payloads


async def _store_in_order(
    url: str,
    rows: list[tuple[int, float, float, float]],
    cuts: list[int],
    order: list[int] | None,
    recompute_after: set[int],
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        tenant = f"t-{uuid.uuid4().hex[:10]}"
        await create_tenant(conn, tenant)
        device = f"{tenant}-dev"
        await create_device(conn, tenant, device)
        vehicle = await create_vehicle(conn, tenant, "van")
        await assign_device(conn, device, vehicle, BASE - timedelta(days=1))
        store = ChunkStore()
        now = datetime.now(UTC)
        payloads = _batches(device, rows, cuts)
        for n, index in enumerate(order or range(len(payloads))):
            payload = payloads[index]
            kind = Kind.EVENTS if index == len(payloads) - 1 else Kind.TELEMETRY
            item = classify(
                Delivery(topic(tenant, device, kind), payload, 0, 1, now), now, IngestRules()
            )
            written = await store.write(conn, [item])
            assert not written.refused and not written.counters["dead_lettered"], written
            if n in recompute_after:
                await recompute_marked(pool, limit=100)
        await recompute_marked(pool, limit=100)
        trips = await conn.fetch(
            "SELECT started_at, ended_at, distance_km, idle_s, max_speed_kmh, fuel_used_l, "
            "engine_hours FROM trips WHERE vehicle_id = $1 ORDER BY started_at",
            vehicle,
        )
        events = await conn.fetch(
            "SELECT ts, type, source, duration_s, magnitude FROM driving_events "
            "WHERE vehicle_id = $1 ORDER BY ts, type",
            vehicle,
        )
        totals = await conn.fetchrow(
            "SELECT count(*), sum(distance_km), sum(idle_s), sum(fuel_used_l), "
            "sum(engine_hours) FROM trips WHERE vehicle_id = $1",
            vehicle,
        )
        return [tuple(r) for r in trips], [tuple(r) for r in events], tuple(totals)
    finally:
        await pool.close()
        await conn.close()


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    cuts=st.lists(st.integers(0, 10_000), min_size=2, max_size=8),
    data=st.data(),
)
def test_any_arrival_order_of_the_same_batches_gives_the_same_trips_and_totals(
    migrated_db: str, seed: int, cuts: list[int], data: st.DataObject
) -> None:
    rows = _profile(seed)
    count = len(_batches("d", rows, cuts))
    shuffled = data.draw(st.permutations(range(count)), label="arrival order")
    recompute_after = set(
        data.draw(st.lists(st.integers(0, count - 1), max_size=4), label="recomputes")
    )
    expected = asyncio.run(_store_in_order(migrated_db, rows, cuts, None, set()))
    got = asyncio.run(_store_in_order(migrated_db, rows, cuts, list(shuffled), recompute_after))
    assert expected[0], "the profile drives at least one trip"
    assert got == expected


def test_days_a_batch_spans_are_each_recomputed(migrated_db: str) -> None:
    # A drive across midnight: cut there, each day holding its own part.
    # Ten minutes at 60 km/h from 23:55, in one batch.
    start = int((BASE.replace(hour=23, minute=55) - BASE).total_seconds())
    rows = [(start + i, 60.0, 2000.0, 5.0) for i in range(600)]
    trips, _, totals = asyncio.run(_store_in_order(migrated_db, rows, [], None, set()))
    assert [(t[0].date(), t[1].date()) for t in trips] == [
        (BASE.date(), BASE.date()),
        (BASE.date() + timedelta(days=1), BASE.date() + timedelta(days=1)),
    ]
    # The one second across midnight belongs to neither day.
    assert totals[1] == pytest.approx(598 * 60 / 3600)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_day_that_cannot_be_recomputed_stays_marked_and_does_not_block_others(
    pool: asyncpg.Pool,
) -> None:
    broken, fine = await make_fleet(pool), await make_fleet(pool)
    day = BASE.date()
    async with pool.acquire() as conn:
        # Rules stored around the API's validation: the recompute cannot read them.
        await conn.execute(
            "INSERT INTO scoring_rules (tenant_id, rules) VALUES ($1, '{\"risk_bands\": []}')",
            broken.tenant,
        )
        async with conn.transaction():
            await mark_dirty(conn, [(broken.tenant, broken.vehicles[broken.devices[0]], day)])
            await mark_dirty(conn, [(fine.tenant, fine.vehicles[fine.devices[0]], day)])
        failed = await conn.fetchval(
            "SELECT coalesce(max(count), 0) FROM ingest_counters "
            "WHERE name = 'trip_recompute_failed'"
        )
    await recompute_marked(pool, limit=1000)
    async with pool.acquire() as conn:
        marked = await conn.fetch("SELECT tenant_id FROM trip_dirty WHERE day = $1", day)
        assert broken.tenant in {r["tenant_id"] for r in marked}
        assert fine.tenant not in {r["tenant_id"] for r in marked}
        assert (
            await conn.fetchval(
                "SELECT count FROM ingest_counters WHERE name = 'trip_recompute_failed'"
            )
            > failed
        )
