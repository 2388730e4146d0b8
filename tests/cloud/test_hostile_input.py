"""No message a client can publish stops the ingest, and a skewed clock loses nothing
(issue 16, probes 2, 3 and 6)."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import zstandard

from fleetlink.cloud.ingest.dead_letters import DeadLetterLimits, prune, replay
from fleetlink.cloud.ingest.inbound import (
    IngestRules,
)
from fleetlink.cloud.ingest.partitions import partition_name
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.shared.codec import encode, encode_raw
from fleetlink.shared.messages import MAX_SEQ, Status
from fleetlink.shared.topics import Kind, topic
from tests.conftest import clear_retained

from .conftest import AckListener, Fleet, ingest_settings, listen_for_acks, make_fleet
from .helpers import SPEED, now_ms, telemetry, telemetry_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")

RULES = IngestRules()


async def partitions(pool: asyncpg.Pool) -> set[str]:
    rows = await pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'sample_points'"
    )
    return {r["relname"] for r in rows}


@pytest.fixture
async def ingest(pool, migrated_db, mqtt_broker):
    service = IngestService(ingest_settings(migrated_db, mqtt_broker.url), pool)
    await service.start()
    yield service
    await service.stop()


async def test_hostile_messages_leave_the_ingest_storing_other_devices_within_seconds(
    pool, ingest, publisher, mqtt_broker
):
    fleet = await make_fleet(pool, devices=2)
    victim, other = fleet.devices
    acks, client = listen_for_acks(mqtt_broker, fleet.tenant)
    before = await partitions(pool)
    stranger = "nobody-" + "x" * 50

    def frame(**body: object) -> bytes:
        return encode_raw(body)

    hostile = [
        (Kind.TELEMETRY, frame(device_id=victim, seq=5, base_time_ms=2**53 - 1, series=[])),
        (Kind.STATUS, frame(device_id=victim, online=True, time_ms=2**62)),
        (Kind.TELEMETRY, bytes((1, 0b100)) + zstandard.ZstdCompressor().compress(bytes(10**7))),
        (Kind.TELEMETRY, frame(device_id=victim, seq=2**53 - 1, base_time_ms=now_ms(), series=[])),
    ]
    # 50 empty batches with 50 different base days
    hostile += [
        (
            Kind.TELEMETRY,
            frame(device_id=victim, seq=100 + n, base_time_ms=10**12 + n * 86_400_000, series=[]),
        )
        for n in range(50)
    ]
    for kind, payload in hostile:
        publisher.publish(topic(fleet.tenant, victim, kind), payload, qos=1)
    for n in range(200):
        publisher.publish(
            telemetry_topic(fleet.tenant, stranger + str(n)), telemetry(stranger + str(n), 1), qos=1
        )
    publisher.publish(telemetry_topic(fleet.tenant, other), telemetry(other, 1), qos=1)
    try:
        await acks.wait_for(lambda: acks.seqs(other) == [1], 10)
        await acks.wait_for(lambda: 149 in acks.seqs(victim), 10)
    finally:
        client.disconnect()
        client.loop_stop()
    # No partition for empty or refused batches: only today's, for the honest batch.
    assert await partitions(pool) - before <= {partition_name(datetime.now(UTC).date())}
    assert all(h.writer_alive for h in ingest.health())
    totals = ingest.totals()
    assert totals["seq_jump"] == 1 and totals["unknown_device"] >= 200
    assert ingest.workers[0]._refusals.suppressed > 0  # a flood costs a few log lines
    assert await pool.fetchval("SELECT last_seen FROM devices WHERE id = $1", victim) is None


async def test_a_retained_poison_status_does_not_stop_the_ingest_at_start(
    pool, migrated_db, mqtt_broker, fleet: Fleet, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    status_topic = topic(fleet.tenant, device, Kind.STATUS)
    poison = encode_raw({"device_id": device, "online": True, "time_ms": 2**62})
    publisher.publish(status_topic, poison, qos=1, retain=True).wait_for_publish(5)
    service = IngestService(
        ingest_settings(migrated_db, mqtt_broker.url, shared_subscription="off"), pool
    )
    try:
        await service.start()
        publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 1), qos=1)
        await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1])
        letters = await pool.fetchval(
            "SELECT count(*) FROM dead_letters WHERE topic = $1", status_topic
        )
        assert letters >= 1
    finally:
        await service.stop()
        clear_retained(mqtt_broker, {status_topic})


async def test_a_clock_days_ahead_is_quarantined_acked_and_replayed_with_a_shift(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    vehicle = fleet.vehicles[device]
    two_days_ms = 2 * 86_400_000
    true_base = now_ms() - 60_000
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 1, base_ms=true_base + two_days_ms, values={SPEED: [50.0, 60.0]}),
        qos=1,
    )
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1])
    row = await pool.fetchrow(
        "SELECT id, quarantined, seq, reason FROM dead_letters WHERE device_id = $1", device
    )
    assert row["quarantined"] and row["seq"] == 1 and row["reason"].startswith("clock")
    assert (
        await pool.fetchval("SELECT count(*) FROM latest_signals WHERE vehicle_id = $1", vehicle)
        == 0
    )
    assert ack_listener.acks[-1].high_water == 1  # quarantined seqs count for the mark

    async with pool.acquire() as conn:
        unshifted = await replay(conn, RULES, ids=[row["id"]])
        assert unshifted["still_refused"] == 1
        shifted = await replay(conn, RULES, ids=[row["id"]], shift_ms=-two_days_ms)
    assert shifted["replayed"] == 1
    stored = await pool.fetch(
        "SELECT ts, value FROM samples WHERE device_id = $1 ORDER BY ts", device
    )
    assert [r["value"] for r in stored] == [50.0, 60.0]
    assert abs(stored[0]["ts"].timestamp() * 1000 - true_base) < 1


async def test_a_status_from_the_future_moves_presence_only_to_the_receive_time(
    pool, fleet: Fleet, ingest, publisher
):
    device = fleet.devices[0]
    three_years = 3 * 365 * 86_400_000
    status = Status(device_id=device, online=True, time_ms=now_ms() + three_years)
    publisher.publish(topic(fleet.tenant, device, Kind.STATUS), encode(status), qos=1)

    async def seen():
        return await pool.fetchval("SELECT last_seen FROM devices WHERE id = $1", device)

    for _ in range(200):
        if await seen() is not None:
            break
        await asyncio.sleep(0.05)
    assert abs((await seen()) - datetime.now(UTC)) < timedelta(minutes=1)
    # A later, honest status still moves presence forward.
    later = Status(device_id=device, online=False, time_ms=now_ms() + 5_000)
    publisher.publish(topic(fleet.tenant, device, Kind.STATUS), encode(later), qos=1)
    for _ in range(200):
        if await pool.fetchval("SELECT online FROM devices WHERE id = $1", device) is False:
            break
        await asyncio.sleep(0.05)
    assert await pool.fetchval("SELECT online FROM devices WHERE id = $1", device) is False


async def test_dead_letters_are_capped_in_rows_and_bytes_keeping_quarantined_ones(pool):
    tag = f"fl/v1/cap-{uuid.uuid4().hex[:6]}/d/telemetry"
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM dead_letters")
        await conn.executemany(
            "INSERT INTO dead_letters (topic, payload, reason, quarantined, device_id, seq) "
            "VALUES ($1, $2, 'junk', $3, $4, $5)",
            [
                (tag, bytes(1000), n < 5, "d" if n < 5 else None, n if n < 5 else None)
                for n in range(50)
            ],
        )
        await conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, reason) "
            "VALUES (now() - interval '30 days', $1, 'old', 'junk')",
            tag,
        )
        dropped = await prune(conn, DeadLetterLimits(max_rows=20, max_bytes=15_000))
        left = await conn.fetch("SELECT quarantined, size FROM dead_letters")
    assert dropped == 51 - len(left)
    assert len(left) <= 15 and sum(r["size"] for r in left) <= 15_000
    assert sum(r["quarantined"] for r in left) == 5


async def test_a_device_seq_far_beyond_its_high_water_mark_is_refused_not_acked(
    pool, fleet: Fleet, ingest, publisher, ack_listener: AckListener
):
    device = fleet.devices[0]
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 1), qos=1)
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, MAX_SEQ - 1), qos=1)
    publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 2), qos=1)
    await ack_listener.wait_for(lambda: 2 in ack_listener.seqs(device))
    assert MAX_SEQ - 1 not in ack_listener.seqs(device)
    assert max(a.high_water for a in ack_listener.acks) == 2


async def test_where_the_broker_states_the_publisher_another_identity_is_refused(
    pool, migrated_db, mqtt_broker, fleet: Fleet, publisher, ack_listener: AckListener
):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    # Here the test plays the broker that sets the property (e.g. an EMQX rule).
    settings = ingest_settings(migrated_db, mqtt_broker.url, mqtt_publisher_property="fl-user")
    service = IngestService(settings, pool)
    await service.start()
    device = fleet.devices[0]

    def stated(user: str) -> Properties:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("fl-user", user)
        return props

    try:
        name = telemetry_topic(fleet.tenant, device)
        publisher.publish(name, telemetry(device, 1), qos=1, properties=stated("someone-else"))
        publisher.publish(name, telemetry(device, 2), qos=1)  # not stated: refused too
        publisher.publish(name, telemetry(device, 3), qos=1, properties=stated(device))
        await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [3])
        assert service.totals()["publisher_mismatch"] >= 2  # the shared broker may add more
        stored = await pool.fetch("SELECT seq FROM ingested_batches WHERE device_id = $1", device)
        assert [r["seq"] for r in stored] == [3]
    finally:
        await service.stop()
