"""``fleetlink cloud …``: run the service, migrate, and manage the registry."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import asyncpg
import typer
from aiohttp import web
from pydantic import ValidationError

from fleetlink.cloud import audit, gc_tuning, registry
from fleetlink.cloud.auth.accounts import AccountError, add_user, member
from fleetlink.cloud.auth.api_tokens import SCOPES, TokenError, create_token, revoke_token
from fleetlink.cloud.auth.passwords import WeakPasswordError
from fleetlink.cloud.auth.permissions import Role
from fleetlink.cloud.db.migrate import migrate_url
from fleetlink.cloud.records.field_crypto import (
    FieldCipher,
    FieldCryptoError,
    generate_key_ring_entry,
)
from fleetlink.cloud.settings import CloudSettings
from fleetlink.shared.logs import configure_logging

T = TypeVar("T")

app = typer.Typer(help="The Fleetlink cloud: ingest, REST API and registry.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
device_app = typer.Typer(help="Devices.", no_args_is_help=True)
vehicle_app = typer.Typer(help="Vehicles.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(device_app, name="device")
app.add_typer(vehicle_app, name="vehicle")
user_app = typer.Typer(help="Users and their roles in tenants.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
keys_app = typer.Typer(help="The key ring of personal fields.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


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
    except (
        registry.RegistryError,
        AccountError,
        WeakPasswordError,
        TokenError,
        asyncpg.PostgresError,
        OSError,
    ) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (FLEETLINK_HTTP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (FLEETLINK_HTTP_PORT)")] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="API processes sharing the port; the first also runs the ingest and the jobs, "
            "live updates reach all of them through PostgreSQL NOTIFY",
        ),
    ] = 1,
    reuse_port: Annotated[
        bool, typer.Option(hidden=True, help="Listen with SO_REUSEPORT (one of the processes)")
    ] = False,
) -> None:
    """Run the REST API and the MQTT ingest until interrupted."""
    settings = _settings()
    host = host or settings.http_host
    port = port if port is not None else settings.http_port
    if processes > 1:
        from fleetlink.cloud.replicas import ReplicaError, run_replicas

        try:
            raise typer.Exit(run_replicas(host, port, processes))
        except ReplicaError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    from fleetlink.cloud.app import create_app

    served = create_app(settings)
    gc_tuning.tune(settings.gc_young_threshold)
    web.run_app(served, host=host, port=port, print=None, reuse_port=reuse_port)


@app.command()
def ingest(
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Ingest processes on one shared subscription (FLEETLINK_INGEST_PROCESSES)",
        ),
    ] = None,
) -> None:
    """Run only the MQTT ingest (no API), in one or several processes, each serving /healthz,
    /readyz and /metrics on FLEETLINK_INGEST_METRICS_PORT (+ its index)."""
    from fleetlink.cloud.ingest.process import create_ingest_app
    from fleetlink.cloud.ingest.processes import process_count, supervise

    settings = _settings()
    if settings.ingest_workers == 0:
        settings = settings.model_copy(update={"ingest_workers": 1})
    count = process_count(settings, processes or settings.ingest_processes)
    if count > 1:
        raise typer.Exit(supervise(settings, count))
    ingesting = create_ingest_app(settings)
    gc_tuning.tune(settings.ingest_gc_young_threshold)
    web.run_app(
        ingesting,
        host=settings.http_host,
        port=settings.ingest_metrics_port,
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


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("add")
def user_add(
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    email: Annotated[str, typer.Option(help="The user's e-mail (their login)")],
    role: Annotated[Role, typer.Option(help="Role in the tenant")],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No password: the user logs in by token only")
    ] = False,
) -> None:
    """Make a user (new, or existing by e-mail) a member of a tenant with a role."""
    password = None if no_password else _read_password(password_stdin)

    async def action(conn: asyncpg.Connection) -> uuid.UUID:
        async with conn.transaction():
            user_id = await add_user(conn, tenant, email, role, password, name)
            await audit.record(
                conn,
                tenant,
                "operator (cli)",
                "add_member",
                "user",
                user_id,
                after={"email": email, "role": role.value},
            )
        return user_id

    typer.echo(_with_connection(action))


@token_app.command("create")
def token_create(
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    email: Annotated[str, typer.Option(help="The member the token acts as")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"Scope, repeatable: {', '.join(SCOPES)} (default both)"),
    ] = None,
    expires: Annotated[
        datetime | None, typer.Option(help="Expiry, ISO 8601 (UTC if no zone); default never")
    ] = None,
    name: Annotated[str, typer.Option(help="What the token is for")] = "",
) -> None:
    """Create an API token and print it (it is shown this once)."""
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)

    async def action(conn: asyncpg.Connection) -> str:
        found = await member(conn, tenant, email)
        if found is None:
            raise AccountError(f"{email} is not a member of {tenant!r}")
        async with conn.transaction():
            token_id, text = await create_token(
                conn,
                tenant,
                found.user_id,
                name=name,
                scopes=tuple(scope or SCOPES),
                expires_at=expires,
            )
            await audit.record(
                conn,
                tenant,
                "operator (cli)",
                "create_token",
                "token",
                token_id,
                after={"email": found.email, "scopes": sorted(scope or SCOPES)},
            )
        return text

    typer.echo(_with_connection(action))


@token_app.command("revoke")
def token_revoke(
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    token_id: Annotated[uuid.UUID, typer.Argument(help="The token's id (flt_<id>_…)")],
) -> None:
    """Revoke an API token; it stops working at once."""

    async def action(conn: asyncpg.Connection) -> bool:
        async with conn.transaction():
            done = await revoke_token(conn, tenant, token_id)
            if done:
                await audit.record(
                    conn, tenant, "operator (cli)", "revoke_token", "token", token_id
                )
        return done

    if not _with_connection(action):
        typer.echo(f"error: tenant {tenant!r} has no live token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")


@keys_app.command("new")
def keys_new(
    key_id: Annotated[str, typer.Option("--id", help="Name of the new key")] = "",
) -> None:
    """Print a new key ring entry (id:base64key) to put first in FLEETLINK_FIELD_KEYS."""
    key_id = key_id or datetime.now(UTC).strftime("k%Y%m%d")
    try:
        typer.echo(generate_key_ring_entry(key_id))
    except FieldCryptoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


# Encrypted columns of tenant tables, and the prefix of their context (prefix:tenant:id).
_ENCRYPTED = (
    ("drivers", "licence_number_enc", "drivers.licence_number"),
    ("drivers", "phone_enc", "drivers.phone"),
    ("webhooks", "secret_enc", "webhooks.secret"),  # notify.webhooks.secret_context
)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every personal field, TOTP secret and webhook signing secret with the first
    key of FLEETLINK_FIELD_KEYS.

    Run it after putting a new key first; when it reports nothing left, the old keys can go.
    """
    settings = _settings()
    if settings.field_keys is None:
        typer.echo("error: FLEETLINK_FIELD_KEYS is not set", err=True)
        raise typer.Exit(2)
    try:
        cipher = FieldCipher.from_env_value(settings.field_keys.get_secret_value())
    except FieldCryptoError as exc:
        typer.echo(f"error: FLEETLINK_FIELD_KEYS: {exc}", err=True)
        raise typer.Exit(2) from None

    async def action(conn: asyncpg.Connection) -> int:
        changed = 0
        async with conn.transaction():
            for table, column, prefix in _ENCRYPTED:
                rows = await conn.fetch(
                    f"SELECT id, tenant_id, {column} AS token FROM {table} "
                    f"WHERE {column} IS NOT NULL FOR UPDATE"
                )
                for row in rows:
                    if not cipher.needs_rotation(row["token"]):
                        continue
                    context = f"{prefix}:{row['tenant_id']}:{row['id']}"
                    try:
                        plain = cipher.decrypt(row["token"], context)
                    except FieldCryptoError as exc:
                        raise FieldCryptoError(f"{table} {row['id']} {column}: {exc}") from None
                    fresh = cipher.encrypt(plain, context)
                    await conn.execute(
                        f"UPDATE {table} SET {column} = $2 WHERE id = $1", row["id"], fresh
                    )
                    changed += 1
            rows = await conn.fetch(
                "SELECT id, totp_secret_enc AS token FROM users "
                "WHERE totp_secret_enc IS NOT NULL FOR UPDATE"
            )
            for row in rows:
                if cipher.needs_rotation(row["token"]):
                    context = f"users.totp:{row['id']}"
                    fresh = cipher.encrypt(cipher.decrypt(row["token"], context), context)
                    await conn.execute(
                        "UPDATE users SET totp_secret_enc = $2 WHERE id = $1", row["id"], fresh
                    )
                    changed += 1
        return changed

    try:
        changed = _with_connection(action)
    except FieldCryptoError as exc:
        typer.echo(
            f"error: {exc}; nothing was changed. Is every key still in FLEETLINK_FIELD_KEYS?",
            err=True,
        )
        raise typer.Exit(1) from None
    typer.echo(
        f"re-encrypted {changed} field(s) with key {cipher.active!r}; nothing else uses older keys"
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


enrollment_app = typer.Typer(
    help="One-time enrollment tokens for new devices.", no_args_is_help=True
)
app.add_typer(enrollment_app, name="enrollment")
broker_app = typer.Typer(help="The broker's per-device logins and ACL.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")


@enrollment_app.command("create")
def enrollment_create(
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    vehicle: Annotated[
        uuid.UUID | None, typer.Option(help="Only this vehicle may be enrolled with it")
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(min=0.01, help="Lifetime (default FLEETLINK_ENROLLMENT_TOKEN_HOURS)"),
    ] = None,
    label: Annotated[str, typer.Option(help="What the token is for")] = "",
) -> None:
    """Create a one-time enrollment token and print it (it is shown this once)."""
    from fleetlink.cloud import enrollment

    settings = _settings()

    async def action(conn: asyncpg.Connection) -> enrollment.NewToken:
        async with conn.transaction():
            made = await enrollment.create_token(
                conn,
                tenant,
                "operator (cli)",
                enrollment.token_lifetime(settings, hours),
                vehicle,
                label,
            )
            await audit.record(
                conn, tenant, "operator (cli)", "create", "enrollment_token", made.id
            )
        return made

    try:
        made = _with_connection(action)
    except enrollment.EnrollmentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(made.secret)
    typer.echo(f"# one device, until {made.expires_at:%Y-%m-%d %H:%M} UTC", err=True)


@enrollment_app.command("list")
def enrollment_list(tenant: Annotated[str, typer.Option(help="Tenant id")]) -> None:
    """List a tenant's enrollment tokens (never their secrets)."""
    rows = _with_connection(
        lambda c: c.fetch(
            "SELECT id, label, vehicle_id, expires_at, used_by, revoked_at, used_at "
            "FROM enrollment_tokens WHERE tenant_id = $1 ORDER BY created_at DESC",
            tenant,
        )
    )
    now = datetime.now(UTC)
    for r in rows:
        state = (
            "revoked"
            if r["revoked_at"]
            else f"used by {r['used_by']}"
            if r["used_at"]
            else "expired"
            if r["expires_at"] <= now
            else "open"
        )
        typer.echo(f"{r['id']}  {state:<24} {r['vehicle_id'] or '-'}  {r['label']}")


@enrollment_app.command("revoke")
def enrollment_revoke(
    tenant: Annotated[str, typer.Option(help="Tenant id")], token_id: uuid.UUID
) -> None:
    """Revoke an enrollment token."""
    from fleetlink.cloud import enrollment

    if not _with_connection(lambda c: enrollment.revoke_token(c, tenant, token_id)):
        typer.echo(f"error: tenant {tenant!r} has no enrollment token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")


@broker_app.command("sync")
def broker_sync() -> None:
    """Write the broker's password file and ACL from the registry (FLEETLINK_BROKER_PASSWD_FILE,
    FLEETLINK_BROKER_ACL_FILE) and send SIGHUP to FLEETLINK_BROKER_PID_FILE's mosquitto."""
    from fleetlink.cloud import enrollment
    from fleetlink.cloud.broker_identity import BrokerFilesError

    settings = _settings()
    try:
        written = _with_connection(lambda c: enrollment.sync_broker(c, settings))
    except BrokerFilesError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if not written:
        typer.echo(
            "error: set FLEETLINK_BROKER_PASSWD_FILE and FLEETLINK_BROKER_ACL_FILE", err=True
        )
        raise typer.Exit(2)
    typer.echo(f"wrote {settings.broker_passwd_file} and {settings.broker_acl_file}")


@device_app.command("remove")
def device_remove(tenant: Annotated[str, typer.Option(help="Tenant id")], device_id: str) -> None:
    """Take a device out of service: end its assignment and revoke its broker login (run
    `fleetlink cloud broker sync` after, unless the service writes the broker's files)."""
    from fleetlink.cloud import enrollment

    async def action(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await enrollment.remove_device(conn, tenant, device_id)
            await audit.record(conn, tenant, "operator (cli)", "remove", "device", device_id)

    try:
        _with_connection(action)
    except enrollment.EnrollmentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"removed {device_id}")


@keys_app.command("update-key")
def keys_update_key() -> None:
    """Print a new Ed25519 update signing key for FLEETLINK_UPDATE_SIGNING_KEY, and its public
    half (devices receive it at enrollment)."""
    from fleetlink.shared.updates import new_private_hex, private_key, public_hex

    secret = new_private_hex()
    typer.echo(secret)
    typer.echo(f"# public key: {public_hex(private_key(secret))}", err=True)
