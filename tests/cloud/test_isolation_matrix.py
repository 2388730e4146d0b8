"""Tenant isolation and the permission table, route by route.

Every operation of the API is called by members of tenant A: with tenant B's ids it answers
404 and shows nothing of B; lists, search and facets show nothing of B; and each role gets 403
exactly where the permission table says so. The operations are read from the app itself, so a
new route is in the matrix the day it is added.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from fleetlink.cloud.app import RESOURCES, create_app
from fleetlink.cloud.auth.accounts import add_user
from fleetlink.cloud.auth.api_tokens import create_token
from fleetlink.cloud.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from fleetlink.cloud.registry import assign_device, create_device, create_tenant

from .conftest import bearer, ingest_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Tenant:
    id: str
    marker: str  # a word in every name of this tenant's records
    ids: dict[str, str]
    owner_token: str


async def _tenant(pool: asyncpg.Pool, client: Any) -> Tenant:
    """A tenant with one of everything, made through the API by its owner."""
    tenant = await create_tenant(pool, f"iso-{uuid.uuid4().hex[:8]}")
    marker = f"mk{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        owner = await add_user(conn, tenant, f"owner@{tenant}.example", Role.OWNER)
        token_id, token = await create_token(conn, tenant, owner)
        device = await create_device(conn, tenant, f"{tenant}-dev")
    headers = bearer(token)

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=headers)
        assert response.status == 201, await response.text()
        return dict(await response.json())

    fleet = await post("/api/v1/fleets", {"name": f"fleet {marker}"})
    vehicle = await post(
        "/api/v1/vehicles",
        {
            "name": f"van {marker}",
            "plate": f"{marker[:8]}",
            "fleet_id": fleet["id"],
            "vin": "ZFA346P374T225127",
        },
    )
    driver = await post(
        "/api/v1/drivers",
        {"name": f"driver {marker}", "employee_number": marker, "licence_number": "L-1"},
    )
    search = await post("/api/v1/searches", {"name": f"search {marker}", "query": {"q": marker}})
    member = await post("/api/v1/users", {"email": f"{marker}@{tenant}.example", "role": "viewer"})
    webhook = await post(
        "/api/v1/webhooks",
        {"url": "http://127.0.0.1:9/x", "event_types": ["webhook.test"], "description": marker},
    )
    delivery = await post(f"/api/v1/webhooks/{webhook['id']}/test", {})
    rule = await post(
        "/api/v1/email-rules",
        {"recipients": [f"{marker}@x.example"], "event_types": ["geofence.enter"]},
    )
    fence = await post("/api/v1/geofences", _fence(f"fence {marker}"))
    plan = await post("/api/v1/maintenance/plans", {"name": f"plan {marker}", "interval_days": 30})
    work = {"vehicle_id": vehicle["id"], "performed_at": "2026-01-01T00:00:00+00:00"}
    record = await post("/api/v1/maintenance/work-records", {**work, "description": marker})
    fuel = await post(
        "/api/v1/costs/fuel-records",
        {"vehicle_id": vehicle["id"], "filled_at": work["performed_at"], "litres": 1, "cost": 1},
    )
    price = {"fuel_price_per_l": 1.5, "currency": "EUR"}
    assert (await client.put("/api/v1/costs/settings", json=price, headers=headers)).status == 200
    challenge = await post(
        "/api/v1/challenges",
        {
            "name": f"challenge {marker}",
            "metric": "distance_km",
            "at_least": 1,
            "starts_on": "2026-01-01",
            "ends_on": "2026-01-31",
        },
    )
    schedule = await post(
        "/api/v1/report-schedules",
        {"report": "trips", "every": "daily", "recipients": [f"{marker}@{tenant}.example"]},
    )
    report = await post(
        "/api/v1/diagnostic-reports",
        {
            "vin": "ZFA346P374T225127",
            "report": {
                "format": "fleetlink-diagnostic-report/1",
                "created_at": "2026-11-28T10:00:00+00:00",
                "mil_on": True,
                "codes": [{"code": "P0301", "status": "stored", "description": marker}],
            },
        },
    )
    trip_id = uuid.uuid4()
    async with pool.acquire() as conn:
        await assign_device(conn, device, uuid.UUID(vehicle["id"]))
        # Trips are computed from samples, never posted: one stands in for them.
        await conn.execute(
            """INSERT INTO trips (id, tenant_id, vehicle_id, day, started_at, ended_at,
                   duration_s, distance_km, idle_s, max_speed_kmh, engine_hours)
               VALUES ($1, $2, $3, current_date, now(), now(), 0, 1, 0, 50, 0)""",
            trip_id,
            tenant,
            uuid.UUID(vehicle["id"]),
        )
        # An in-cab alert's escalation, as a device sends it (listed per vehicle).
        await conn.execute(
            """INSERT INTO events (id, tenant_id, device_id, vehicle_id, ts, type, severity, data)
               VALUES ($1, $2, $3, $4, now(), 'coaching', 'warning', $5::jsonb)""",
            uuid.uuid4(),
            tenant,
            device,
            uuid.UUID(vehicle["id"]),
            f'{{"rule": "harsh_brake", "message": "{marker}"}}',
        )
        item = await conn.fetchval(
            "INSERT INTO inbox_items (tenant_id, source, type, severity, ts, data) "
            "VALUES ($1, 'rule', 'test', 'info', now(), $2::jsonb) RETURNING id",
            tenant,
            f'{{"marker": "{marker}"}}',
        )
    ids = {
        "plan_id": plan["id"],
        "record_id": record["id"],
        "fuel_record_id": fuel["id"],
        "vehicle_id": vehicle["id"],
        "driver_id": driver["id"],
        "fleet_id": fleet["id"],
        "device_id": device,
        "search_id": search["id"],
        "user_id": member["user_id"],
        "token_id": str(token_id),
        "report_id": report["id"],
        "signal": "Vehicle.Speed",
        "webhook_id": webhook["id"],
        "delivery_id": delivery["id"],
        "rule_id": rule["id"],
        "geofence_id": fence["id"],
        "item_id": str(item),
        "trip_id": str(trip_id),
        "challenge_id": challenge["id"],
        "schedule_id": schedule["id"],
    }
    return Tenant(tenant, marker, ids, token)


def _fence(name: str) -> dict[str, Any]:
    ring = [[4.89, 52.37], [4.9, 52.37], [4.9, 52.38], [4.89, 52.37]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"name": name},
    }


# A valid body for every operation that takes one, so that validation passes and the lookup
# of the (other tenant's) id decides the answer.
def _body(method: str, path: str, other: Tenant) -> dict[str, Any] | None:
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("patch", "/api/v1/vehicles/{vehicle_id}"): {"odometer_km": 10},
        ("patch", "/api/v1/drivers/{driver_id}"): {"tags": ["x"]},
        ("post", "/api/v1/drivers/{driver_id}/assignment"): {"vehicle_id": None},
        ("patch", "/api/v1/fleets/{fleet_id}"): {"name": "renamed"},
        ("patch", "/api/v1/devices/{device_id}"): {"name": "renamed"},
        ("post", "/api/v1/devices/{device_id}/assignment"): {"vehicle_id": other.ids["vehicle_id"]},
        ("patch", "/api/v1/users/{user_id}"): {"role": "viewer"},
        ("patch", "/api/v1/webhooks/{webhook_id}"): {"description": "x"},
        ("put", "/api/v1/geofences/{geofence_id}"): _fence("renamed"),
        ("post", "/api/v1/inbox/{item_id}/actions"): {"action": "comment", "body": "x"},
        ("patch", "/api/v1/maintenance/plans/{plan_id}"): {"name": "renamed"},
        ("patch", "/api/v1/maintenance/work-records/{record_id}"): {"description": "x"},
        ("post", "/api/v1/devices/{device_id}/swap"): {"replacement": other.ids["device_id"]},
        ("post", "/api/v1/devices/{device_id}/commands"): {
            "kind": "profile",
            "version": "1.0.0",
            "content_b64": "",
        },
    }
    return bodies.get((method, path))


def _operations() -> list[Any]:
    return [op for resource in RESOURCES for op in resource.operations if not op.public]


@pytest.fixture
async def two_tenants(aiohttp_client, migrated_db, mqtt_broker, pool):  # type: ignore[no-untyped-def]
    client = await aiohttp_client(
        create_app(ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0))
    )
    return client, await _tenant(pool, client), await _tenant(pool, client)


async def test_every_route_called_with_another_tenants_ids_answers_404_and_shows_nothing(
    two_tenants,
) -> None:
    client, a, b = two_tenants
    checked = 0
    for op in _operations():
        if not op.path_params:
            continue
        path = op.path.format(**b.ids)
        headers = {**bearer(a.owner_token), "If-Match": "*"}
        body = _body(op.method, op.path, b)
        response = await client.request(op.method.upper(), path, json=body, headers=headers)
        text = await response.text()
        assert response.status == 404, f"{op.method} {op.path}: {response.status} {text}"
        for sent in b.ids.values():  # echoing the caller's own request is no leak
            text = text.replace(sent, "")
        assert b.marker not in text and b.id not in text, f"{op.method} {op.path}: {text}"
        checked += 1
    assert checked >= 15


async def test_lists_searches_and_facets_show_only_the_callers_tenant(two_tenants) -> None:
    client, a, b = two_tenants
    for op in _operations():
        # A live stream never ends; tests/cloud/test_live.py checks its tenant scope.
        if op.path_params or op.method != "get" or op.response_media_type != "application/json":
            continue
        for query in ({}, {"q": b.marker}, {"all": "true"}):
            response = await client.get(op.path, params=query, headers=bearer(a.owner_token))
            if response.content_type == "text/csv":
                text = await response.text()
            else:
                body = await response.json()
                body.pop("instance", None)  # a problem echoes the caller's own query
                text = str(body)
            assert response.status in (200, 400), f"{op.path} {query}: {response.status} {text}"
            assert b.marker not in text and b.id not in text, f"{op.path} {query} leaks B"
    listed = await (await client.get("/api/v1/vehicles", headers=bearer(a.owner_token))).json()
    assert [v["name"] for v in listed["items"]] == [f"van {a.marker}"]


async def test_each_role_gets_403_exactly_where_the_permission_table_says(
    two_tenants, pool
) -> None:
    client, a, _ = two_tenants
    # Reads use A's real ids; writes use ids that do not exist and an empty body, so that an
    # allowed call ends in 404 or 422 and changes nothing, and a refused one in 403.
    missing = {**a.ids, **{k: str(uuid.uuid4()) for k in a.ids if k.endswith("_id")}}
    missing["device_id"] = "no-such-device"
    for role in Role:
        async with pool.acquire() as conn:
            user = await add_user(
                conn, a.id, f"{role.value}-{uuid.uuid4().hex[:6]}@x.example", role
            )
            _, token = await create_token(conn, a.id, user)
        allowed = ROLE_PERMISSIONS[role]
        for op in _operations():
            if op.method == "get":
                response = await client.get(op.path.format(**a.ids), headers=bearer(token))
            else:
                response = await client.request(
                    op.method.upper(),
                    op.path.format(**missing),
                    json={},
                    headers={**bearer(token), "If-Match": "*"},
                )
            where = f"{role.value} {op.method} {op.path}: {response.status}"
            if op.permission in allowed:
                assert response.status != 403, f"{where} {await response.text()}"
            else:
                assert response.status == 403, where
        refused = await client.post(
            "/api/v1/fleets", json={"name": f"by {role.value}"}, headers=bearer(token)
        )
        assert (refused.status == 201) == (Permission.FLEETS_WRITE in allowed), role


async def test_requests_without_or_with_bad_credentials_get_401_problems(two_tenants) -> None:
    client, _, _ = two_tenants
    for headers in ({}, {"Authorization": "Bearer flt_0_bad"}, {"Authorization": "Basic eDp5"}):
        response = await client.get("/api/v1/vehicles", headers=headers)
        assert response.status == 401
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert "WWW-Authenticate" in response.headers


async def test_the_api_can_log_in_as_a_role_of_its_own(
    aiohttp_client, migrated_db, mqtt_broker, pool
):  # type: ignore[no-untyped-def]
    login = f"fl_api_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE ROLE {login} LOGIN IN ROLE fleetlink_api")
    try:
        base, _, database = migrated_db.rpartition("/")
        own_url = base.replace("postgres@", f"{login}@") + "/" + database
        settings = ingest_settings(
            migrated_db, mqtt_broker.url, ingest_workers=0, api_database_url=own_url
        )
        client = await aiohttp_client(create_app(settings))
        tenant = await _tenant(pool, client)
        listed = await client.get("/api/v1/vehicles", headers=bearer(tenant.owner_token))
        assert listed.status == 200
        assert [v["name"] for v in (await listed.json())["items"]] == [f"van {tenant.marker}"]
        await client.close()
    finally:
        await pool.execute(
            f"REASSIGN OWNED BY {login} TO CURRENT_USER; DROP OWNED BY {login}; DROP ROLE {login}"
        )


async def test_pages_follow_their_cursor_and_a_forged_cursor_is_a_400(two_tenants, pool) -> None:
    import base64
    import json

    client, a, _ = two_tenants
    async with pool.acquire() as conn:
        for n in range(5):
            await create_device(conn, a.id, f"{a.id}-page-{n}")
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (
            await client.get("/api/v1/devices", params=params, headers=bearer(a.owner_token))
        ).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 6
    for forged in (["id", "x\u0000", "y"], ["id", "a", 5], ["name", "a", "b"], "junk"):
        raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        response = await client.get(
            "/api/v1/devices", params={"cursor": raw}, headers=bearer(a.owner_token)
        )
        assert response.status == 400, forged
    for path in ("/api/v1/vehicles", "/api/v1/drivers", "/api/v1/audit"):
        forged = base64.urlsafe_b64encode(json.dumps(["-id", "1", "x\ud800"]).encode()).decode()
        response = await client.get(path, params={"cursor": forged}, headers=bearer(a.owner_token))
        assert response.status == 400, path


async def test_retiring_a_vehicle_cancels_a_device_installation_planned_for_later(
    two_tenants,
) -> None:
    client, a, _ = two_tenants
    headers = bearer(a.owner_token)
    vehicle = await (
        await client.post("/api/v1/vehicles", json={"name": "spare"}, headers=headers)
    ).json()
    planned = await client.post(
        f"/api/v1/devices/{a.ids['device_id']}/assignment",
        json={"vehicle_id": vehicle["id"], "at": "2099-01-01T00:00:00Z"},
        headers=headers,
    )
    assert planned.status == 201, await planned.text()
    retired = await client.delete(f"/api/v1/vehicles/{vehicle['id']}", headers=headers)
    assert retired.status == 200 and (await retired.json())["status"] == "retired"


async def test_a_vehicles_event_list_shows_its_own_events_only(two_tenants) -> None:
    client, a, b = two_tenants
    response = await client.get(
        f"/api/v1/vehicles/{a.ids['vehicle_id']}/events", headers=bearer(a.owner_token)
    )
    assert response.status == 200
    items = (await response.json())["items"]
    assert [(i["type"], i["data"]["message"]) for i in items] == [("coaching", a.marker)]
    other = await client.get(
        f"/api/v1/vehicles/{b.ids['vehicle_id']}/events", headers=bearer(a.owner_token)
    )
    assert other.status == 404
