"""``fleetlink cloud …``: run the service, migrate, and manage the registry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import asyncpg
import typer
from aiohttp import web
from pydantic import ValidationError

from fleetlink.cloud import registry
from fleetlink.cloud.db.migrate import migrate_url
from fleetlink.cloud.settings import CloudSettings, SettingsError
from fleetlink.shared.logs import configure_logging

T = TypeVar("T")

app = typer.Typer(help="The Fleetlink cloud: ingest, REST API and registry.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
device_app = typer.Typer(help="Devices.", no_args_is_help=True)
vehicle_app = typer.Typer(help="Vehicles.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(device_app, name="device")
app.add_typer(vehicle_app, name="vehicle")


def _settings() -> CloudSettings:
    try:
        settings = CloudSettings()
    except ValidationError as exc:
        for error in exc.errors():
            where = f"FLEETLINK_{str(error['loc'][0]).upper()}: " if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            typer.echo(f"error: {where}{message}", err=True)
        raise typer.Exit(2) from None
    configure_logging(json_output=settings.log_json, level=settings.log_level)
    return settings


def _with_connection(action: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        conn = await asyncpg.connect(_settings().database_dsn())
        try:
            return await action(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except (registry.RegistryError, asyncpg.PostgresError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (FLEETLINK_HTTP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (FLEETLINK_HTTP_PORT)")] = None,
) -> None:
    """Run the REST API and the MQTT ingest until interrupted."""
    from fleetlink.cloud.app import create_app

    settings = _settings()
    try:
        settings.check_bind(host or settings.http_host)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    web.run_app(
        create_app(settings),
        host=host or settings.http_host,
        port=port if port is not None else settings.http_port,
        print=None,
    )


@app.command()
def migrate() -> None:
    """Apply pending database migrations."""
    applied = asyncio.run(migrate_url(_settings().database_dsn()))
    typer.echo("\n".join(applied) if applied else "database schema is up to date")


@tenant_app.command("add")
def tenant_add(
    tenant_id: str, name: Annotated[str | None, typer.Option(help="Display name")] = None
) -> None:
    """Create a tenant."""
    typer.echo(_with_connection(lambda c: registry.create_tenant(c, tenant_id, name)))


def _print_key(device_id: str, key: bytes) -> None:
    typer.echo(f"{device_id}")
    typer.echo(f'key = "{key.hex()}"')
    typer.echo(
        "# put the key line in the [device] section of this device's config; it is shown only now",
        err=True,
    )


@device_app.command("add")
def device_add(
    tenant_id: str, device_id: str, name: Annotated[str, typer.Option(help="Label")] = ""
) -> None:
    """Register a device for a tenant and print its key (for signed acks) once."""

    async def add(conn: asyncpg.Connection) -> bytes:
        async with conn.transaction():
            await registry.create_device(conn, tenant_id, device_id, name)
            return await registry.issue_device_key(conn, device_id)

    _print_key(device_id, _with_connection(add))


@device_app.command("rotate-key")
def device_rotate_key(device_id: str) -> None:
    """Replace a device's key and print the new one once (the device ignores acks until its
    config has it)."""
    _print_key(device_id, _with_connection(lambda c: registry.issue_device_key(c, device_id)))


@vehicle_app.command("add")
def vehicle_add(
    tenant_id: str,
    name: str,
    vin: Annotated[str | None, typer.Option(help="17-character VIN")] = None,
) -> None:
    """Create a vehicle and print its id."""
    typer.echo(_with_connection(lambda c: registry.create_vehicle(c, tenant_id, name, vin)))


@app.command()
def assign(
    device_id: str,
    vehicle_id: uuid.UUID,
    at: Annotated[
        datetime | None, typer.Option(help="Start of the assignment, ISO 8601 (default now)")
    ] = None,
) -> None:
    """Install a device in a vehicle, ending its previous assignment."""
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    done = _with_connection(lambda c: registry.assign_device(c, device_id, vehicle_id, at))
    typer.echo(f"{done.device_id} -> {done.vehicle_id} from {done.valid_from.isoformat()}")


@app.command()
def counters() -> None:
    """Print the ingest's counters: batches, samples, duplicates, dead letters, refusals."""
    rows = _with_connection(
        lambda c: c.fetch("SELECT name, count FROM ingest_counters ORDER BY name")
    )
    for row in rows:
        typer.echo(f"{row['name']:<20} {row['count']:>12,}")


dead_letter_app = typer.Typer(
    help="Dead letters: list them (the default), replay the ones the rules now accept, prune.",
    invoke_without_command=True,
)
app.add_typer(dead_letter_app, name="dead-letters")


@dead_letter_app.callback()
def dead_letters(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first")] = 20,
) -> None:
    """Print the newest dead letters: when, topic, size, whether quarantined or replayed, why.

    The payloads themselves stay in the ``dead_letters`` table, verbatim.
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = _with_connection(
        lambda c: c.fetch(
            "SELECT id, received_at, topic, size, reason, quarantined, replayed_at "
            "FROM dead_letters ORDER BY id DESC LIMIT $1",
            limit,
        )
    )
    for row in rows:
        marks = ("quarantined", row["quarantined"]), ("replayed", row["replayed_at"])
        notes = "".join(f", {name}" for name, on in marks if on)
        typer.echo(
            f"#{row['id']} {row['received_at'].isoformat()} {row['topic']} "
            f"({row['size']} bytes{notes}): {row['reason']}"
        )


@dead_letter_app.command("replay")
def dead_letters_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Letter ids (default: all)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many letters")] = 1000,
    shift_s: Annotated[
        int,
        typer.Option(
            help="Move the times of quarantined batches by this many seconds first "
            "(a clock 2 days ahead: --shift-s -172800)"
        ),
    ] = 0,
) -> None:
    """Re-ingest the dead letters the current rules accept; the others stay."""
    from fleetlink.cloud.ingest.dead_letters import replay
    from fleetlink.cloud.ingest.worker import ingest_rules

    settings = _settings()

    async def run(conn: asyncpg.Connection) -> dict[str, int]:
        return dict(
            await replay(
                conn,
                ingest_rules(settings),
                ids=ids or None,
                limit=limit,
                shift_ms=shift_s * 1000,
                max_seq_jump=settings.ingest_max_seq_jump,
            )
        )

    outcome = _with_connection(run)
    typer.echo(
        f"replayed {outcome.get('replayed', 0)}, still refused by the rules "
        f"{outcome.get('still_refused', 0)}, refused by the registry {outcome.get('refused', 0)}"
    )


@dead_letter_app.command("prune")
def dead_letters_prune() -> None:
    """Apply the caps and retention now (the ingest does it every few seconds)."""
    from fleetlink.cloud.ingest.dead_letters import prune
    from fleetlink.cloud.ingest.worker import dead_letter_limits

    limits = dead_letter_limits(_settings())
    typer.echo(f"deleted {_with_connection(lambda c: prune(c, limits))} dead letters")
