"""A simulated fleet (a few vehicles over a few days, stored through the ingest's store) served
by the API: trips, totals, scorecards that trace every point to an event, leaderboards, badges,
challenges, CSV exports, scheduled reports mailed through a real SMTP server, and rollups."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from fleetlink.cloud.app import create_app
from fleetlink.cloud.reports.schedule import run_due_reports
from fleetlink.cloud.trips.recompute import recompute_marked
from fleetlink.simulator.week import WeekPlan, WeekResult, store_week
from tests.conftest import free_port

from .conftest import bearer, ingest_settings, member_token

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIRST_DAY = datetime.now(UTC).date() - timedelta(days=5)
PLAN = WeekPlan(vehicles=4, days=3, trips_per_day=1, trip_minutes=8, seed=3, first_day=FIRST_DAY)
RANGE = {"from": str(FIRST_DAY), "to": str(FIRST_DAY + timedelta(days=PLAN.days - 1))}
SMALL = WeekPlan(vehicles=1, days=1, trips_per_day=1, trip_minutes=4, first_day=FIRST_DAY)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def week(migrated_db: str) -> WeekResult:
    """One simulated fleet shared by the tests that only read it."""
    pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=2)
    try:
        return await store_week(pool, f"t-{uuid.uuid4().hex[:10]}", PLAN)
    finally:
        await pool.close()


def _settings(migrated_db: str, broker_url: str, **overrides: object):  # type: ignore[no-untyped-def]
    return ingest_settings(
        migrated_db,
        broker_url,
        ingest_workers=0,
        trips_recompute_every_s=0,
        reports_every_s=0,
        retention_every_s=0,
        api_rate_per_s=10_000,
        **overrides,
    )


@pytest.fixture
async def manager(aiohttp_client, migrated_db, mqtt_broker, pool, week: WeekResult):  # type: ignore[no-untyped-def]
    token = await member_token(pool, week.tenant, "fleet_manager")
    app = create_app(_settings(migrated_db, mqtt_broker.url))
    return await aiohttp_client(app, headers=bearer(token))


async def _json(response, status: int = 200):  # type: ignore[no-untyped-def]
    assert response.status == status, await response.text()
    return await response.json()


async def test_trips_follow_the_time_ranged_driver_assignments_and_sum_to_the_totals(
    manager, week: WeekResult
) -> None:
    trips = []
    cursor = None
    while True:
        params = {**RANGE, "limit": "7", **({"cursor": cursor} if cursor else {})}
        page = await _json(await manager.get("/api/v1/trips", params=params))
        trips += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(trips) == len({t["id"] for t in trips}) >= PLAN.vehicles * PLAN.days
    midweek = datetime.combine(FIRST_DAY + timedelta(days=PLAN.days // 2), datetime.min.time(), UTC)
    for trip in trips:
        n = week.vehicles.index(uuid.UUID(trip["vehicle_id"]))
        before = datetime.fromisoformat(trip["started_at"]) < midweek
        # Driver n drives vehicle n until midweek, then vehicle n + 1.
        expected = week.drivers[n] if before else week.drivers[(n - 1) % PLAN.vehicles]
        assert trip["driver_id"] == str(expected)
        assert trip["distance_km"] > 0 and trip["fuel_used_l"] > 0 and trip["engine_hours"] > 0
    vehicle = week.vehicles[0]
    totals = await _json(await manager.get(f"/api/v1/vehicles/{vehicle}/totals", params=RANGE))
    mine = [t for t in trips if t["vehicle_id"] == str(vehicle)]
    assert totals["trips"] == len(mine)
    assert totals["distance_km"] == pytest.approx(sum(t["distance_km"] for t in mine))
    assert totals["idle_s"] == pytest.approx(sum(t["idle_s"] for t in mine))
    driver = week.drivers[0]
    totals = await _json(await manager.get(f"/api/v1/drivers/{driver}/totals", params=RANGE))
    theirs = [t for t in trips if t["driver_id"] == str(driver)]
    assert totals["trips"] == len(theirs) and {t["vehicle_id"] for t in theirs} == {
        str(week.vehicles[0]),
        str(week.vehicles[1]),
    }
    detail = await _json(await manager.get(f"/api/v1/trips/{trips[0]['id']}"))
    assert detail["id"] == trips[0]["id"] and isinstance(detail["events"], list)


async def test_a_scorecard_traces_every_point_to_an_event(manager, week: WeekResult, pool) -> None:
    cards = [
        await _json(await manager.get(f"/api/v1/drivers/{d}/scorecard", params=RANGE))
        for d in week.drivers
    ]
    sources = set()
    for card in cards:
        assert card["events_listed_all"]
        assert card["points"] == pytest.approx(sum(e["points"] for e in card["events"]), abs=1e-3)
        for line in card["lines"]:
            listed = [e for e in card["events"] if e["type"] == line["type"]]
            assert line["events"] == len(listed)
        assert card["score"] == pytest.approx(
            max(0, 100 - card["points"] * 100 / card["distance_km"]), abs=0.01
        )
        assert card["band"] in {"low", "medium", "high"}
        for event in card["events"]:
            sources.add(event["source"])
            assert event["why"]
            if event["source"] == "device":
                stored = await pool.fetchval(
                    "SELECT type FROM events WHERE id = $1", uuid.UUID(event["event_id"])
                )
                assert stored == event["type"]
    assert sources == {"device", "derived"}
    board = await _json(
        await manager.get("/api/v1/leaderboards", params={"period": "month", "on": RANGE["from"]})
    )
    ranked = [e for e in board["entries"] if e["rank"] is not None]
    assert [e["score"] for e in ranked] == sorted((e["score"] for e in ranked), reverse=True)
    assert {e["driver_id"] for e in board["entries"]} <= {str(d) for d in week.drivers}


async def test_badges_and_challenges_are_rules_in_data(manager, week: WeekResult) -> None:
    badges = await _json(await manager.get(f"/api/v1/drivers/{week.drivers[0]}/badges"))
    assert {b["id"] for b in badges["badges"]} == {"smooth-1000", "week-no-speeding", "eco-idler"}
    body = {
        "name": "Safe distance week",
        "metric": "events:tailgating",
        "at_most": 0,
        "starts_on": RANGE["from"],
        "ends_on": RANGE["to"],
    }
    created = await _json(await manager.post("/api/v1/challenges", json=body), 201)
    detail = await _json(await manager.get(f"/api/v1/challenges/{created['id']}"))
    values = [s["value"] for s in detail["standings"]]
    assert values == sorted(values) and len(values) == PLAN.vehicles
    assert all(s["met"] == (s["value"] == 0) for s in detail["standings"])
    bad = {**body, "metric": "shoe_size"}
    await _json(await manager.post("/api/v1/challenges", json=bad), 422)
    await _json(await manager.delete(f"/api/v1/challenges/{created['id']}"))


async def test_new_rules_recompute_the_trips_they_change(
    aiohttp_client, migrated_db, mqtt_broker, pool
) -> None:
    fleet = await store_week(pool, f"t-{uuid.uuid4().hex[:10]}", SMALL)
    token = await member_token(pool, fleet.tenant, "fleet_manager")
    client = await aiohttp_client(
        create_app(_settings(migrated_db, mqtt_broker.url)), headers=bearer(token)
    )
    count = "SELECT count(*) FROM driving_events WHERE tenant_id = $1 AND type = 'speeding'"
    assert await pool.fetchval(count, fleet.tenant) > 0
    rules = (await _json(await client.get("/api/v1/scoring/rules")))["rules"]
    rules["detection"]["speed_limit_kmh"] = 250
    document = await _json(await client.put("/api/v1/scoring/rules", json=rules))
    assert document["days_marked"] == 1 and document["version"] == 2
    while await recompute_marked(pool):
        pass
    assert await pool.fetchval(count, fleet.tenant) == 0
    rules["risk_bands"] = [{"name": "all", "min_score": 50}]
    await _json(await client.put("/api/v1/scoring/rules", json=rules), 422)


async def test_csv_exports_of_trips_scores_and_events(manager, week: WeekResult, pool) -> None:
    await pool.execute("UPDATE drivers SET name = '=HYPERLINK(1)' WHERE id = $1", week.drivers[0])
    response = await manager.get("/api/v1/reports/trips.csv", params=RANGE)
    assert response.status == 200 and response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    count = await pool.fetchval("SELECT count(*) FROM trips WHERE tenant_id = $1", week.tenant)
    assert len(rows) == count
    assert {r["driver"] for r in rows if r["driver_id"] == str(week.drivers[0])} == {
        "'=HYPERLINK(1)"
    }
    scores = list(
        csv.DictReader(
            io.StringIO(
                await (await manager.get("/api/v1/reports/scores.csv", params=RANGE)).text()
            )
        )
    )
    assert {r["driver_id"] for r in scores} == {str(d) for d in week.drivers}
    events = list(
        csv.DictReader(
            io.StringIO(
                await (await manager.get("/api/v1/reports/events.csv", params=RANGE)).text()
            )
        )
    )
    stored = await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", week.tenant)
    assert len(events) == stored > 0


async def test_roles_decide_who_reads_scores_and_who_changes_rules(
    aiohttp_client, migrated_db, mqtt_broker, pool, week: WeekResult
) -> None:
    app = create_app(_settings(migrated_db, mqtt_broker.url))
    viewer = await aiohttp_client(
        app, headers=bearer(await member_token(pool, week.tenant, "viewer"))
    )
    card = await viewer.get(f"/api/v1/drivers/{week.drivers[0]}/scorecard", params=RANGE)
    assert card.status == 200
    rules = (await _json(await viewer.get("/api/v1/scoring/rules")))["rules"]
    assert (await viewer.put("/api/v1/scoring/rules", json=rules)).status == 403
    assert (await viewer.get("/api/v1/report-schedules")).status == 403
    elsewhere = await store_week(pool, f"t-{uuid.uuid4().hex[:10]}", SMALL)
    other = await member_token(pool, elsewhere.tenant, "owner")
    outsider = await aiohttp_client(
        create_app(_settings(migrated_db, mqtt_broker.url)), headers=bearer(other)
    )
    response = await outsider.get(f"/api/v1/drivers/{week.drivers[0]}/scorecard")
    assert response.status == 404
    listed = await _json(await outsider.get("/api/v1/trips", params=RANGE))
    assert not {t["vehicle_id"] for t in listed["items"]} & {str(v) for v in week.vehicles}


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


async def test_a_scheduled_report_is_mailed_through_a_real_smtp_server(
    manager, week: WeekResult, pool, migrated_db, mqtt_broker
) -> None:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        body = {"report": "trips", "every": "daily", "recipients": ["boss@example.com"]}
        schedule = await _json(await manager.post("/api/v1/report-schedules", json=body), 201)
        # Due now, for the first simulated day.
        due = datetime.combine(FIRST_DAY + timedelta(days=1), datetime.min.time(), UTC)
        await pool.execute(
            "UPDATE report_schedules SET next_run_at = $2 WHERE id = $1",
            uuid.UUID(schedule["id"]),
            due,
        )
        settings = _settings(migrated_db, mqtt_broker.url, smtp_url=f"smtp://127.0.0.1:{port}")
        assert await run_due_reports(pool, settings) >= 1
        [mail] = [m for m in inbox.messages if "boss@example.com" in m.rcpt_tos]
        text = mail.content.decode() if isinstance(mail.content, bytes) else str(mail.content)
        assert f"trips-{FIRST_DAY}-{FIRST_DAY}.csv" in text
        after = await pool.fetchrow(
            "SELECT last_run_at, next_run_at, last_error FROM report_schedules WHERE id = $1",
            uuid.UUID(schedule["id"]),
        )
        assert after["last_error"] is None and after["next_run_at"] > datetime.now(UTC)
    finally:
        controller.stop()
    # With the server gone the schedule keeps its error and tries again later.
    await pool.execute(
        "UPDATE report_schedules SET next_run_at = now() - interval '1 minute' WHERE id = $1",
        uuid.UUID(schedule["id"]),
    )
    settings = _settings(migrated_db, mqtt_broker.url, smtp_url=f"smtp://127.0.0.1:{port}")
    assert await run_due_reports(pool, settings) == 0
    error = await pool.fetchval(
        "SELECT last_error FROM report_schedules WHERE id = $1", uuid.UUID(schedule["id"])
    )
    assert error and f"127.0.0.1:{port}" in error


async def test_series_read_from_rollups_match_the_samples(manager, week: WeekResult, pool) -> None:
    vehicle = week.vehicles[0]
    start = datetime.combine(FIRST_DAY, datetime.min.time(), UTC)
    params = {
        "from": start.isoformat(),
        "to": (start + timedelta(days=PLAN.days)).isoformat(),
        "bucket": "1h",
    }
    assert not await pool.fetchval("SELECT count(*) FROM trip_dirty WHERE vehicle_id = $1", vehicle)
    series = await _json(
        await manager.get(f"/api/v1/vehicles/{vehicle}/signals/Vehicle.Speed/series", params=params)
    )
    raw = await pool.fetch(
        """SELECT date_bin('1 hour', ts, '2000-01-01Z') AS b, avg(value), min(value), max(value),
                  count(*) FROM samples WHERE vehicle_id = $1 AND signal_id = 13
                  AND ts >= $2 AND ts < $3 GROUP BY 1 ORDER BY 1""",
        vehicle,
        start,
        start + timedelta(days=PLAN.days),
    )
    assert [b["count"] for b in series["buckets"]] == [r["count"] for r in raw]
    assert [b["avg"] for b in series["buckets"]] == pytest.approx([r["avg"] for r in raw])
    assert await pool.fetchval(
        "SELECT count(*) FROM signal_rollups_1h WHERE vehicle_id = $1", vehicle
    )
