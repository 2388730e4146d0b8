"""Schema migrations: ``cloud/migrations/NNNN_name.sql`` applied in order, each exactly once.

Each file runs in its own transaction together with its row in ``schema_migrations``;
a session advisory lock serialises concurrent migrators (two services starting at once).
After the files, the ``signals`` reference table is brought in line with the catalog.

A file in ``cloud/migrations/timescaledb/`` replaces the main file of the same version when the
database has TimescaleDB (cloud/db/backend.py): the backends differ only there (D92).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from fleetlink.cloud.db.backend import Backend, storage_backend
from fleetlink.shared.signals import all_signals

log = logging.getLogger(__name__)

_LOCK_KEY = 0x666C_6D69_6772  # "flmigr"
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """Raised when a migration file fails; the message names the file."""


# Below this line a migration holds statements that cannot run in a transaction (TimescaleDB's
# refresh of a continuous aggregate): each runs on its own once the file has committed.
AFTER_COMMIT = "-- fleetlink: after commit"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def in_transaction(self) -> str:
        """Return the SQL that runs in the migration's transaction."""
        return self.sql.partition(AFTER_COMMIT)[0]

    @property
    def after_commit(self) -> list[str]:
        """Return the statements to run one by one after the transaction committed."""
        rest = self.sql.partition(AFTER_COMMIT)[2]
        lines = [ln for ln in rest.splitlines() if not ln.lstrip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _migrations_in(package: str) -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


def available_migrations(backend: Backend = "native") -> list[Migration]:
    """Return the packaged migrations for ``backend`` ordered by version; raise MigrationError
    on a bad name or on a backend file without a main file of its version."""
    found = {m.version: m for m in _migrations_in("fleetlink.cloud.migrations")}
    if backend == "timescaledb":
        for m in _migrations_in("fleetlink.cloud.migrations.timescaledb"):
            if m.version not in found:
                raise MigrationError(
                    f"timescaledb/{m.name} replaces no migration: add {m.version:04d}_*.sql"
                )
            found[m.version] = m
    return [found[v] for v in sorted(found)]


async def applied_versions(conn: asyncpg.Connection) -> list[int]:
    """Return the versions recorded in ``schema_migrations`` (empty before the first run)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [r["version"] for r in rows]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every pending migration and sync the signal catalog.

    Returns the names of the files applied by this call (empty when up to date).
    Raises MigrationError naming the file whose SQL failed; that file's changes are rolled back.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = set(await applied_versions(conn))
        applied: list[str] = []
        for migration in available_migrations(await storage_backend(conn)):
            if migration.version in done:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.in_transaction)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
            for statement in migration.after_commit:
                try:
                    await conn.execute(statement)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"migration {migration.name} committed, but its after-commit statement "
                        f"{statement!r} failed: {exc}; run it by hand"
                    ) from exc
            log.info("applied migration %s", migration.name)
            applied.append(migration.name)
        await sync_signal_catalog(conn)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def sync_signal_catalog(conn: asyncpg.Connection) -> None:
    """Insert or update one ``signals`` row per catalog entry."""
    await conn.executemany(
        """INSERT INTO signals (id, name, unit, description) VALUES ($1, $2, $3, $4)
           ON CONFLICT (id) DO UPDATE
           SET name = EXCLUDED.name, unit = EXCLUDED.unit, description = EXCLUDED.description""",
        [(s.id, s.name, s.unit, s.description) for s in all_signals()],
    )


async def migrate_url(dsn: str) -> list[str]:
    """Connect to ``dsn``, apply pending migrations, close; return the files applied."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
