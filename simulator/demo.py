"""``fleetlink demo``: the whole stack on one machine, on embedded defaults.

Starts PostgreSQL (pgserver, embedded) and an MQTT broker (amqtt, in process)
unless ``FLEETLINK_DATABASE_URL`` / ``FLEETLINK_MQTT_URL`` name real ones, the
cloud service, and N simulated vehicles, each with its own ELM327 on a
pseudo-terminal read by its own edge agent process. Prints what runs where,
then the samples stored per vehicle, until Ctrl-C or ``--duration``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import typer
from aiohttp import web

from fleetlink.cloud import registry
from fleetlink.cloud.app import create_app
from fleetlink.cloud.auth import accounts
from fleetlink.cloud.auth.api_tokens import create_token
from fleetlink.cloud.auth.passwords import hash_password
from fleetlink.cloud.auth.permissions import Role
from fleetlink.cloud.records.field_crypto import generate_key_ring_entry
from fleetlink.cloud.settings import CloudSettings
from fleetlink.simulator.fleet import SimulatedVehicle

app = typer.Typer()


class DemoError(RuntimeError):
    """Raised when the demo cannot start; the message says what to change."""


TENANT = "demo"
# The ingest's counters worth showing when they move (see cloud/ingest/store.py).
_PROBLEM_COUNTERS = {
    "dead_lettered": "dead-lettered",
    "unknown_device": "refused (unknown device)",
    "wrong_tenant": "refused (wrong tenant)",
    "duplicates": "duplicates dropped",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Vehicle:
    device_id: str
    name: str
    sim: SimulatedVehicle
    config: Path
    agent: subprocess.Popen[bytes] | None = None
    # The port of this vehicle's cab display page (the driver's alerts).
    display_port: int = 0


@contextlib.asynccontextmanager
async def _database(workdir: Path) -> AsyncIterator[str]:
    url = os.environ.get("FLEETLINK_DATABASE_URL")
    if url:
        yield url
        return
    # pgserver asks platformdirs for a runtime folder, which warns where XDG_RUNTIME_DIR is unset
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver  # embedded PostgreSQL, demo only

    server = await asyncio.to_thread(pgserver.get_server, workdir / "pg", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        await asyncio.to_thread(server.cleanup)


@contextlib.asynccontextmanager
async def _broker() -> AsyncIterator[tuple[str, str]]:
    """Yield the broker's URL and the MQTT version agents should use with it."""
    url = os.environ.get("FLEETLINK_MQTT_URL")
    if url:
        yield url, "auto"
        return
    from amqtt.broker import Broker  # embedded MQTT 3.1.1 broker, demo only

    # amqtt logs every refused MQTT 5 probe (agents and ingest try v5 first, then fall back)
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    port = _free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
    )
    await broker.start()
    try:
        yield f"mqtt://127.0.0.1:{port}", "3.1.1"  # amqtt speaks MQTT 3.1.1 only
    finally:
        await broker.shutdown()


def _agent_config(
    path: Path,
    device_id: str,
    mqtt_url: str,
    mqtt_protocol: str,
    port: str,
    key: bytes,
    gps_port: str | None = None,
    display_port: int = 0,
) -> None:
    gps = f'\n[gps]\nnmea_port = "{gps_port}"\n' if gps_port else ""
    path.write_text(
        f"""[device]
id = "{device_id}"
tenant = "{TENANT}"
key = "{key.hex()}"

[mqtt]
url = "{mqtt_url}"
protocol = "{mqtt_protocol}"

[obd]
port = "{port}"
profile = "generic-obd2"
{gps}
[outbox]
path = "{device_id}.sqlite3"
batch_interval_s = 1.0

[alerts]
display_port = {display_port}
""",
        encoding="utf-8",
    )


@dataclass(frozen=True)
class _Access:
    """How the person running the demo gets in: a fresh password and API token each run."""

    email: str
    password: str
    token: str


async def _register(
    database_url: str, vehicles: list[_Vehicle]
) -> tuple[_Access, dict[str, bytes]]:
    """Register the demo's devices and vehicles and its owner; return how the owner gets in
    and each device's (new) key."""
    conn = await asyncpg.connect(database_url)
    try:
        await registry.ensure_tenant(conn, TENANT, "Demo fleet")
        access = await _demo_admin(conn)
        known = {r["id"] for r in await conn.fetch("SELECT id FROM devices")}
        for v in vehicles:
            if v.device_id in known:
                continue
            await registry.create_device(conn, TENANT, v.device_id)
            vehicle_id = await registry.create_vehicle(conn, TENANT, v.name, vin=v.sim.vin)
            await registry.assign_device(conn, v.device_id, vehicle_id)
        keys = {v.device_id: await registry.issue_device_key(conn, v.device_id) for v in vehicles}
    finally:
        await conn.close()
    return access, keys


async def _demo_admin(conn: asyncpg.Connection) -> _Access:
    email = "admin@demo.example"
    password = secrets.token_urlsafe(12)
    existing = await accounts.member(conn, TENANT, email)
    if existing is None:
        user_id = await accounts.add_user(conn, TENANT, email, Role.OWNER, password, "Demo admin")
    else:  # a demo on an external database it ran on before: a new password for this run
        user_id = existing.user_id
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, hash_password(password)
        )
    _, token = await create_token(conn, TENANT, user_id, name="fleetlink demo")
    return _Access(email, password, token)


async def _progress(database_url: str, vehicles: list[_Vehicle], started: float) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            await asyncio.sleep(2.0)
            rows = await conn.fetch(
                "SELECT device_id, sum(sample_count)::bigint AS n, count(*) AS batches "
                "FROM ingested_batches WHERE tenant_id = $1 GROUP BY device_id",
                TENANT,
            )
            stored = {r["device_id"]: (r["n"] or 0, r["batches"]) for r in rows}
            parts = [
                f"{v.name}: {stored.get(v.device_id, (0, 0))[0]:>6} samples"
                f" / {stored.get(v.device_id, (0, 0))[1]:>4} batches"
                for v in vehicles
            ]
            problems = await conn.fetch(
                "SELECT name, count FROM ingest_counters WHERE count > 0 AND name = ANY($1)",
                list(_PROBLEM_COUNTERS),
            )
            parts += [f"{_PROBLEM_COUNTERS[r['name']]}: {r['count']}" for r in problems]
            typer.echo(f"[{time.monotonic() - started:6.0f}s] " + " | ".join(parts))
    finally:
        await conn.close()


async def run_demo(
    vehicle_count: int, duration_s: float | None, http_port: int, keep: bool = False
) -> None:
    """Run the demo until cancelled or ``duration_s`` passes; everything it starts, it stops.

    The work folder (database, agent configs, outboxes, logs) is removed unless ``keep``.
    """
    workdir = Path(tempfile.mkdtemp(prefix="fleetlink-demo-"))
    try:
        await _run_in(workdir, vehicle_count, duration_s, http_port)
    finally:
        if keep:
            typer.echo(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    typer.echo("demo stopped")


async def _run_in(
    workdir: Path, vehicle_count: int, duration_s: float | None, http_port: int
) -> None:
    async with _database(workdir) as database_url, _broker() as (mqtt_url, mqtt_protocol):
        settings = CloudSettings(
            mode="demo",
            database_url=database_url,
            mqtt_url=mqtt_url,
            http_port=http_port,
            field_keys=generate_key_ring_entry("demo"),  # lives as long as the demo's data
        )
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        vehicles: list[_Vehicle] = []
        try:
            site = web.TCPSite(runner, settings.http_host, http_port)
            try:
                await site.start()
            except OSError as exc:
                raise DemoError(
                    f"cannot serve the API on {settings.http_host}:{http_port} ({exc.strerror}); "
                    "choose another port with --port"
                ) from None
            for i in range(1, vehicle_count + 1):
                sim = SimulatedVehicle(seed=i, style=(i - 1) / max(1, vehicle_count - 1), gps=True)
                device_id = f"demo-device-{i:03d}"
                config = workdir / f"{device_id}.toml"
                vehicles.append(
                    _Vehicle(device_id, f"Vehicle {i}", sim, config, display_port=_free_port())
                )
            access, keys = await _register(database_url, vehicles)
            for v in vehicles:
                port = v.sim.start()
                _agent_config(
                    v.config,
                    v.device_id,
                    mqtt_url,
                    mqtt_protocol,
                    port,
                    keys[v.device_id],
                    v.sim.gps_port,
                    v.display_port,
                )
            for v in vehicles:
                v.agent = subprocess.Popen(
                    [sys.executable, "-m", "fleetlink.edge", "run", "--config", str(v.config)],
                    stdout=subprocess.DEVNULL,
                    stderr=(workdir / f"{v.device_id}.log").open("wb"),
                    start_new_session=True,  # Ctrl-C reaches the demo, which stops agents in order
                )
            _print_plan(settings, database_url, mqtt_url, vehicles, workdir, access)
            started = time.monotonic()
            progress = asyncio.create_task(_progress(database_url, vehicles, started))
            try:
                await _until_stopped(duration_s)
            finally:
                progress.cancel()
        finally:
            for v in vehicles:
                if v.agent is not None and v.agent.poll() is None:
                    v.agent.send_signal(signal.SIGTERM)
            for v in vehicles:
                if v.agent is not None:
                    try:
                        await asyncio.to_thread(v.agent.wait, 15)
                    except subprocess.TimeoutExpired:
                        v.agent.kill()
                v.sim.stop()
            await runner.cleanup()


async def _until_stopped(duration_s: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration_s)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    typer.echo("stopping: agents flush their outboxes, then the cloud, broker and database stop")


def _print_plan(
    settings: CloudSettings,
    database_url: str,
    mqtt_url: str,
    vehicles: list[_Vehicle],
    workdir: Path,
    access: _Access,
) -> None:
    from fleetlink.cloud.settings import redact_url

    base = f"http://{settings.http_host}:{settings.http_port}"
    api = f"{base}/api/v1"
    typer.echo(f"portal     {base}/portal/  (the vehicles move on {base}/portal/map)")
    typer.echo(f"database   {redact_url(database_url)}")
    typer.echo(f"broker     {redact_url(mqtt_url)}")
    typer.echo(f"cloud API  {api}")
    typer.echo(f"log in     tenant {TENANT}, {access.email}, password {access.password}")
    typer.echo(f"API token  {access.token}")
    typer.echo(f'  try: curl -H "Authorization: Bearer {access.token}" {api}/vehicles')
    for v in vehicles:
        pid = v.agent.pid if v.agent else "-"
        typer.echo(
            f"{v.name}  ELM327 on {v.sim.port}  agent pid {pid}  device {v.device_id}  "
            f"cab display http://127.0.0.1:{v.display_port}/"
        )
    typer.echo(f"work dir   {workdir} (agent configs, outboxes, logs; --keep keeps it)")
    typer.echo("Ctrl-C stops everything.")


@app.callback(invoke_without_command=True)
def demo(
    vehicles: int = typer.Option(3, "--vehicles", "-n", min=1, max=50, help="Simulated vehicles."),
    duration: float | None = typer.Option(
        None, "--duration", min=1, help="Stop after this many seconds (default: run until Ctrl-C)."
    ),
    port: int = typer.Option(8080, "--port", help="Port of the cloud API on 127.0.0.1."),
    keep: bool = typer.Option(False, "--keep", help="Keep the work folder (logs, outboxes)."),
) -> None:
    """Run the cloud, a broker, a database and simulated vehicles with their agents."""
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_demo(vehicles, duration, port, keep))
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
