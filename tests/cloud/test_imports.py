"""CSV import of vehicles and drivers: a dry run reports, a real run applies whole or not at all."""

from __future__ import annotations

import uuid

import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.registry import create_tenant

from .conftest import bearer, ingest_settings, member_token

pytestmark = pytest.mark.asyncio(loop_scope="session")

VEHICLES = """vin;plate;make;model;year;fuel_type;tags;custom.cost_centre
1HGCM82633A004352;B-AB 123;;Accord;;petrol;vans|north;CC-7
;M-XY 9;Ford;Transit;2019;diesel;;
;HH-Q 1;Ford;Transit;twenty;diesel;;
"""


@pytest.fixture
async def admin(aiohttp_client, migrated_db, mqtt_broker, pool):  # type: ignore[no-untyped-def]
    tenant = await create_tenant(pool, f"imp-{uuid.uuid4().hex[:8]}")
    token = await member_token(pool, tenant, "admin")
    client = await aiohttp_client(
        create_app(ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0))
    )
    return client, {**bearer(token), "Content-Type": "text/csv"}


async def test_a_dry_run_reports_each_row_and_changes_nothing(admin) -> None:
    client, headers = admin
    response = await client.post("/api/v1/vehicles/import", data=VEHICLES, headers=headers)
    assert response.status == 200, await response.text()
    report = await response.json()
    assert (report["dry_run"], report["applied"]) == (True, False)
    assert [r["action"] for r in report["rows"]] == ["create", "create", "refused"]
    assert report["rows"][0]["changes"]["make"]["after"] == "Honda"  # decoded from the VIN
    assert report["rows"][0]["changes"]["custom"]["after"] == {"cost_centre": "CC-7"}
    assert report["rows"][2]["row"] == 4 and report["rows"][2]["errors"][0]["field"] == "year"
    listed = await client.get("/api/v1/vehicles", headers=headers)
    assert (await listed.json())["items"] == []


async def test_a_file_with_a_refused_row_applies_nothing_and_a_clean_one_applies_all(admin) -> None:
    client, headers = admin
    refused = await client.post(
        "/api/v1/vehicles/import", params={"dry_run": "false"}, data=VEHICLES, headers=headers
    )
    assert (await refused.json())["applied"] is False
    clean = "\n".join(VEHICLES.splitlines()[:3]) + "\n"
    applied = await client.post(
        "/api/v1/vehicles/import", params={"dry_run": "false"}, data=clean, headers=headers
    )
    assert (await applied.json())["applied"] is True
    again = await client.post("/api/v1/vehicles/import", data=clean, headers=headers)
    assert [r["action"] for r in (await again.json())["rows"]] == ["unchanged", "unchanged"]
    changed = clean.replace("2019", "2020")
    report = await (
        await client.post("/api/v1/vehicles/import", data=changed, headers=headers)
    ).json()
    assert report["rows"][1]["action"] == "update"
    assert report["rows"][1]["changes"] == {"year": {"before": 2019, "after": 2020}}
    names = sorted(
        v["name"]
        for v in (await (await client.get("/api/v1/vehicles", headers=headers)).json())["items"]
    )
    assert names == ["B-AB 123", "M-XY 9"]


async def test_drivers_import_encrypts_personal_fields_and_never_reports_their_values(
    admin,
) -> None:
    client, headers = admin
    drivers = "employee_number,name,phone,licence_number\nE1,Ann Lee,+49 30 123,L-77\nE1,Dup,,\n"
    report = await (
        await client.post(
            "/api/v1/drivers/import", params={"dry_run": "false"}, data=drivers, headers=headers
        )
    ).json()
    assert [r["action"] for r in report["rows"]] == ["create", "refused"]
    assert report["applied"] is False  # one refused row: nothing applied
    drivers = drivers.splitlines()[0] + "\n" + drivers.splitlines()[1] + "\n"
    report = await (
        await client.post(
            "/api/v1/drivers/import", params={"dry_run": "false"}, data=drivers, headers=headers
        )
    ).json()
    assert report["applied"] is True and "123" not in str(report)
    listed = await (await client.get("/api/v1/drivers", headers=headers)).json()
    assert listed["items"][0]["phone"] == "+49 30 123"


async def test_unknown_columns_and_non_utf8_files_are_refused_whole(admin) -> None:
    client, headers = admin
    response = await client.post(
        "/api/v1/vehicles/import", data="vin,colour\nX,red\n", headers=headers
    )
    assert response.status == 422 and "colour" in (await response.json())["detail"]
    response = await client.post(
        "/api/v1/vehicles/import", data="plate\n\xff\n".encode("latin-1"), headers=headers
    )
    assert response.status == 422 and "UTF-8" in (await response.json())["detail"]


async def test_two_rows_that_match_one_vehicle_are_refused_after_the_first(admin) -> None:
    client, headers = admin
    first = "plate,vin\nB-AB 1,1HGCM82633A004352\n"
    await client.post(
        "/api/v1/vehicles/import", params={"dry_run": "false"}, data=first, headers=headers
    )
    twice = "vin,plate,odometer_km\n1HGCM82633A004352,,100\n,B-AB 1,200\n"
    report = await (
        await client.post("/api/v1/vehicles/import", data=twice, headers=headers)
    ).json()
    assert [r["action"] for r in report["rows"]] == ["update", "refused"]
    assert "same vehicle" in report["rows"][1]["errors"][0]["message"]
