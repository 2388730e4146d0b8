"""The TimescaleDB backend, checked in PGlite with TimescaleDB 2.23 (WASM, in process from
Node): every migration as the backend selects them, then the queries the API and the trip
recompute run, on compressed chunks and continuous aggregates (docs/decisions.md, D92).

Needs ``node`` and ``npm ci`` in this folder (tests/run.sh does both)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetlink.cloud.api.signals import _RAW_SERIES, _rollup_series
from fleetlink.cloud.db.migrate import available_migrations
from fleetlink.cloud.ingest.partitions import NATIVE_PARTITIONS_SQL
from fleetlink.cloud.storage.compaction import COMPACTS_SQL
from fleetlink.cloud.storage.rollups import ROLLUPS_ARE_VIEWS_SQL
from fleetlink.cloud.storage.timescale import DROP_CHUNKS_SQL, HAS_TIMESCALE_SQL, IS_HYPERTABLE_SQL
from fleetlink.cloud.trips.recompute import DAY_SAMPLES_SQL

HERE = Path(__file__).parent
VEHICLE = "6f0e8a52-3c1b-4d6e-9a57-0b1c2d3e4f50"
DAY = datetime(2026, 2, 10, tzinfo=UTC)
SPEED = 12


def _run(steps: list[dict[str, Any]]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        pytest.fail(
            "node and tests/timescale/node_modules are needed: run npm ci in tests/timescale"
        )
    done = subprocess.run(
        [node, str(HERE / "run_sql.mjs")],
        input=json.dumps({"steps": steps}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["results"]


def _iso(ts: datetime) -> str:
    return ts.isoformat()


def test_timescale_migrations_serve_series_from_compressed_chunks_and_aggregates():
    migrations = available_migrations("timescaledb")
    assert any(
        m.name == "0017_sample_points.sql" and "create_hypertable" in m.sql for m in migrations
    )
    steps: list[dict[str, Any]] = [
        {"name": "extension", "sql": "CREATE EXTENSION IF NOT EXISTS timescaledb"}
    ]
    old_day = DAY - timedelta(days=3)
    for m in migrations:
        if m.version == 16:
            # Rows of the layout before 0016, which 0017 moves into the hypertable.
            steps.append(
                {
                    "name": "old layout rows",
                    "sql": f"""
                    INSERT INTO tenants (id, name) VALUES ('acme', 'Acme');
                    CREATE TABLE samples_old PARTITION OF samples
                        FOR VALUES FROM ('{_iso(old_day)}') TO ('{_iso(DAY)}');
                    INSERT INTO samples VALUES
                        ('acme', '{VEHICLE}', 'dev-1', {SPEED}, '{_iso(old_day)}', 10),
                        ('acme', '{VEHICLE}', 'dev-1', {SPEED}, '{_iso(old_day)}'::timestamptz
                                                                  + interval '1 minute', 20)""",
                }
            )
        steps.append({"name": m.name, "sql": m.in_transaction})
        steps += [
            {"name": f"{m.name} after commit {n}", "sql": statement}
            for n, statement in enumerate(m.after_commit)
        ]
    # Two hours of speed, one sample every 10 s: value = minute of the day.
    steps += [
        {
            "name": "moved_rollup",
            "sql": "SELECT count, total FROM signal_rollups_1h WHERE bucket = $1",
            "params": [_iso(old_day)],
        },
        {
            "name": "samples",
            "sql": f"""INSERT INTO samples (tenant_id, vehicle_id, device_id, signal_id, ts, value)
                SELECT 'acme', '{VEHICLE}', 'dev-1', {SPEED}, t,
                       floor(extract(epoch FROM t - '{_iso(DAY)}') / 60)
                FROM generate_series('{_iso(DAY)}'::timestamptz,
                                     '{_iso(DAY + timedelta(hours=2))}'::timestamptz
                                       - interval '10 seconds', interval '10 seconds') t""",
        },
        {
            "name": "refresh_1m",
            "sql": "CALL refresh_continuous_aggregate('sample_rollups_1m', NULL, NULL)",
        },
        {
            "name": "refresh_1h",
            "sql": "CALL refresh_continuous_aggregate('sample_rollups_1h', NULL, NULL)",
        },
        {
            "name": "compress",
            "sql": "SELECT count(compress_chunk(c)) AS n FROM show_chunks('sample_points') c",
            "params": [],
        },
    ]
    series_args = [
        "acme",
        VEHICLE,
        SPEED,
        _iso(DAY),
        _iso(DAY + timedelta(days=1)),
        "3600 seconds",
        "2000-01-01T00:00:00+00:00",
        1001,
    ]
    steps += [
        {"name": "raw_series", "sql": _RAW_SERIES, "params": series_args},
        {
            "name": "rollup_series",
            "sql": _rollup_series("signal_rollups_1h"),
            "params": [*series_args, []],
        },
        {
            "name": "rollup_1m_series",
            "sql": _rollup_series("signal_rollups_1m"),
            "params": [*series_args[:5], "1800 seconds", *series_args[6:], []],
        },
        {
            "name": "trip_day",
            "sql": DAY_SAMPLES_SQL,
            "params": ["acme", VEHICLE, _iso(DAY), _iso(DAY + timedelta(days=1)), [SPEED]],
        },
        {
            "name": "keep_recent",
            "sql": DROP_CHUNKS_SQL,
            "params": ["sample_points", _iso(DAY - timedelta(days=1))],
        },
        {"name": "still_there", "sql": "SELECT count(*)::int AS n FROM samples", "params": []},
        {
            "name": "drop_old",
            "sql": DROP_CHUNKS_SQL,
            "params": ["sample_points", _iso(DAY + timedelta(days=2))],
        },
        {"name": "gone", "sql": "SELECT count(*)::int AS n FROM samples", "params": []},
        {
            "name": "rollups_outlive_samples",
            "sql": "SELECT count(*)::int AS n FROM signal_rollups_1h",
            "params": [],
        },
    ]
    # How the Python side tells the backends apart, asked of this database.
    steps += [
        {"name": "has_timescale", "sql": HAS_TIMESCALE_SQL, "params": []},
        {"name": "is_hypertable", "sql": IS_HYPERTABLE_SQL, "params": ["sample_points"]},
        {
            "name": "rollups_are_views",
            "sql": ROLLUPS_ARE_VIEWS_SQL,
            "params": ["signal_rollups_1m"],
        },
        {"name": "native_partitions", "sql": NATIVE_PARTITIONS_SQL, "params": []},
        {"name": "compacts", "sql": COMPACTS_SQL, "params": []},
    ]
    results = _run(steps)
    flags = {
        k: results[k][0]["x"]
        for k in (
            "has_timescale",
            "is_hypertable",
            "rollups_are_views",
            "native_partitions",
            "compacts",
        )
    }
    assert flags == {
        "has_timescale": True,
        "is_hypertable": True,
        "rollups_are_views": True,
        "native_partitions": False,
        "compacts": False,
    }

    # The moved rows are in the aggregates by the migration's after-commit refresh.
    assert [(r["count"], r["total"]) for r in results["moved_rollup"]] == [(2, 30.0)]
    assert results["compress"][0]["n"] >= 1
    expected = [
        {"count": 360, "min": 60.0 * h, "max": 60.0 * h + 59, "avg": 60.0 * h + 29.5}
        for h in range(2)
    ]
    for name in ("raw_series", "rollup_series"):
        got = [
            {k: float(r[k]) if k != "count" else int(r[k]) for k in ("count", "min", "max", "avg")}
            for r in results[name]
        ]
        assert got == expected, name
    assert [int(r["count"]) for r in results["rollup_1m_series"]] == [180] * 4
    assert len(results["trip_day"]) == 720
    assert results["still_there"][0]["n"] == 720  # the day's rows; the old day's went
    assert results["gone"][0]["n"] == 0
    # Dropped chunks do not invalidate the aggregates: 1 old hour and 2 of the day remain.
    assert results["rollups_outlive_samples"][0]["n"] == 3
