"""What every end-to-end test sets up: a cloud service (API and ingest) on the test broker and
database with a tenant of its own, vehicles registered to devices, and agent processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg
from aiohttp import web

from fleetlink.cloud import registry
from fleetlink.cloud.app import create_app
from fleetlink.cloud.settings import CloudSettings
from tests.cloud.conftest import member_token
from tests.conftest import free_port


@dataclass
class EndToEndCloud:
    """A running cloud service, one tenant in it, and a database connection to check with."""

    tenant: str
    http_port: int
    conn: asyncpg.Connection

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api/v1"

    async def vehicle_for(self, device: str, name: str) -> uuid.UUID:
        """Register ``device`` and a vehicle called ``name``, assign one to the other, and
        return the vehicle's id."""
        await registry.create_device(self.conn, self.tenant, device)
        vehicle = await registry.create_vehicle(self.conn, self.tenant, name)
        await registry.assign_device(self.conn, device, vehicle)
        return vehicle

    async def viewer_token(self) -> str:
        return await member_token(self.conn, self.tenant, "viewer", scopes=("read",))


@contextlib.asynccontextmanager
async def cloud_with_tenant(
    database_url: str, mqtt_url: str, prefix: str
) -> AsyncIterator[EndToEndCloud]:
    """Serve the API and run the ingest (a share group of this test's own, so no other ingest
    on the shared broker takes its messages) for a new tenant named ``prefix`` + random."""
    tenant = f"{prefix}{uuid.uuid4().hex[:8]}"
    http_port = free_port()
    settings = CloudSettings(
        mode="demo",
        database_url=database_url,
        mqtt_url=mqtt_url,
        http_port=http_port,
        mqtt_client_id=f"ingest-{tenant}",
        mqtt_share_group=f"ingest-{tenant}",
    )
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", http_port).start()
        conn = await asyncpg.connect(database_url)
        try:
            await registry.ensure_tenant(conn, tenant)
            yield EndToEndCloud(tenant, http_port, conn)
        finally:
            await conn.close()
    finally:
        await runner.cleanup()


def spawn_agent(
    config: Path, log: Path, stdout: IO[bytes] | int = subprocess.DEVNULL, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``fleetlink edge run --config config``; its log goes to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "fleetlink.edge", "run", "--config", str(config)],
        stdout=stdout,
        stderr=log.open("ab"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=cwd,
    )


def stop_agent(agent: subprocess.Popen[bytes] | None, timeout_s: float = 20) -> None:
    """Kill ``agent`` if it is still running (the end of a test that failed midway)."""
    if agent is not None and agent.poll() is None:
        agent.kill()
        agent.wait(timeout=timeout_s)
