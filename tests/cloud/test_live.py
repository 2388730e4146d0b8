"""The live stream: fed by the ingest after commit, per tenant, filtered, resumable, bounded."""

from __future__ import annotations

import asyncio
import socket
import uuid

import asyncpg
import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.app_keys import INGEST, LIVE_HUB
from fleetlink.cloud.live.hub import LiveFilter, LiveHub

from .conftest import AckListener, Fleet, bearer, ingest_settings, make_fleet, member_token
from .helpers import RPM, SPEED, events, events_topic, now_ms, telemetry, telemetry_topic
from .sse import read_events

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_slow_subscriber_is_dropped_and_holds_no_more_than_its_queue() -> None:
    hub = LiveHub(queue_size=4, replay_size=8)
    slow = hub.subscribe("t", LiveFilter())
    fast = hub.subscribe("t", LiveFilter())
    for n in range(4):
        hub.publish("t", "signals", {"n": n})
        assert (await fast.next()) is not None
    assert slow.queue.qsize() == 4
    hub.publish("t", "signals", {"n": 4})
    assert slow.dropped and slow.queue.qsize() == 1 and (await slow.next()) is None
    assert hub.subscriber_count("t") == 1 and hub.counters["dropped_slow_clients"] == 1
    assert (await fast.next()) is not None and not fast.dropped
    for n in range(1000):
        hub.publish("t", "signals", {"n": n})
        await fast.next()
    assert len(hub._tenants["t"].replay) == 8  # the replay buffer stays bounded too


async def test_last_event_id_replays_what_was_missed_or_says_reset() -> None:
    hub = LiveHub(queue_size=16, replay_size=4)
    sent = [hub.publish("t", "signals", {"n": n}, "v1") for n in range(6)]
    resumed = hub.subscribe("t", LiveFilter(), sent[3].id)
    assert [(await resumed.next()).id for _ in range(2)] == [sent[4].id, sent[5].id]  # type: ignore[union-attr]
    assert not resumed.reset
    assert hub.subscribe("t", LiveFilter(), sent[0].id).reset  # older than the buffer
    assert hub.subscribe("t", LiveFilter(), "123-4").reset  # another process's id
    other_vehicle = hub.subscribe("t", LiveFilter(vehicles=frozenset({"v2"})), sent[3].id)
    assert other_vehicle.queue.empty() and not other_vehicle.reset


async def test_a_tenant_nobody_watches_gets_no_messages_and_a_late_resume_is_reset() -> None:
    now = [0.0]
    hub = LiveHub(queue_size=16, replay_size=8, idle_grace_s=60, clock=lambda: now[0])
    assert not hub.watches("t")  # never had a client
    client = hub.subscribe("t", LiveFilter())
    assert hub.newly_watched.is_set() and hub.watches("t") and hub.watched_tenants() == ["t"]
    seen = hub.publish("t", "signals", {"n": 1})
    assert seen is not None and (await client.next()) == seen
    hub.unsubscribe(client)
    now[0] = 59.0  # within the grace: a client that comes back resumes from the buffer
    assert hub.watches("t")
    kept = hub.publish("t", "signals", {"n": 2})
    assert kept is not None
    now[0] = 61.0  # the grace is over: nothing is formatted or kept for the tenant
    assert not hub.watches("t") and hub.watched_tenants() == []
    assert hub.publish("t", "signals", {"n": 3}) is None
    assert hub.counters["unwatched_dropped"] == 1
    hub.newly_watched.clear()
    late = hub.subscribe("t", LiveFilter(), seen.id)
    assert late.reset and late.queue.empty()  # what came meanwhile was not kept
    assert hub.newly_watched.is_set() and hub.watches("t")
    after = hub.publish("t", "signals", {"n": 4})
    assert after is not None and (await late.next()) == after
    hub.unsubscribe(late)
    resumed = hub.subscribe("t", LiveFilter(), after.id)  # from after the gap: no reset
    assert not resumed.reset


async def test_the_ingest_formats_live_messages_only_for_watched_tenants(
    migrated_db, mqtt_broker, aiohttp_client, pool: asyncpg.Pool, fleet: Fleet, publisher
) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(ingest_settings(migrated_db, mqtt_broker.url)))
    hub = client.app[LIVE_HUB]
    device = fleet.devices[0]
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 1, now_ms() - 2000, {SPEED: [40.0]}),
        qos=1,
    )
    await _eventually(lambda: client.app[INGEST].totals()["batches"] >= 1)
    assert hub.counters["published"] == 0  # nobody watched: nothing formatted or relayed
    token = await member_token(pool, fleet.tenant, "viewer", scopes=("read",))
    stream = await client.get("/api/v1/live", headers=bearer(token))
    await _eventually(lambda: hub.subscriber_count(fleet.tenant) == 1)
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 2, now_ms() - 1000, {SPEED: [41.0]}),
        qos=1,
    )
    (event,) = await read_events(stream, 1)
    assert event.data["seq"] == 2 and event.data["signals"]["Vehicle.Speed"]["value"] == 41.0
    stream.close()


async def _eventually(condition, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_filters_pick_vehicles_signals_and_kinds() -> None:
    hub = LiveHub()
    speed = hub.subscribe("t", LiveFilter(signals=frozenset({"Vehicle.Speed"})))
    van = hub.subscribe("t", LiveFilter(vehicles=frozenset({"van"}), events=frozenset({"event"})))
    other_tenant = hub.subscribe("u", LiveFilter())
    hub.publish("t", "signals", {}, "van", ["Vehicle.Speed"])
    hub.publish("t", "signals", {}, "van", ["Vehicle.Powertrain.CombustionEngine.Speed"])
    hub.publish("t", "event", {}, "van")
    hub.publish("t", "event", {}, "car")
    assert speed.queue.qsize() == 3  # its speed sample and both events (not the rpm)
    assert van.queue.qsize() == 1
    assert other_tenant.queue.empty()


@pytest.fixture
async def live_app(aiohttp_client, migrated_db, mqtt_broker):  # type: ignore[no-untyped-def]
    settings = ingest_settings(migrated_db, mqtt_broker.url, live_queue_size=8)
    return await aiohttp_client(create_app(settings))


async def test_committed_batches_reach_the_stream_of_their_tenant_only_and_resume(
    live_app, pool: asyncpg.Pool, fleet: Fleet, publisher, ack_listener: AckListener
) -> None:
    other = await make_fleet(pool)
    token = await member_token(pool, fleet.tenant, "viewer", scopes=("read",))
    other_token = await member_token(pool, other.tenant, "owner")
    device = fleet.devices[0]
    vehicle = str(fleet.vehicles[device])
    stream = await live_app.get("/api/v1/live", headers=bearer(token))
    assert stream.status == 200 and stream.content_type == "text/event-stream"
    speed_only = await live_app.get(
        "/api/v1/live", params={"signals": "Vehicle.Speed"}, headers=bearer(token)
    )
    outsider = await live_app.get("/api/v1/live", headers=bearer(other_token))
    for _ in range(100):
        if live_app.app[LIVE_HUB].subscriber_count() >= 3:
            break
        await asyncio.sleep(0.02)

    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 1, now_ms() - 2000, {SPEED: [40.0, 42.5], RPM: [1800.0]}),
        qos=1,
    )
    payload, ids = events(device, 2, count=1)
    publisher.publish(events_topic(fleet.tenant, device), payload, qos=1)
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 3, now_ms() - 1000, {RPM: [900.0]}),
        qos=1,
    )
    received = await read_events(stream, 3)
    kinds = sorted(e.event for e in received)
    assert kinds == ["event", "signals", "signals"]
    first = next(e for e in received if e.event == "signals" and e.data["seq"] == 1)
    assert first.data["vehicle_id"] == vehicle
    assert first.data["signals"]["Vehicle.Speed"]["value"] == 42.5
    assert first.data["signals"]["Vehicle.Speed"]["unit"] == "km/h"
    alert = next(e for e in received if e.event == "event")
    assert alert.data["id"] == str(ids[0]) and alert.data["type"] == "harsh_braking"
    # The speed-only client got the batch with speed and the event, not the rpm-only batch.
    filtered = await read_events(speed_only, 2)
    assert sorted(e.event for e in filtered) == ["event", "signals"]
    # Nothing of this tenant reached the other tenant's client.
    with pytest.raises(TimeoutError):
        await read_events(outsider, 1, timeout_s=0.5)

    # A reconnect with the first event's id gets the two that followed, in order.
    first_id = min(received, key=lambda e: int(e.id.split("-")[1])).id  # type: ignore[union-attr]
    resumed = await live_app.get(
        "/api/v1/live", headers={**bearer(token), "Last-Event-ID": first_id}
    )
    again = await read_events(resumed, 2)
    assert [e.id for e in again] == sorted(
        (e.id for e in received if e.id != first_id), key=lambda i: int(i.split("-")[1])
    )
    for response in (stream, speed_only, outsider, resumed):
        response.close()


async def test_the_stream_needs_credentials_and_the_permission(live_app, pool, fleet: Fleet):
    assert (await live_app.get("/api/v1/live")).status == 401
    driver = await member_token(pool, fleet.tenant, "driver")
    assert (await live_app.get("/api/v1/live", headers=bearer(driver))).status == 403
    viewer = await member_token(pool, fleet.tenant, "viewer")
    bad = await live_app.get("/api/v1/live", params={"signals": "Nope"}, headers=bearer(viewer))
    assert bad.status == 400 and "Nope" in (await bad.json())["detail"]
    bad = await live_app.get("/api/v1/live", params={"vehicles": "x"}, headers=bearer(viewer))
    assert bad.status == 400


async def test_a_client_that_stops_reading_is_dropped_and_server_memory_stays_flat(
    live_app, pool, fleet: Fleet
) -> None:
    token = await member_token(pool, fleet.tenant, "viewer")
    hub: LiveHub = live_app.app[LIVE_HUB]
    sock = socket.create_connection((live_app.host, live_app.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        f"GET /api/v1/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    reader = await live_app.get("/api/v1/live", headers=bearer(token))
    for _ in range(100):
        if hub.subscriber_count(fleet.tenant) == 2:
            break
        await asyncio.sleep(0.02)
    assert hub.subscriber_count(fleet.tenant) == 2
    blob = "x" * 65_536
    got = 0
    for n in range(400):  # 26 MB offered to a client that reads nothing
        hub.publish(fleet.tenant, "signals", {"n": n, "blob": blob}, str(uuid.uuid4()))
        got += len(await read_events(reader, 1))
        if hub.counters["dropped_slow_clients"]:
            break
    assert hub.counters["dropped_slow_clients"] == 1
    for _ in range(100):
        if hub.subscriber_count(fleet.tenant) == 1:
            break
        await asyncio.sleep(0.02)
    assert hub.subscriber_count(fleet.tenant) == 1  # the reader stays, the stalled one is gone
    assert got == n + 1
    sock.close()
    reader.close()
