import asyncio
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest

from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.registry import assign_device, create_vehicle
from fleetlink.shared.signals import by_name
from tests.waiting import eventually

from .conftest import AckListener, Fleet, ingest_settings, make_fleet
from .helpers import RPM, SPEED, events, events_topic, now_ms, telemetry, telemetry_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def ingest(pool, migrated_db, mqtt_broker):
    service = IngestService(ingest_settings(migrated_db, mqtt_broker.url), pool)
    await service.start()
    yield service
    await service.stop()


async def counter(pool: asyncpg.Pool, name: str) -> int:
    return await pool.fetchval("SELECT count FROM ingest_counters WHERE name = $1", name) or 0


async def test_batch_is_stored_once_and_acked_after_commit(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 1), qos=1)
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1])
    # The ack was sent after commit, so the rows are already visible to another connection.
    rows = await pool.fetch(
        "SELECT vehicle_id, signal_id, value FROM samples WHERE device_id = $1", device
    )
    assert len(rows) == 5
    assert {r["vehicle_id"] for r in rows} == {fleet.vehicles[device]}
    assert (
        await pool.fetchval(
            "SELECT sample_count FROM ingested_batches WHERE device_id = $1 AND seq = 1", device
        )
        == 5
    )
    assert ack_listener.acks[0].high_water == 1


async def test_redelivered_batch_is_stored_once_and_acked_again(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    before = await counter(pool, "duplicates")
    payload = telemetry(device, 7)
    publisher.publish(telemetry_topic(fleet.tenant, device), payload, qos=1)
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [7])
    publisher.publish(telemetry_topic(fleet.tenant, device), payload, qos=1)
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [7, 7])
    assert await pool.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", device) == 5
    assert await counter(pool, "duplicates") == before + 1


async def test_every_ack_carries_the_largest_seq_the_cloud_holds(
    fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    for seq in (4, 2, 4):  # a later seq, then a lower one, then a repeat
        publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, seq), qos=1)
        count = len(ack_listener.seqs(device)) + 1
        await ack_listener.wait_for(lambda n=count: len(ack_listener.seqs(device)) == n)
    assert ack_listener.seqs(device) == [4, 2, 4]
    assert [a.high_water for a in ack_listener.acks if a.device_id == device] == [4, 4, 4]


async def test_a_batch_with_a_signal_new_beside_known_ones_stores_each_under_its_own_series(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    coolant = by_name("Vehicle.Powertrain.CombustionEngine.ECT").id
    sent = [
        {SPEED: [10.0], RPM: [800.0]},
        {SPEED: [20.0], RPM: [900.0], coolant: [90.0]},  # SPEED, RPM cached; coolant new
    ]
    for seq, values in enumerate(sent, start=1):
        payload = telemetry(device, seq, now_ms() - 60_000 + seq * 10_000, values)
        publisher.publish(telemetry_topic(fleet.tenant, device), payload, qos=1)
        await ack_listener.wait_for(lambda n=seq: len(ack_listener.seqs(device)) == n)
    rows = await pool.fetch(
        "SELECT signal_id, value FROM samples WHERE device_id = $1 ORDER BY ts", device
    )
    stored: dict[int, list[float]] = {}
    for r in rows:
        stored.setdefault(r["signal_id"], []).append(r["value"])
    assert stored == {SPEED: [10.0, 20.0], RPM: [800.0, 900.0], coolant: [90.0]}
    series = await pool.fetchval("SELECT count(*) FROM sample_series WHERE device_id = $1", device)
    assert series == 3


async def test_two_workers_on_a_shared_subscription_store_every_seq_exactly_once(
    pool, migrated_db, mqtt_broker, publisher, ack_listener: AckListener, fleet: Fleet
):
    service = IngestService(
        ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=2, ingest_max_batches=7),
        pool,
    )
    await service.start()
    try:
        assert service.plan is not None and service.plan.shared
        assert len(service.workers) == 2
        device = fleet.devices[0]
        seqs = list(range(1, 301))
        for seq in seqs:
            payload = telemetry(device, seq)
            publisher.publish(telemetry_topic(fleet.tenant, device), payload, qos=1)
            if seq % 3 == 0:
                publisher.publish(telemetry_topic(fleet.tenant, device), payload, qos=1)
        await ack_listener.wait_for(lambda: set(ack_listener.seqs(device)) == set(seqs), 30)
        stored = await pool.fetch(
            "SELECT seq FROM ingested_batches WHERE device_id = $1 ORDER BY seq", device
        )
        assert [r["seq"] for r in stored] == seqs
        assert await pool.fetchval(
            "SELECT count(*) FROM samples WHERE device_id = $1", device
        ) == 5 * len(seqs)
        per_worker = [w.totals["batches"] for w in service.workers]
        assert sum(per_worker) == len(seqs)
        assert all(n > 0 for n in per_worker), per_worker
    finally:
        await service.stop()


async def test_malformed_payload_is_dead_lettered_and_the_consumer_keeps_working(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    before = await counter(pool, "dead_lettered")
    topic_name = telemetry_topic(fleet.tenant, device)
    publisher.publish(topic_name, b"\x01\x00not msgpack at all \xc1\xc1", qos=1)
    publisher.publish(topic_name, telemetry(device, 3, values={SPEED: [1.0, 2.0]})[:-1], qos=1)
    publisher.publish(topic_name, telemetry(device, 4), qos=1)
    await ack_listener.wait_for(lambda: 4 in ack_listener.seqs(device))
    letters = await pool.fetch(
        "SELECT topic, payload, reason FROM dead_letters WHERE topic = $1 ORDER BY id", topic_name
    )
    assert len(letters) == 2
    assert all(r["reason"] for r in letters)
    assert letters[0]["payload"].startswith(b"\x01\x00not msgpack")
    assert await counter(pool, "dead_lettered") == before + 2
    assert (
        await pool.fetchval("SELECT count(*) FROM ingested_batches WHERE device_id = $1", device)
        == 1
    )


async def test_invalid_batch_with_a_readable_seq_is_acked_so_the_device_stops_resending(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    payload = telemetry(device, 5, values={9999: [1.0]})
    publisher.publish(telemetry_topic(fleet.tenant, device), payload, qos=1)
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [5])
    reason = await pool.fetchval("SELECT reason FROM dead_letters WHERE payload = $1", payload)
    assert "unknown signal id 9999" in reason
    assert await pool.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", device) == 0


async def test_batch_from_an_unknown_device_is_refused_and_counted(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    before = await counter(pool, "unknown_device")
    stranger = f"{fleet.tenant}-stranger"
    publisher.publish(telemetry_topic(fleet.tenant, stranger), telemetry(stranger, 1), qos=1)
    await eventually(lambda: _more(pool, "unknown_device", before))
    assert await pool.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", stranger) == 0
    assert ack_listener.seqs(stranger) == []


async def test_batch_on_another_tenants_topic_or_naming_another_device_is_refused(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    other = await make_fleet(pool)
    device = fleet.devices[0]
    wrong_tenant = await counter(pool, "wrong_tenant")
    refused = await counter(pool, "refused")
    publisher.publish(telemetry_topic(other.tenant, device), telemetry(device, 1), qos=1)
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(other.devices[0], 1), qos=1)
    await eventually(lambda: _more(pool, "wrong_tenant", wrong_tenant))
    await eventually(lambda: _more(pool, "refused", refused))
    assert await pool.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", device) == 0
    assert (
        await pool.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", other.devices[0])
        == 0
    )


async def _more(pool: asyncpg.Pool, name: str, than: int) -> bool:
    return await counter(pool, name) > than


async def test_events_are_stored_with_their_vehicle_and_acked_in_the_shared_seq_space(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 1), qos=1)
    payload, ids = events(device, 2)
    publisher.publish(events_topic(fleet.tenant, device), payload, qos=1)
    await ack_listener.wait_for(lambda: sorted(ack_listener.seqs(device)) == [1, 2])
    rows = await pool.fetch(
        "SELECT id, vehicle_id, type, severity, data FROM events WHERE device_id = $1", device
    )
    assert {r["id"] for r in rows} == set(ids)
    assert {r["vehicle_id"] for r in rows} == {fleet.vehicles[device]}
    assert rows[0]["severity"] == "warning" and '"decel_ms2": 6.5' in rows[0]["data"]
    kinds = await pool.fetch(
        "SELECT seq, kind FROM ingested_batches WHERE device_id = $1 ORDER BY seq", device
    )
    assert [(r["seq"], r["kind"]) for r in kinds] == [(1, "telemetry"), (2, "events")]


async def test_latest_signals_keep_the_newest_value_even_when_older_batches_arrive_late(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    t = now_ms() - 600_000
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 2, base_ms=t + 60_000, values={SPEED: [50.0, 55.0]}),
        qos=1,
    )
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [2])
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 1, base_ms=t, values={SPEED: [10.0], RPM: [700.0]}),
        qos=1,
    )
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [2, 1])
    rows = await pool.fetch(
        "SELECT signal_id, value FROM latest_signals WHERE vehicle_id = $1 ORDER BY signal_id",
        fleet.vehicles[device],
    )
    assert [(r["signal_id"], r["value"]) for r in rows] == [(RPM, 700.0), (SPEED, 55.0)]


async def test_samples_go_to_the_vehicle_the_device_was_in_at_the_time(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    first_vehicle = fleet.vehicles[device]
    second_vehicle = await create_vehicle(pool, fleet.tenant, "van")
    async with pool.acquire() as conn:
        await assign_device(conn, device, second_vehicle, datetime.now(UTC) - timedelta(minutes=5))
    old = now_ms() - 3_600_000
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 1, old), qos=1)
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 2), qos=1)
    await ack_listener.wait_for(lambda: sorted(ack_listener.seqs(device)) == [1, 2])
    rows = await pool.fetch(
        "SELECT DISTINCT vehicle_id, ts < now() - interval '30 minutes' AS old FROM samples "
        "WHERE device_id = $1 ORDER BY old DESC",
        device,
    )
    assert [(r["old"], r["vehicle_id"]) for r in rows] == [
        (True, first_vehicle),
        (False, second_vehicle),
    ]


async def test_status_messages_update_the_device(pool, fleet: Fleet, ingest, publisher):
    from fleetlink.shared.codec import encode
    from fleetlink.shared.messages import Status
    from fleetlink.shared.topics import Kind, topic

    device = fleet.devices[0]
    status = Status(
        device_id=device,
        online=True,
        time_ms=now_ms(),
        agent_version="0.1.0",
        buffered_batches=7,
        profile="generic-obd2",
        versions={"profile": "1.1.0", "model": "m3"},
    )
    publisher.publish(topic(fleet.tenant, device, Kind.STATUS), encode(status), qos=1)

    async def seen() -> bool:
        return await pool.fetchval("SELECT online FROM devices WHERE id = $1", device) is True

    await eventually(seen)
    assert await pool.fetchval("SELECT agent_version FROM devices WHERE id = $1", device) == "0.1.0"
    stored = json.loads(await pool.fetchval("SELECT status FROM devices WHERE id = $1", device))
    assert (stored["buffered_batches"], stored["profile"], stored["versions"]) == (
        7,
        "generic-obd2",
        {"profile": "1.1.0", "model": "m3"},
    )


async def test_no_ack_is_sent_while_the_transaction_cannot_commit(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    async with pool.acquire() as blocker:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE ingested_batches IN ACCESS EXCLUSIVE MODE")
        publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 1), qos=1)
        await asyncio.sleep(0.5)
        assert ack_listener.seqs(device) == []
        await tx.rollback()
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1])
    assert await pool.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", device) == 5


async def test_message_the_database_refuses_is_dead_lettered_without_stalling_its_chunk(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    from fleetlink.shared.codec import encode
    from fleetlink.shared.messages import Event, EventBatch

    device = fleet.devices[0]
    poison = EventBatch(
        device_id=device,
        seq=2,
        events=[Event(id=uuid4(), time_ms=now_ms(), type="note", data={"text": "a\x00b"})],
    )
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 1), qos=1)
    publisher.publish(events_topic(fleet.tenant, device), encode(poison), qos=1)
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 3), qos=1)
    await ack_listener.wait_for(lambda: sorted(ack_listener.seqs(device)) == [1, 2, 3])
    reason = await pool.fetchval(
        "SELECT reason FROM dead_letters WHERE topic = $1", events_topic(fleet.tenant, device)
    )
    assert reason.startswith("the database refused it")
    stored = await pool.fetch(
        "SELECT seq FROM ingested_batches WHERE device_id = $1 ORDER BY seq", device
    )
    assert [r["seq"] for r in stored] == [1, 3]


async def test_the_vehicles_odometer_and_engine_hours_follow_reported_readings_upwards_only(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    vehicle = fleet.vehicles[device]
    odometer = by_name("Vehicle.TraveledDistance").id
    hours = by_name("Vehicle.Powertrain.CombustionEngine.EngineHours").id
    await pool.execute("UPDATE vehicles SET engine_hours = 500 WHERE id = $1", vehicle)
    t = now_ms() - 600_000
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 1, base_ms=t, values={odometer: [1200.0, 1202.0], hours: [420.0]}),
        qos=1,
    )
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1])
    row = await pool.fetchrow(
        "SELECT odometer_km, engine_hours FROM vehicles WHERE id = $1", vehicle
    )
    # the odometer takes the newest reading; 500 h set by hand stays above the 420 h reported
    assert (row["odometer_km"], row["engine_hours"]) == (1202.0, 500.0)
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 2, base_ms=t + 60_000, values={odometer: [1100.0], hours: [501.0]}),
        qos=1,
    )
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1, 2])
    row = await pool.fetchrow(
        "SELECT odometer_km, engine_hours FROM vehicles WHERE id = $1", vehicle
    )
    assert (row["odometer_km"], row["engine_hours"]) == (1202.0, 501.0)
