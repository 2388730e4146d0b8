"""``fleetlink bench api``: API latency under a constant request rate, beside ``/healthz``.

In a scratch database (created and dropped here) it loads 100 tenants with 10,000 vehicles
and 20,000 drivers, starts ``fleetlink cloud serve`` in its own process, and sends an open-loop
load (:mod:`.load`) at a fixed rate to a vehicle's detail, a filtered list, a search, and the
three mixed; ``/healthz`` at the same rate, in the same run, is the floor: what the HTTP stack
and the client cost without authentication or database.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import aiohttp
import asyncpg
import typer

from fleetlink.cloud.auth.accounts import add_user
from fleetlink.cloud.auth.api_tokens import create_token
from fleetlink.cloud.auth.permissions import Role
from fleetlink.cloud.db.migrate import migrate
from fleetlink.cloud.records.field_crypto import generate_key_ring_entry
from fleetlink.simulator.bench.load import LoadResult, RequestSpec, format_table, run_open_loop

MAKES = {
    "Ford": ["Transit", "Ranger", "Focus"],
    "Mercedes-Benz": ["Sprinter", "Vito", "Actros"],
    "Volkswagen": ["Crafter", "Caddy", "Golf"],
    "Renault": ["Master", "Kangoo", "Trafic"],
    "Iveco": ["Daily", "Eurocargo"],
    "Toyota": ["Hilux", "Proace", "Corolla"],
    "Scania": ["R 450", "P 280"],
    "Volvo": ["FH16", "FM"],
}
STATUSES = ["active"] * 17 + ["in_maintenance"] * 2 + ["retired"]


@dataclass(frozen=True)
class Seeded:
    tokens: dict[str, str]
    vehicles: dict[str, list[tuple[uuid.UUID, str, str]]]  # tenant: [(id, make, plate)]


async def seed(conn: asyncpg.Connection, tenants: int, vehicles: int, drivers: int) -> Seeded:
    """Load the tenants, one owner token each, and the vehicles and drivers (COPY)."""
    rng = random.Random(7)
    tokens: dict[str, str] = {}
    fleet: dict[str, list[tuple[uuid.UUID, str, str]]] = {}
    vehicle_rows, driver_rows = [], []
    for t in range(tenants):
        tenant = f"bench-{t:03d}"
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $1)", tenant)
        owner = await add_user(conn, tenant, f"owner@{tenant}.example", Role.OWNER)
        _, tokens[tenant] = await create_token(conn, tenant, owner, name="bench")
        fleet[tenant] = []
        for v in range(vehicles // tenants):
            make = rng.choice(list(MAKES))
            model = rng.choice(MAKES[make])
            plate = f"{rng.choice('BHKMS')}{rng.choice('ABCDEFGHKL')}-{t:02d}{v:03d}"
            vehicle_id = uuid.uuid4()
            fleet[tenant].append((vehicle_id, make, plate))
            vehicle_rows.append(
                (
                    vehicle_id,
                    tenant,
                    f"{make} {model} {plate}",
                    plate,
                    make,
                    model,
                    rng.randint(2012, 2026),
                    rng.choice(STATUSES),
                    [rng.choice(["north", "south", "city"])],
                )
            )
        for d in range(drivers // tenants):
            driver_rows.append(
                (
                    uuid.uuid4(),
                    tenant,
                    f"Driver {t}-{d}",
                    f"E{t:03d}{d:04d}",
                    ["day"] if d % 2 else ["night"],
                )
            )
    await conn.copy_records_to_table(
        "vehicles",
        records=vehicle_rows,
        columns=["id", "tenant_id", "name", "plate", "make", "model", "year", "status", "tags"],
    )
    await conn.copy_records_to_table(
        "drivers",
        records=driver_rows,
        columns=["id", "tenant_id", "name", "employee_number", "tags"],
    )
    await conn.execute("ANALYZE")
    return Seeded(tokens, fleet)


def _targets(base: str, seeded: Seeded) -> dict[str, list[RequestSpec]]:
    rng = random.Random(11)
    detail, listing, search = [], [], []
    for tenant, token in seeded.tokens.items():
        auth = {"Authorization": f"Bearer {token}"}
        for vehicle_id, make, plate in rng.sample(seeded.vehicles[tenant], 10):
            detail.append(RequestSpec("GET", f"{base}/api/v1/vehicles/{vehicle_id}", auth))
            listing.append(
                RequestSpec(
                    "GET", f"{base}/api/v1/vehicles?status=active&make={make}&limit=20", auth
                )
            )
            search.append(
                RequestSpec("GET", f"{base}/api/v1/vehicles?q={make[:3]}+{plate[:4]}", auth)
            )
    mixed = [r for triple in zip(detail, listing, search, strict=True) for r in triple]
    return {
        "healthz (floor)": [RequestSpec("GET", f"{base}/healthz")],
        "vehicle detail": detail,
        "filtered list": listing,
        "search (q=)": search,
        "mixed (detail/list/search)": mixed,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve(database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "FLEETLINK_MODE": "demo",
        "FLEETLINK_DATABASE_URL": database_url,
        "FLEETLINK_INGEST_WORKERS": "0",
        "FLEETLINK_HTTP_PORT": str(port),
        "FLEETLINK_API_RATE_PER_S": "1000000",
        "FLEETLINK_API_RATE_BURST": "1000000",
        "FLEETLINK_FIELD_KEYS": generate_key_ring_entry("bench"),
        "FLEETLINK_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "fleetlink", "cloud", "serve"], env=env, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return server, base
            except aiohttp.ClientError:
                pass
            if server.poll() is not None:
                raise RuntimeError("the cloud server exited while starting; see its output")
            await asyncio.sleep(0.2)
    server.kill()
    raise RuntimeError("the cloud server did not answer /healthz within 30 s")


async def run_bench(
    admin_url: str,
    tenants: int,
    vehicles: int,
    drivers: int,
    rate: float,
    duration_s: float,
    repetitions: int,
) -> dict[str, list[LoadResult]]:
    """Run every target ``repetitions`` times at ``rate``, the targets taking turns; the
    scratch database is always dropped."""
    name = f"fleetlink_bench_api_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base_url, _, _ = admin_url.rpartition("/")
    database_url = f"{base_url}/{name}"
    server = None
    try:
        conn = await asyncpg.connect(database_url)
        try:
            await migrate(conn)
            seeded = await seed(conn, tenants, vehicles, drivers)
        finally:
            await conn.close()
        server, base = await _serve(database_url)
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as http:
            targets = _targets(base, seeded)
            results: dict[str, list[LoadResult]] = {target: [] for target in targets}
            await run_open_loop(http, targets["mixed (detail/list/search)"], rate, 3)  # warm up
            for _ in range(repetitions):
                for target, specs in targets.items():
                    results[target].append(await run_open_loop(http, specs, rate, duration_s))
        return results
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main(
    rate: Annotated[
        float, typer.Option(help="Requests per second offered, for every target")
    ] = 1000,
    duration: Annotated[float, typer.Option(help="Seconds per run of a target")] = 10,
    repetitions: Annotated[int, typer.Option(help="Runs per target; medians are reported")] = 3,
    tenants: Annotated[int, typer.Option(help="Tenants loaded")] = 100,
    vehicles: Annotated[int, typer.Option(help="Vehicles loaded, over all tenants")] = 10_000,
    drivers: Annotated[int, typer.Option(help="Drivers loaded, over all tenants")] = 20_000,
    admin_url: Annotated[
        str, typer.Option(help="PostgreSQL URL allowed to create the scratch database")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
) -> None:
    """P50/P99/max latency and the rate reached, at a constant offered rate (open loop)."""
    results = asyncio.run(
        run_bench(admin_url, tenants, vehicles, drivers, rate, duration, repetitions)
    )
    typer.echo(
        f"{tenants} tenants, {vehicles:,} vehicles, {drivers:,} drivers; open loop at "
        f"{rate:.0f} requests/s, {repetitions} runs of {duration:.0f} s per target; latency "
        "from each request's scheduled send time"
    )
    typer.echo(format_table(results, rate))
