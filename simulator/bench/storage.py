"""``fleetlink bench storage``: bytes per sample on disk and query times of candidate sample
layouts, beside today's layout loaded with the same rows in the same run.

In a scratch database (created and dropped here) ``vehicles`` x ``signals`` series are filled
with ``days`` UTC days of samples every ``period_s`` seconds, generated in the server in time
order (as the ingest writes them: every vehicle's newest samples together). Layouts:

* ``today``: ``(tenant_id text, vehicle_id uuid, device_id text, signal_id smallint, ts,
  value)`` in daily partitions, btree ``(vehicle_id, signal_id, ts)`` (migration 0002);
* ``series id``: ``(series_id int, ts, value)`` in daily partitions, btree
  ``(series_id, ts)``; the repeated text and uuid columns live once per series;
* ``series id, series order``: the same rows, each day's partition written in series order
  (as a day that no longer receives data can be rewritten, and as migration 0017 moves rows);
* ``series id + BRIN``: the same rows with a BRIN index on ``ts`` and a btree on
  ``series_id`` only;
* ``hourly arrays``: one row per (series, hour) holding the hour's offsets (microseconds) and
  values as arrays, TOAST-compressed, as compaction keeps closed days (sample_blocks);
* ``rollup 1 h``: per (series, hour) count, sum, min, max; answers only bucketed series.

Each query runs ``repetitions`` times for random vehicles; medians are printed. Queries:
one vehicle's day (every signal, every row), one signal of a vehicle over all the days (every
row), and that range as a 1 hour series (avg, min, max, count per bucket) as the API's
``/series`` asks for it. Caches are warm (the data fits in memory at the default size).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
import typer

START = datetime(2026, 1, 1, tzinfo=UTC)
TENANT = "bench-tenant"
NA = float("nan")

_SETUP = """
CREATE TABLE vehicles (n int PRIMARY KEY, id uuid NOT NULL);
CREATE TABLE series (
    id serial PRIMARY KEY, tenant_id text NOT NULL, vehicle_id uuid, device_id text NOT NULL,
    signal_id smallint NOT NULL);
CREATE TABLE today (
    tenant_id text NOT NULL, vehicle_id uuid, device_id text NOT NULL,
    signal_id smallint NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL
) PARTITION BY RANGE (ts);
CREATE TABLE narrow (
    series_id int NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL
) PARTITION BY RANGE (ts);
CREATE TABLE narrow_brin (LIKE narrow) PARTITION BY RANGE (ts);
CREATE TABLE narrow_sorted (LIKE narrow) PARTITION BY RANGE (ts);
CREATE TABLE hourly (
    series_id int NOT NULL, hour timestamptz NOT NULL, offsets_us bigint[] NOT NULL,
    vals double precision[] NOT NULL, PRIMARY KEY (series_id, hour)
) WITH (toast_tuple_target = 128);
CREATE TABLE rollup_1h (
    series_id int NOT NULL, bucket timestamptz NOT NULL, count int NOT NULL,
    total double precision NOT NULL, min double precision NOT NULL,
    max double precision NOT NULL, PRIMARY KEY (series_id, bucket));
"""

# A smooth signal with noise: compresses like real data does (neither constant nor random).
_VALUE = "round((50 + 30 * sin(extract(epoch FROM t) / 600 + s.signal_id) + random())::numeric, 2)"

QUERIES: dict[str, dict[str, str]] = {
    "today": {
        "day": """SELECT signal_id, ts, value FROM today WHERE tenant_id = $1 AND vehicle_id = $2
                  AND ts >= $3 AND ts < $4""",
        "range": """SELECT ts, value FROM today WHERE tenant_id = $1 AND vehicle_id = $2
                    AND signal_id = $5 AND ts >= $3 AND ts < $4""",
        "series": """SELECT date_bin('1 hour', ts, $6) AS b, avg(value), min(value), max(value),
                            count(*) FROM today
                     WHERE tenant_id = $1 AND vehicle_id = $2 AND signal_id = $5
                       AND ts >= $3 AND ts < $4 GROUP BY 1 ORDER BY 1""",
    },
}


def _series_queries(table: str) -> dict[str, str]:
    join = f"{table} p JOIN series s ON s.id = p.series_id"
    return {
        "day": f"""SELECT s.signal_id, p.ts, p.value FROM {join}
                   WHERE s.tenant_id = $1 AND s.vehicle_id = $2 AND p.ts >= $3 AND p.ts < $4""",
        "range": f"""SELECT p.ts, p.value FROM {join} WHERE s.tenant_id = $1
                     AND s.vehicle_id = $2 AND s.signal_id = $5 AND p.ts >= $3 AND p.ts < $4""",
        "series": f"""SELECT date_bin('1 hour', p.ts, $6) AS b, avg(p.value), min(p.value),
                             max(p.value), count(*) FROM {join}
                      WHERE s.tenant_id = $1 AND s.vehicle_id = $2 AND s.signal_id = $5
                        AND p.ts >= $3 AND p.ts < $4 GROUP BY 1 ORDER BY 1""",
    }


QUERIES["narrow"] = _series_queries("narrow")
QUERIES["narrow_sorted"] = _series_queries("narrow_sorted")
QUERIES["narrow_brin"] = _series_queries("narrow_brin")
_HOURLY_ROWS = """
    SELECT s.signal_id, h.hour + u.o * interval '1 microsecond' AS ts, u.v AS value
    FROM hourly h JOIN series s ON s.id = h.series_id,
         unnest(h.offsets_us, h.vals) AS u(o, v)
    WHERE s.tenant_id = $1 AND s.vehicle_id = $2 {signal}
      AND h.hour >= date_trunc('hour', $3::timestamptz) AND h.hour < $4"""
QUERIES["hourly"] = {
    "day": f"SELECT * FROM ({_HOURLY_ROWS.format(signal='')}) r WHERE ts >= $3 AND ts < $4",
    "range": "SELECT ts, value FROM ("
    + _HOURLY_ROWS.format(signal="AND s.signal_id = $5")
    + ") r WHERE ts >= $3 AND ts < $4",
    "series": "SELECT date_bin('1 hour', ts, $6) AS b, avg(value), min(value), max(value), "
    "count(*) FROM ("
    + _HOURLY_ROWS.format(signal="AND s.signal_id = $5")
    + ") r WHERE ts >= $3 AND ts < $4 GROUP BY 1 ORDER BY 1",
}
QUERIES["rollup_1h"] = {
    "series": """SELECT r.bucket, r.total / r.count, r.min, r.max, r.count
                 FROM rollup_1h r JOIN series s ON s.id = r.series_id
                 WHERE s.tenant_id = $1 AND s.vehicle_id = $2 AND s.signal_id = $5
                   AND r.bucket >= $3 AND r.bucket < $4 ORDER BY 1""",
}
LABELS = {
    "today": "today (text ids, btree)",
    "narrow": "series id (btree)",
    "narrow_sorted": "series id, series order",
    "narrow_brin": "series id + BRIN ts",
    "hourly": "hourly arrays",
    "rollup_1h": "rollup 1 h",
}


@dataclass
class LayoutFigures:
    bytes_total: int = 0
    rows: int = 0
    times_ms: dict[str, list[float]] = field(default_factory=dict)
    # Rows each query returned, per repetition: the same in every layout, or a layout is wrong.
    rows_returned: dict[str, list[int]] = field(default_factory=dict)

    def median_ms(self, query: str) -> float:
        runs = self.times_ms.get(query)
        return statistics.median(runs) if runs else NA


@dataclass
class StorageBenchResult:
    samples: int
    vehicles: int
    signals: int
    days: int
    period_s: int
    load_s: float
    layouts: dict[str, LayoutFigures]


async def _size(conn: asyncpg.Connection, table: str) -> int:
    """Bytes of ``table``, its partitions, their indexes and TOAST."""
    return int(
        await conn.fetchval(
            """SELECT coalesce(sum(pg_total_relation_size(relid)),
                             pg_total_relation_size($1::regclass))
               FROM pg_partition_tree($1::regclass)""",
            table,
        )
    )


async def _load(
    conn: asyncpg.Connection, vehicles: int, signals: int, days: int, period_s: int
) -> None:
    await conn.execute(_SETUP)
    await conn.execute(
        "INSERT INTO vehicles SELECT n, gen_random_uuid() FROM generate_series(1, $1) n", vehicles
    )
    await conn.execute(
        """INSERT INTO series (tenant_id, vehicle_id, device_id, signal_id)
           SELECT $1, v.id, 'device-' || lpad(v.n::text, 6, '0'), g
           FROM vehicles v, generate_series(1, $2) g ORDER BY v.n, g""",
        TENANT,
        signals,
    )
    for day in range(days):
        start = START + timedelta(days=day)
        end = start + timedelta(days=1)
        suffix = f"{start:%Y%m%d}"
        for table in ("today", "narrow", "narrow_sorted", "narrow_brin"):
            await conn.execute(
                f"CREATE TABLE {table}_{suffix} PARTITION OF {table} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        # Time-major order, as a fleet's batches arrive.
        await conn.execute(
            f"""INSERT INTO today
                SELECT s.tenant_id, s.vehicle_id, s.device_id, s.signal_id, t, {_VALUE}
                FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 second',
                                     $3::interval) t
                CROSS JOIN series s ORDER BY t, s.id""",
            start,
            end,
            timedelta(seconds=period_s),
        )
        for table in ("narrow", "narrow_brin"):
            await conn.execute(
                f"""INSERT INTO {table} SELECT s.id, t.ts, t.value FROM today_{suffix} t
                    JOIN series s ON s.vehicle_id = t.vehicle_id AND s.signal_id = t.signal_id
                      AND s.device_id = t.device_id AND s.tenant_id = t.tenant_id
                    ORDER BY t.ts, s.id"""
            )
        await conn.execute(
            f"INSERT INTO narrow_sorted SELECT * FROM narrow_{suffix} ORDER BY series_id, ts"
        )
    await conn.execute(
        "CREATE INDEX ON today (vehicle_id, signal_id, ts);"
        "CREATE INDEX ON narrow (series_id, ts);"
        "CREATE INDEX ON narrow_sorted (series_id, ts);"
        "CREATE INDEX ON narrow_brin USING brin (ts);"
        "CREATE INDEX ON narrow_brin (series_id);"
    )
    await conn.execute(
        """INSERT INTO hourly
           SELECT series_id, date_bin('1 hour', ts, $1),
                  array_agg((extract(epoch FROM ts - date_bin('1 hour', ts, $1)) * 1000000)
                            ::bigint ORDER BY ts),
                  array_agg(value ORDER BY ts)
           FROM narrow GROUP BY 1, 2""",
        START,
    )
    await conn.execute(
        """INSERT INTO rollup_1h
           SELECT series_id, date_bin('1 hour', ts, $1), count(*), sum(value), min(value),
                  max(value)
           FROM narrow GROUP BY 1, 2""",
        START,
    )
    await conn.execute("VACUUM ANALYZE")


async def _time(conn: asyncpg.Connection, sql: str, args: tuple[object, ...]) -> tuple[float, int]:
    began = time.perf_counter()
    rows = await conn.fetch(sql, *args)
    return (time.perf_counter() - began) * 1000, len(rows)


async def run_bench(
    admin_url: str,
    vehicles: int,
    signals: int,
    days: int,
    period_s: int,
    repetitions: int,
    echo: Callable[[str], None],
) -> StorageBenchResult:
    """Load the layouts in a scratch database, measure them, drop it; return the figures.

    Raises asyncpg errors when the admin URL cannot create or reach the database.
    """
    admin = await asyncpg.connect(admin_url)
    name = f"fleetlink_bench_storage_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        conn = await asyncpg.connect(url)
        try:
            echo(f"loading {vehicles * signals * days * 86400 // period_s:,} samples …")
            began = time.perf_counter()
            await _load(conn, vehicles, signals, days, period_s)
            load_s = time.perf_counter() - began
            series_bytes = await _size(conn, "series")
            layouts: dict[str, LayoutFigures] = {}
            samples = int(await conn.fetchval("SELECT count(*) FROM narrow"))
            for table in QUERIES:
                extra = series_bytes if table != "today" else 0
                layouts[table] = LayoutFigures(await _size(conn, table) + extra, samples)
            ids = [r["id"] for r in await conn.fetch("SELECT id FROM vehicles ORDER BY n")]
            rng = random.Random(17)
            end = START + timedelta(days=days)
            for _ in range(repetitions):
                vehicle = rng.choice(ids)
                signal = rng.randint(1, signals)
                day = START + timedelta(days=rng.randrange(max(days - 1, 1)))
                windows = {
                    "day": (day, day + timedelta(days=1)),
                    "range": (START, end),
                    "series": (START, end),
                }
                for table, queries in QUERIES.items():
                    for query, sql in queries.items():
                        lo, hi = windows[query]
                        count = 6 if "$6" in sql else 5 if "$5" in sql else 4
                        args = (TENANT, vehicle, lo, hi, signal, START)[:count]
                        ms, count = await _time(conn, sql, args)
                        layouts[table].times_ms.setdefault(query, []).append(ms)
                        layouts[table].rows_returned.setdefault(query, []).append(count)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return StorageBenchResult(samples, vehicles, signals, days, period_s, load_s, layouts)


def _ratio(value: float) -> str:
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def report(result: StorageBenchResult) -> str:
    """Return the figures as a table, one layout a line, today's first."""
    lines = [
        f"{result.samples:,} samples: {result.vehicles} vehicles x {result.signals} signals, "
        f"one every {result.period_s} s for {result.days} days (loaded in {result.load_s:.0f} s)",
        "medians of the repetitions; the day query reads every signal of one vehicle's day,",
        f"the range and 1 h series queries one signal over all {result.days} days",
        "",
        f"{'layout':<26}{'B/sample':>9}{'day ms':>9}{'range ms':>10}{'1 h series ms':>15}",
    ]
    base = result.layouts["today"]
    for table, fig in result.layouts.items():
        per_sample = fig.bytes_total / fig.rows
        lines.append(
            f"{LABELS[table]:<26}{per_sample:>9.2f}{fig.median_ms('day'):>9.1f}"
            f"{fig.median_ms('range'):>10.1f}{fig.median_ms('series'):>15.1f}"
        )
    lines.append("")
    for table, fig in result.layouts.items():
        if table == "today":
            continue
        ratios = [f"size {_ratio(fig.bytes_total / base.bytes_total)}"]
        for query in ("day", "range", "series"):
            ms = fig.median_ms(query)
            if ms == ms:  # not NaN: the layout answers this query
                ratios.append(f"{query} {_ratio(ms / base.median_ms(query))}")
        lines.append(f"{LABELS[table]:<26}vs today: " + ", ".join(ratios))
    return "\n".join(lines)


def main(
    vehicles: Annotated[int, typer.Option(min=1, help="Vehicles (one device each)")] = 20,
    signals: Annotated[int, typer.Option(min=1, help="Signals per vehicle")] = 10,
    days: Annotated[int, typer.Option(min=2, help="UTC days of samples")] = 31,
    period_s: Annotated[int, typer.Option(min=1, help="Seconds between samples")] = 60,
    repetitions: Annotated[int, typer.Option(min=1, help="Runs; medians are reported")] = 9,
    admin_url: Annotated[
        str, typer.Option(help="PostgreSQL URL allowed to create the scratch database")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
) -> None:
    """Bytes per sample and query times of candidate sample layouts beside today's."""
    result = asyncio.run(
        run_bench(admin_url, vehicles, signals, days, period_s, repetitions, typer.echo)
    )
    typer.echo(report(result))
