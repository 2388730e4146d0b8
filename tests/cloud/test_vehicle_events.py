"""``GET /api/v1/vehicles/{id}/events`` on the real database: filters by type, severity and
time, pages newest first, and is read by every role that may read vehicles."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fleetlink.cloud.app import create_app

from .conftest import Fleet, bearer, ingest_settings, make_fleet, member_token

pytestmark = pytest.mark.asyncio(loop_scope="session")
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
async def fleet2(pool: asyncpg.Pool) -> Fleet:
    return await make_fleet(pool, devices=2)


@pytest.fixture
async def app(aiohttp_client, migrated_db, mqtt_broker):  # type: ignore[no-untyped-def]
    return await aiohttp_client(
        create_app(ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0))
    )


async def _insert(pool: asyncpg.Pool, fleet: Fleet, n: int, rows: list[tuple]) -> list[str]:
    device = fleet.devices[n]
    ids = []
    async with pool.acquire() as conn:
        for minutes, type_, severity, data in rows:
            event_id = uuid.uuid4()
            ids.append(str(event_id))
            await conn.execute(
                """INSERT INTO events (id, tenant_id, device_id, vehicle_id, ts, type,
                                       severity, data)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)""",
                event_id,
                fleet.tenant,
                device,
                fleet.vehicles[device],
                T0 + timedelta(minutes=minutes),
                type_,
                severity,
                json.dumps(data),
            )
    return ids


async def test_events_filter_by_type_severity_and_time_and_page_newest_first(
    app, fleet2, pool
) -> None:
    nudge, escalation, anomaly, ack = await _insert(
        pool,
        fleet2,
        0,
        [
            (0, "alert", "info", {"rule": "harsh_brake"}),
            (1, "coaching", "warning", {"rule": "harsh_brake", "repeats": 3}),
            (2, "anomaly", "warning", {"score": 0.97}),
            (3, "alert_ack", "info", {"via": "display"}),
        ],
    )
    await _insert(pool, fleet2, 1, [(0, "alert", "info", {"rule": "speeding"})])
    vehicle = fleet2.vehicles[fleet2.devices[0]]
    url = f"/api/v1/vehicles/{vehicle}/events"
    headers = bearer(await member_token(pool, fleet2.tenant, "viewer", scopes=("read",)))

    async def ids(**params: str) -> list[str]:
        response = await app.get(url, params=params, headers=headers)
        assert response.status == 200, await response.text()
        return [i["id"] for i in (await response.json())["items"]]

    assert await ids() == [ack, anomaly, escalation, nudge]
    assert await ids(type="alert,coaching") == [escalation, nudge]
    assert await ids(severity="warning") == [anomaly, escalation]
    since, until = (T0 + timedelta(minutes=1)).isoformat(), (T0 + timedelta(minutes=3)).isoformat()
    assert await ids(since=since, until=until) == [anomaly, escalation]

    first = await (await app.get(url, params={"limit": "3"}, headers=headers)).json()
    assert [i["id"] for i in first["items"]] == [ack, anomaly, escalation]
    assert first["items"][2]["data"] == {"rule": "harsh_brake", "repeats": 3}
    assert await ids(limit="3", cursor=first["next_cursor"]) == [nudge]

    bad = await app.get(url, params={"since": until, "until": since}, headers=headers)
    assert bad.status == 400 and bad.content_type == "application/problem+json"
    missing = await app.get(f"/api/v1/vehicles/{uuid.uuid4()}/events", headers=headers)
    assert missing.status == 404
    anonymous = await app.get(url)
    assert anonymous.status == 401


async def test_the_route_is_in_the_openapi_document(app) -> None:
    spec = await (await app.get("/api/v1/openapi.json")).json()
    operation = spec["paths"]["/api/v1/vehicles/{vehicle_id}/events"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"vehicle_id", "type", "severity", "since", "until", "limit", "cursor"} <= names
