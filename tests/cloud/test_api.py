import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import asyncpg
import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.ingest.partitions import DailyPartitions
from fleetlink.cloud.ingest.store import SAMPLE_COLUMNS
from fleetlink.cloud.trips.dirty import mark_dirty

from .conftest import Fleet, bearer, ingest_settings, make_fleet, member_token
from .helpers import RPM, SPEED

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def api_fleet(pool: asyncpg.Pool) -> Fleet:
    """A tenant with one vehicle and known samples: speed 0..9 at T0 + 0..9 minutes."""
    fleet = await make_fleet(pool)
    device = fleet.devices[0]
    vehicle = fleet.vehicles[device]
    rows = [
        (fleet.tenant, vehicle, device, SPEED, T0 + timedelta(minutes=m), float(m))
        for m in range(10)
    ]
    async with pool.acquire() as conn:
        await DailyPartitions().ensure(conn, {T0.date()})
        await conn.copy_records_to_table("samples", records=rows, columns=SAMPLE_COLUMNS)
        # Written beside the ingest: mark the day, as the ingest does, so series read it raw
        # until its rollup is built.
        await mark_dirty(conn, [(fleet.tenant, vehicle, T0.date())])
        await conn.execute(
            "INSERT INTO latest_signals VALUES ($1, $2, $3, $4, $5), ($1, $2, $6, $4, $7)",
            fleet.tenant,
            vehicle,
            SPEED,
            T0 + timedelta(minutes=9),
            9.0,
            RPM,
            1500.0,
        )
    return fleet


@pytest.fixture
async def client(aiohttp_client, migrated_db, mqtt_broker, api_fleet: Fleet, pool):
    settings = ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0)
    token = await member_token(pool, api_fleet.tenant, "viewer", scopes=("read",))
    return await aiohttp_client(create_app(settings), headers=bearer(token))


def vehicle_url(fleet: Fleet) -> str:
    return f"/api/v1/vehicles/{fleet.vehicles[fleet.devices[0]]}"


async def test_vehicle_list_shows_only_the_tenants_vehicles_with_their_device(
    client, api_fleet: Fleet, pool
):
    await make_fleet(pool)
    response = await client.get("/api/v1/vehicles")
    assert response.status == 200
    items = (await response.json())["items"]
    device = api_fleet.devices[0]
    assert [(i["id"], i["device_id"]) for i in items] == [(str(api_fleet.vehicles[device]), device)]


async def test_vehicle_detail(client, api_fleet: Fleet):
    response = await client.get(vehicle_url(api_fleet))
    assert response.status == 200
    body = await response.json()
    assert body["name"] == "truck 0" and body["device_id"] == api_fleet.devices[0]


async def test_latest_signals_carry_name_and_unit_from_the_catalog(client, api_fleet: Fleet):
    response = await client.get(vehicle_url(api_fleet) + "/signals/latest")
    assert response.status == 200
    signals = (await response.json())["signals"]
    assert [(s["name"], s["unit"], s["value"]) for s in signals] == [
        ("Vehicle.Powertrain.CombustionEngine.Speed", "rpm", 1500.0),
        ("Vehicle.Speed", "km/h", 9.0),
    ]


@pytest.mark.parametrize("signal", ["Vehicle.Speed", str(SPEED)])
async def test_series_aggregates_per_bucket(client, api_fleet: Fleet, signal: str):
    response = await client.get(
        vehicle_url(api_fleet) + f"/signals/{signal}/series",
        params={
            "from": T0.isoformat(),
            "to": (T0 + timedelta(minutes=10)).isoformat(),
            "bucket": "5m",
        },
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["bucket_s"] == 300 and body["unit"] == "km/h"
    points = [(p["avg"], p["min"], p["max"], p["count"]) for p in body["buckets"]]
    assert points == [(2.0, 0.0, 4.0, 5), (7.0, 5.0, 9.0, 5)]
    assert body["buckets"][1]["bucket_start"].startswith("2026-03-01T12:05:00")


async def test_series_range_end_is_exclusive(client, api_fleet: Fleet):
    response = await client.get(
        vehicle_url(api_fleet) + "/signals/Vehicle.Speed/series",
        params={
            "from": T0.isoformat(),
            "to": (T0 + timedelta(minutes=3)).isoformat(),
            "bucket": "1h",
        },
    )
    body = await response.json()
    assert [(p["count"], p["max"]) for p in body["buckets"]] == [(3, 2.0)]


async def assert_problem(response, status: int) -> dict:
    assert response.status == status
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= body.keys()
    return body


async def test_unknown_vehicle_is_a_404_problem(client):
    body = await assert_problem(await client.get(f"/api/v1/vehicles/{uuid.uuid4()}"), 404)
    assert body["instance"].startswith("/api/v1/vehicles/")


async def test_vehicle_of_another_tenant_is_a_404(client, pool):
    other = await make_fleet(pool)
    await assert_problem(await client.get(vehicle_url(other)), 404)


async def test_an_id_that_is_not_a_uuid_names_no_resource(client):
    body = await assert_problem(await client.get("/api/v1/vehicles/not-a-uuid"), 404)
    assert "/api/v1/vehicles/not-a-uuid" in body["detail"]
    await assert_problem(await client.patch("/api/v1/vehicles/facets"), 405)


async def test_nul_characters_and_lone_surrogates_are_refused_not_stored(client):
    await assert_problem(await client.get("/api/v1/vehicles", params={"q": "a\x00b"}), 400)


async def test_unknown_route_and_signal_are_404_problems(client, api_fleet: Fleet):
    await assert_problem(await client.get("/api/v1/nothing"), 404)
    for signal in ("Vehicle.Nope", "9999", "³", "٣"):  # a superscript and an Arabic-Indic digit
        await assert_problem(
            await client.get(vehicle_url(api_fleet) + f"/signals/{signal}/series"), 404
        )


async def test_wrong_method_is_a_405_problem(client):
    response = await client.put("/api/v1/vehicles")
    await assert_problem(response, 405)
    assert response.headers["Allow"] == "GET,POST"


@pytest.mark.parametrize(
    "params",
    [
        {"from": "yesterday"},
        {"bucket": "5 parsecs"},
        {"bucket": "0s"},
        {"colour": "red"},
        {"from": "2026-03-01T12:00:00"},
    ],
)
async def test_bad_query_parameters_are_400_problems_naming_the_parameter(
    client, api_fleet: Fleet, params
):
    response = await client.get(vehicle_url(api_fleet) + "/signals/13/series", params=params)
    body = await assert_problem(response, 400)
    assert body["errors"][0]["parameter"] in {"from", "bucket", "colour"}


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "2026-03-01T12:00:00Z", "to": "2026-03-01T12:00:00Z"},
    ],
)
async def test_unacceptable_ranges_are_422_problems(client, api_fleet: Fleet, params):
    response = await client.get(vehicle_url(api_fleet) + "/signals/13/series", params=params)
    await assert_problem(response, 422)


async def test_series_over_years_is_fine_but_too_many_filled_buckets_are_a_422(
    client, api_fleet: Fleet, monkeypatch
):
    url = vehicle_url(api_fleet) + "/signals/Vehicle.Speed/series"
    years = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "bucket": "60s"}
    body = await (await client.get(url, params=years)).json()
    assert sum(b["count"] for b in body["buckets"]) == 10
    monkeypatch.setattr("fleetlink.cloud.api.signals.MAX_SERIES_POINTS", 9)
    problem = await assert_problem(await client.get(url, params=years), 422)
    assert "more than 9 buckets" in problem["detail"]


async def test_healthz_and_readyz_answer_with_the_installed_version(client):
    healthz = await client.get("/healthz")
    assert healthz.status == 200
    assert (await healthz.json())["version"] == version("fleetlink")
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["checks"] == {"database": "ok", "ingest": "disabled"}
    assert body["version"] == version("fleetlink")


async def test_openapi_document_is_3_1_and_lists_every_route(client):
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in client.app.router.routes()
        # The portal's HTML pages (and "/", which leads to them) are not API operations.
        if r.method != "HEAD"
        and r.resource.canonical != "/"
        and not r.resource.canonical.startswith("/portal")
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == routes
    schemas = doc["components"]["schemas"]
    assert {"Vehicle", "VehicleList", "Series", "SeriesBucket", "Problem"} <= schemas.keys()

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    series = doc["paths"]["/api/v1/vehicles/{vehicle_id}/signals/{signal}/series"]["get"]
    assert {p["name"] for p in series["parameters"]} == {
        "vehicle_id",
        "signal",
        "from",
        "to",
        "bucket",
    }
    assert "application/problem+json" in series["responses"]["422"]["content"]


async def test_unexpected_error_is_a_500_problem_without_internals(aiohttp_client):
    from aiohttp import web

    from fleetlink.cloud.api.problems import problem_middleware

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail")

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    body = await assert_problem(await client.get("/broken"), 500)
    assert "secret" not in body["detail"]


@pytest.mark.parametrize(
    "query",
    [
        "to=0001-01-01T00:00:00Z",
        "from=0001-01-01T00:00:00Z",
        "to=9999-12-31T23:59:59.999999Z",
        "from=1969-12-31T00:00:00Z&to=1970-01-01T00:00:00Z",
        "to=2100-01-01T00:00:01%2B00:00",
        "bucket=999999999999999999999d",
    ],
)
async def test_extreme_date_times_answer_400_not_500(client, api_fleet: Fleet, query):
    response = await client.get(f"{vehicle_url(api_fleet)}/signals/Vehicle.Speed/series?{query}")
    assert response.status == 400, await response.text()
    assert response.content_type == "application/problem+json"


async def test_nan_infinite_and_far_future_values_never_reach_the_api(
    client, api_fleet: Fleet, pool
):
    device = api_fleet.devices[0]
    vehicle = api_fleet.vehicles[device]
    weird = [float("nan"), float("inf"), float("-inf")]
    rows = [
        (api_fleet.tenant, vehicle, device, SPEED, T0 + timedelta(seconds=s + 1), v)
        for s, v in enumerate(weird)
    ]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table("samples", records=rows, columns=SAMPLE_COLUMNS)
        await conn.execute(
            "UPDATE latest_signals SET value = 'NaN' WHERE vehicle_id = $1 AND signal_id = $2",
            vehicle,
            RPM,
        )
        await conn.execute(
            "UPDATE latest_signals SET ts = now() + interval '3 years' "
            "WHERE vehicle_id = $1 AND signal_id = $2",
            vehicle,
            SPEED,
        )
    series = await client.get(
        f"{vehicle_url(api_fleet)}/signals/Vehicle.Speed/series"
        f"?from={T0.isoformat().replace('+', '%2B')}&bucket=1h"
    )
    assert series.status == 200
    (bucket,) = (await series.json())["buckets"]
    assert bucket["count"] == 10 and bucket["max"] == 9.0
    latest = await client.get(f"{vehicle_url(api_fleet)}/signals/latest")
    assert (await latest.json())["signals"] == []


async def test_a_long_query_within_the_documented_limits_gets_a_problem_not_plain_text(client):
    # 500 + 200 four-byte characters percent-encode to some 8.4 KB: over aiohttp's default line
    response = await client.get(
        "/api/v1/vehicles", params={"cursor": "\U000f3513" * 500, "q": "\U000f3513" * 200}
    )
    assert response.status == 400
    assert response.content_type == "application/problem+json"
