"""Driver scoring: the tenant's rules, scorecards with explanations, weekly and monthly
leaderboards, badges and time-bound challenges."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.day_range import EARLIEST_DAY, LATEST_DAY, MAX_RANGE_DAYS, DayRange
from fleetlink.cloud.api.drivers import DRIVER_ID
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import json_body, json_response
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.scoring.activity import Activity, activity_by_driver
from fleetlink.cloud.scoring.metrics import metric_value
from fleetlink.cloud.scoring.rules import Award, ScoringRules, default_rules, rules_of
from fleetlink.cloud.scoring.scorecard import Scorecard, scorecard
from fleetlink.cloud.trips.dirty import mark_tenant_history

api = ResourceRoutes("scores")
routes = api.routes

CHALLENGE_ID = {"description": "Challenge UUID", "schema": {"type": "string", "format": "uuid"}}
# After the rules change, trips of this many past days are recomputed under the new ones.
RECOMPUTE_DAYS = 92
BADGE_LOOKBACK_DAYS = 365


class RulesDocument(BaseModel):
    rules: ScoringRules
    version: int = Field(description="0: the defaults, never changed")
    days_marked: int = Field(0, description="Days being recomputed after this change")


class LeaderboardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: Literal["week", "month"] = "week"
    on: date | None = Field(None, description="A day in the period (default: today, UTC)")

    @model_validator(mode="after")
    def _in_range(self) -> LeaderboardQuery:
        if self.on is not None and not EARLIEST_DAY + timedelta(days=31) <= self.on <= LATEST_DAY:
            raise ValueError(f"'on' must lie between {EARLIEST_DAY} and {LATEST_DAY}")
        return self


class LeaderboardEntry(BaseModel):
    rank: int | None = Field(description="None: too little driving to be ranked")
    driver_id: uuid.UUID
    name: str
    score: float | None
    band: str | None
    distance_km: float
    points_per_100km: float | None
    trips: int


class Leaderboard(BaseModel):
    period: str
    from_: date = Field(alias="from")
    to: date
    entries: list[LeaderboardEntry]

    model_config = ConfigDict(populate_by_name=True)


class EarnedBadge(BaseModel):
    id: str
    name: str
    metric: str
    value: float | None
    earned: bool


class BadgeList(BaseModel):
    driver_id: uuid.UUID
    from_: date = Field(alias="from")
    to: date
    badges: list[EarnedBadge]

    model_config = ConfigDict(populate_by_name=True)


class ChallengeCreate(Award):
    name: str = Field(min_length=1, max_length=200)
    starts_on: date = Field(strict=False, description="First day, YYYY-MM-DD (UTC)")
    ends_on: date = Field(strict=False, description="Last day (inclusive)")

    @model_validator(mode="after")
    def _window(self) -> ChallengeCreate:
        for day in (self.starts_on, self.ends_on):
            if not EARLIEST_DAY <= day <= LATEST_DAY:
                raise ValueError(f"days must lie between {EARLIEST_DAY} and {LATEST_DAY}")
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must not be before starts_on")
        if (self.ends_on - self.starts_on).days >= MAX_RANGE_DAYS:
            raise ValueError(f"a challenge lasts at most {MAX_RANGE_DAYS} days")
        return self


class Challenge(ChallengeCreate):
    model_config = ConfigDict(extra="forbid", strict=False)

    id: uuid.UUID
    created_at: datetime


class Standing(BaseModel):
    rank: int
    driver_id: uuid.UUID
    name: str
    value: float | None
    distance_km: float
    met: bool


class ChallengeDetail(Challenge):
    standings: list[Standing]


class ChallengeList(BaseModel):
    items: list[Challenge]


class Deleted(BaseModel):
    deleted: bool


async def stored_rules(conn: asyncpg.Connection, tenant: str) -> RulesDocument:
    """Return the tenant's scoring rules and their version (the defaults as version 0)."""
    row = await conn.fetchrow(
        "SELECT rules, version FROM scoring_rules WHERE tenant_id = $1", tenant
    )
    if row is None:
        return RulesDocument(rules=default_rules(), version=0)
    return RulesDocument(rules=ScoringRules.model_validate(row["rules"]), version=row["version"])


@api.get(
    "/api/v1/scoring/rules",
    summary="The tenant's scoring rules: thresholds, weights, speeding and risk bands, badges",
    response=RulesDocument,
    permission=Permission.SCORES_READ,
)
async def get_rules(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        document = await stored_rules(conn, principal_of(request).tenant_id)
    return json_response(document)


@api.route(
    "PUT",
    "/api/v1/scoring/rules",
    summary="Replace the scoring rules; the last 92 days of trips are recomputed under them",
    response=RulesDocument,
    permission=Permission.SCORING_WRITE,
    body=ScoringRules,
    errors=(400, 415, 422),
)
async def put_rules(request: web.Request) -> web.Response:
    body: ScoringRules = await json_body(request, ScoringRules)
    async with tenant_transaction(request) as conn:
        after = await replace_rules(request, conn, body)
    return json_response(after)


async def replace_rules(
    request: web.Request, conn: asyncpg.Connection, body: ScoringRules
) -> RulesDocument:
    """Store ``body`` as the caller's tenant's scoring rules (audited) and mark the last
    RECOMPUTE_DAYS days of trips for recomputing; return the new document."""
    tenant = principal_of(request).tenant_id
    before = await stored_rules(conn, tenant)
    version = await conn.fetchval(
        """INSERT INTO scoring_rules (tenant_id, rules) VALUES ($1, $2)
           ON CONFLICT (tenant_id) DO UPDATE
           SET rules = EXCLUDED.rules, version = scoring_rules.version + 1,
               updated_at = now()
           RETURNING version""",
        tenant,
        body.model_dump(mode="json"),
    )
    marked = await mark_tenant_history(
        conn, tenant, datetime.now(UTC).date() - timedelta(days=RECOMPUTE_DAYS)
    )
    after = RulesDocument(rules=body, version=version, days_marked=marked)
    await record_change(
        request, conn, "update", "scoring_rules", tenant, before=before, after=after
    )
    return after


async def _require_driver(conn: asyncpg.Connection, driver: uuid.UUID) -> None:
    if await conn.fetchval("SELECT 1 FROM drivers WHERE id = $1", driver) is None:
        raise ProblemError(404, f"no driver {driver}")


@api.get(
    "/api/v1/drivers/{driver_id}/scorecard",
    summary="A driver's score, risk band and the events behind every point",
    response=Scorecard,
    permission=Permission.SCORES_READ,
    query=DayRange,
    path_params={"driver_id": DRIVER_ID},
    errors=(400, 404),
)
async def driver_scorecard(request: web.Request) -> web.Response:
    driver = path_uuid(request, "driver_id")
    query = query_model(request, DayRange)
    tenant = principal_of(request).tenant_id
    first, last = query.days()
    async with tenant_transaction(request) as conn:
        card = await driver_scorecard_of(conn, tenant, driver, first, last)
    return web.json_response(text=card.model_dump_json(by_alias=True))


async def driver_scorecard_of(
    conn: asyncpg.Connection, tenant: str, driver: uuid.UUID, first: date, last: date
) -> Scorecard:
    """Return ``driver``'s scorecard over the days ``first``..``last`` under the tenant's rules.

    Raises ProblemError(404) when ``conn``'s tenant has no such driver.
    """
    await _require_driver(conn, driver)
    rules = await rules_of(conn, tenant)
    activity = await activity_by_driver(conn, tenant, first, last + timedelta(days=1), driver)
    return scorecard(driver, first, last, activity.get(driver, Activity()), rules)


def period_of(period: str, on: date) -> tuple[date, date]:
    """Return the first and last day of the ISO week or calendar month holding ``on``."""
    if period == "week":
        first = on - timedelta(days=on.weekday())
        return first, first + timedelta(days=6)
    first = on.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


async def _driver_names(conn: asyncpg.Connection, tenant: str) -> dict[uuid.UUID, str]:
    rows = await conn.fetch("SELECT id, name FROM drivers WHERE tenant_id = $1", tenant)
    return {r["id"]: r["name"] for r in rows}


async def leaderboard(
    conn: asyncpg.Connection, tenant: str, period: str, first: date, last: date
) -> Leaderboard:
    """Return the tenant's drivers ranked by score over ``first``..``last``."""
    rules = await rules_of(conn, tenant)
    activity = await activity_by_driver(conn, tenant, first, last + timedelta(days=1))
    names = await _driver_names(conn, tenant)
    cards = [scorecard(d, first, last, a, rules) for d, a in activity.items()]
    cards.sort(key=lambda c: (c.score is None, -(c.score or 0), -c.distance_km, str(c.driver_id)))
    entries = [
        LeaderboardEntry(
            rank=n + 1 if c.score is not None else None,
            driver_id=c.driver_id,
            name=names.get(c.driver_id, ""),
            score=c.score,
            band=c.band,
            distance_km=c.distance_km,
            points_per_100km=c.points_per_100km,
            trips=c.trips,
        )
        for n, c in enumerate(cards)
    ]
    return Leaderboard(period=period, from_=first, to=last, entries=entries)


@api.get(
    "/api/v1/leaderboards",
    summary="Drivers ranked by score for a week or a month",
    response=Leaderboard,
    permission=Permission.SCORES_READ,
    query=LeaderboardQuery,
    errors=(400,),
)
async def get_leaderboard(request: web.Request) -> web.Response:
    query = query_model(request, LeaderboardQuery)
    first, last = period_of(query.period, query.on or datetime.now(UTC).date())
    async with tenant_transaction(request) as conn:
        board = await leaderboard(conn, principal_of(request).tenant_id, query.period, first, last)
    return web.json_response(text=board.model_dump_json(by_alias=True))


@api.get(
    "/api/v1/drivers/{driver_id}/badges",
    summary="The tenant's badges and whether the driver has earned each over the last year",
    response=BadgeList,
    permission=Permission.SCORES_READ,
    path_params={"driver_id": DRIVER_ID},
    errors=(400, 404),
)
async def driver_badges(request: web.Request) -> web.Response:
    driver = path_uuid(request, "driver_id")
    async with tenant_transaction(request) as conn:
        body = await driver_badges_of(conn, principal_of(request).tenant_id, driver)
    return web.json_response(text=body.model_dump_json(by_alias=True))


async def driver_badges_of(conn: asyncpg.Connection, tenant: str, driver: uuid.UUID) -> BadgeList:
    """Return the tenant's badges and whether ``driver`` earned each over the last year.

    Raises ProblemError(404) when ``conn``'s tenant has no such driver.
    """
    last = datetime.now(UTC).date()
    first = last - timedelta(days=BADGE_LOOKBACK_DAYS - 1)
    await _require_driver(conn, driver)
    rules = await rules_of(conn, tenant)
    activity = (
        await activity_by_driver(conn, tenant, first, last + timedelta(days=1), driver)
    ).get(driver, Activity())
    badges = []
    for badge in rules.badges:
        value = metric_value(badge.metric, activity, rules)
        badges.append(
            EarnedBadge(
                id=badge.id,
                name=badge.name,
                metric=badge.metric,
                value=value,
                earned=badge.met(value, activity.distance_km),
            )
        )
    return BadgeList(driver_id=driver, from_=first, to=last, badges=badges)


_CHALLENGE_COLUMNS = "id, name, rule, starts_on, ends_on, created_at"


def _challenge(row: asyncpg.Record) -> Challenge:
    return Challenge(
        id=row["id"],
        name=row["name"],
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        created_at=row["created_at"],
        **row["rule"],
    )


@api.get(
    "/api/v1/challenges",
    summary="The tenant's challenges, latest start first",
    response=ChallengeList,
    permission=Permission.SCORES_READ,
)
async def list_challenges(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        rows = await conn.fetch(
            f"SELECT {_CHALLENGE_COLUMNS} FROM challenges WHERE tenant_id = $1 "
            "ORDER BY starts_on DESC, id LIMIT 500",
            principal_of(request).tenant_id,
        )
    return json_response(ChallengeList(items=[_challenge(r) for r in rows]))


@api.post(
    "/api/v1/challenges",
    summary="Start a time-bound challenge: a bound on a metric over a range of days",
    response=Challenge,
    permission=Permission.SCORING_WRITE,
    body=ChallengeCreate,
    status=201,
    errors=(400, 415, 422),
)
async def create_challenge(request: web.Request) -> web.Response:
    body: ChallengeCreate = await json_body(request, ChallengeCreate)
    tenant = principal_of(request).tenant_id
    rule = Award.model_validate(body.model_dump(include=set(Award.model_fields))).model_dump()
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO challenges (id, tenant_id, name, rule, starts_on, ends_on)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_CHALLENGE_COLUMNS}""",
            uuid.uuid4(),
            tenant,
            body.name,
            rule,
            body.starts_on,
            body.ends_on,
        )
        challenge = _challenge(row)
        await record_change(request, conn, "create", "challenge", challenge.id, after=challenge)
    return json_response(challenge, status=201)


@api.get(
    "/api/v1/challenges/{challenge_id}",
    summary="A challenge with every driver's standing",
    response=ChallengeDetail,
    permission=Permission.SCORES_READ,
    path_params={"challenge_id": CHALLENGE_ID},
    errors=(400, 404),
)
async def get_challenge(request: web.Request) -> web.Response:
    challenge_id = path_uuid(request, "challenge_id")
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            f"SELECT {_CHALLENGE_COLUMNS} FROM challenges WHERE tenant_id = $1 AND id = $2",
            tenant,
            challenge_id,
        )
        if row is None:
            raise ProblemError(404, f"no challenge {challenge_id}")
        challenge = _challenge(row)
        rules = await rules_of(conn, tenant)
        activity = await activity_by_driver(
            conn, tenant, challenge.starts_on, challenge.ends_on + timedelta(days=1)
        )
        names = await _driver_names(conn, tenant)
    measured = [
        (d, metric_value(challenge.metric, a, rules), a.distance_km) for d, a in activity.items()
    ]
    # Higher is better unless the challenge only caps the metric.
    lower_better = challenge.at_least is None
    measured.sort(
        key=lambda m: (
            m[1] is None,
            (m[1] or 0) if lower_better else -(m[1] or 0),
            str(m[0]),
        )
    )
    standings = [
        Standing(
            rank=n + 1,
            driver_id=d,
            name=names.get(d, ""),
            value=value,
            distance_km=round(km, 4),
            met=challenge.met(value, km),
        )
        for n, (d, value, km) in enumerate(measured)
    ]
    return json_response(ChallengeDetail(**challenge.model_dump(), standings=standings))


@api.delete(
    "/api/v1/challenges/{challenge_id}",
    summary="Delete a challenge",
    response=Deleted,
    permission=Permission.SCORING_WRITE,
    path_params={"challenge_id": CHALLENGE_ID},
    errors=(400, 404),
)
async def delete_challenge(request: web.Request) -> web.Response:
    challenge_id = path_uuid(request, "challenge_id")
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            f"DELETE FROM challenges WHERE tenant_id = $1 AND id = $2 "
            f"RETURNING {_CHALLENGE_COLUMNS}",
            tenant,
            challenge_id,
        )
        if row is None:
            raise ProblemError(404, f"no challenge {challenge_id}")
        await record_change(
            request, conn, "delete", "challenge", challenge_id, before=_challenge(row)
        )
    return json_response(Deleted(deleted=True))
