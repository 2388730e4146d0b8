"""The ``driver.behavior_score_updated`` notification: a driver's score of a day, read before
and after that day of a vehicle is recomputed, and queued once per driver whose score changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, timedelta

import asyncpg

from fleetlink.cloud.notify.webhooks import enqueue
from fleetlink.cloud.scoring.activity import DRIVER_OF_TRIP_SQL, Activity, activity_by_driver
from fleetlink.cloud.scoring.rules import ScoringRules
from fleetlink.cloud.scoring.scorecard import scorecard

EVENT_TYPE = "driver.behavior_score_updated"
DayScores = dict[uuid.UUID, tuple[float | None, str | None]]  # driver: (score, band)


async def day_scores(
    conn: asyncpg.Connection,
    tenant: str,
    vehicle: uuid.UUID,
    day: date,
    rules: ScoringRules,
    also: Iterable[uuid.UUID] = (),
) -> DayScores:
    """Return the day's score of every driver of the vehicle's trips that day (and of
    ``also``)."""
    drivers = set(also) | {
        r["driver_id"]
        for r in await conn.fetch(
            f"""SELECT DISTINCT a.driver_id FROM trips t {DRIVER_OF_TRIP_SQL}
                WHERE t.tenant_id = $1 AND t.vehicle_id = $2 AND t.day = $3
                  AND a.driver_id IS NOT NULL""",
            tenant,
            vehicle,
            day,
        )
    }
    scores: DayScores = {}
    for driver in sorted(drivers):
        found = await activity_by_driver(conn, tenant, day, day + timedelta(days=1), driver)
        card = scorecard(driver, day, day, found.get(driver, Activity()), rules)
        scores[driver] = (card.score, card.band)
    return scores


async def notify_changed(
    conn: asyncpg.Connection, tenant: str, day: date, before: DayScores, after: DayScores
) -> list[uuid.UUID]:
    """Queue one notification per driver whose score or band of ``day`` changed, in the
    caller's transaction; return those drivers."""
    changed = []
    for driver in sorted(before.keys() | after.keys()):
        old, new = before.get(driver, (None, None)), after.get(driver, (None, None))
        if old == new:
            continue
        await enqueue(
            conn,
            tenant,
            EVENT_TYPE,
            {
                "driver_id": str(driver),
                "day": day.isoformat(),
                "previous_score": old[0],
                "score": new[0],
                "band": new[1],
            },
        )
        changed.append(driver)
    return changed
