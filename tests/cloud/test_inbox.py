"""The alerts inbox: device warnings land once, and every action is on the item's timeline and
in the audit log."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.auth.accounts import add_user
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Event, EventBatch

from .conftest import AckListener, Fleet, bearer, ingest_settings, member_token
from .helpers import events_topic, now_ms

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_warnings_land_once_and_are_acknowledged_assigned_commented_coached_resolved(
    aiohttp_client,
    migrated_db,
    mqtt_broker,
    pool: asyncpg.Pool,
    fleet: Fleet,
    publisher,
    ack_listener: AckListener,
) -> None:
    client = await aiohttp_client(create_app(ingest_settings(migrated_db, mqtt_broker.url)))
    manager = bearer(await member_token(pool, fleet.tenant, "fleet_manager"))
    device = fleet.devices[0]
    warning, info = uuid.uuid4(), uuid.uuid4()
    batch = EventBatch(
        device_id=device,
        seq=1,
        events=[
            Event(
                id=warning,
                time_ms=now_ms(),
                type="overheating",
                severity="critical",
                data={"coolant_c": 118.0},
            ),
            Event(id=info, time_ms=now_ms(), type="trip_start"),
        ],
    )
    topic = events_topic(fleet.tenant, device)
    publisher.publish(topic, encode(batch), qos=1)
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1])
    publisher.publish(topic, encode(batch), qos=1)  # redelivered: stored and listed once
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1, 1])

    listed = await (await client.get("/api/v1/inbox", headers=manager)).json()
    assert [(i["type"], i["severity"], i["state"]) for i in listed["items"]] == [
        ("overheating", "critical", "open")
    ]
    item = listed["items"][0]
    assert item["event_id"] == str(warning) and item["data"] == {"coolant_c": 118.0}
    url = f"/api/v1/inbox/{item['id']}/actions"

    async def act(body: dict[str, object], status: int = 200) -> dict[str, object]:
        response = await client.post(url, json=body, headers=manager)
        assert response.status == status, await response.text()
        return dict(await response.json())

    await act({"action": "acknowledge"})
    await act({"action": "acknowledge"}, 409)
    async with pool.acquire() as conn:
        technician = await add_user(
            conn, fleet.tenant, f"tech-{uuid.uuid4().hex[:6]}@x.example", "technician"
        )
        viewer = await add_user(
            conn, fleet.tenant, f"view-{uuid.uuid4().hex[:6]}@x.example", "viewer"
        )
    assigned = await act({"action": "assign", "assignee_id": str(technician)})
    assert assigned["assignee_id"] == str(technician)
    await act({"action": "assign", "assignee_id": str(uuid.uuid4())}, 422)
    refused = await act({"action": "assign", "assignee_id": str(viewer)}, 422)
    assert "cannot be assigned alerts" in str(refused)  # the portal offers only those who can
    await act({"action": "comment", "body": ""}, 422)
    await act({"action": "comment", "body": "Coolant hose replaced."})
    coached = await act({"action": "coach", "body": "Watch the temperature gauge."})
    assert coached["coached"] is True
    done = await act({"action": "resolve"})
    assert done["state"] == "resolved"
    assert [n["action"] for n in done["notes"]] == [  # type: ignore[union-attr]
        "acknowledge",
        "assign",
        "comment",
        "coach",
        "resolve",
    ]
    open_items = await (
        await client.get("/api/v1/inbox", params={"state": "open"}, headers=manager)
    ).json()
    assert open_items["items"] == []
    audit = await pool.fetch(
        "SELECT action FROM audit_log WHERE tenant_id = $1 AND resource = 'inbox_item' ORDER BY id",
        fleet.tenant,
    )
    assert [a["action"] for a in audit] == ["acknowledge", "assign", "comment", "coach", "resolve"]

    viewer = bearer(await member_token(pool, fleet.tenant, "viewer"))
    assert (await client.get(f"/api/v1/inbox/{item['id']}", headers=viewer)).status == 200
    refused = await client.post(url, json={"action": "reopen"}, headers=viewer)
    assert refused.status == 403
