"""The due computation on its own: whichever interval runs out first decides."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fleetlink.cloud.maintenance.due import Intervals, Reading, due

RANK = {"ok": 0, "due": 1, "overdue": 2}
START = date(2026, 1, 1)

intervals = st.builds(
    Intervals,
    km=st.none() | st.floats(100, 100_000),
    hours=st.none() | st.floats(10, 5_000),
    days=st.none() | st.integers(1, 1000),
    warn_fraction=st.floats(0, 0.5),
).filter(lambda i: i.km is not None or i.hours is not None or i.days is not None)
usage = st.tuples(st.floats(0, 300_000), st.floats(0, 10_000), st.integers(0, 3000))


def _now(used: tuple[float, float, int]) -> Reading:
    return Reading(1000.0 + used[0], 50.0 + used[1], START + timedelta(days=used[2]))


LAST = Reading(1000.0, 50.0, START)


@given(intervals, usage)
def test_a_plan_is_as_due_as_its_most_used_interval(plan: Intervals, used) -> None:
    state = due(plan, LAST, _now(used))
    singles = [
        due(Intervals(km=plan.km, warn_fraction=plan.warn_fraction), LAST, _now(used)),
        due(Intervals(hours=plan.hours, warn_fraction=plan.warn_fraction), LAST, _now(used)),
        due(Intervals(days=plan.days, warn_fraction=plan.warn_fraction), LAST, _now(used)),
    ]
    known = [s for s in singles if s.status != "unknown"]
    assert RANK[state.status] == max(RANK[s.status] for s in known)
    assert state.used_fraction == max(s.used_fraction or 0.0 for s in known)


@given(intervals, usage, usage)
def test_more_use_never_makes_a_plan_less_due(plan: Intervals, a, b) -> None:
    low = tuple(min(x, y) for x, y in zip(a, b, strict=True))
    high = tuple(max(x, y) for x, y in zip(a, b, strict=True))
    assert RANK[due(plan, LAST, _now(low)).status] <= RANK[due(plan, LAST, _now(high)).status]


def test_oil_change_every_15000_km_or_12_months_is_due_by_distance_first() -> None:
    plan = Intervals(km=15_000, days=365)
    state = due(plan, Reading(40_000, None, START), Reading(54_000, None, START + timedelta(90)))
    assert (state.status, state.due_by, state.remaining_km) == ("due", "km", 1_000)
    later = due(plan, Reading(40_000, None, START), Reading(41_000, None, START + timedelta(400)))
    assert (later.status, later.due_by, later.remaining_days) == ("overdue", "days", -35)


def test_a_distance_plan_without_an_odometer_is_unknown_not_ok() -> None:
    state = due(Intervals(km=15_000), Reading(None, None, START), Reading(None, None, START))
    assert state.status == "unknown"
