"""The benchmark's load generator is open loop: a slow server shows as latency, not as a
slower client."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from fleetlink.simulator.bench.load import RequestSpec, format_table, run_open_loop

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_stalled_server_shows_in_latency_from_the_scheduled_time(aiohttp_server) -> None:
    stalled = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        if not stalled.is_set():
            stalled.set()
            await asyncio.sleep(0.5)  # the first request holds the only connection
        return web.Response(text="ok")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/missing", missing)
    server = await aiohttp_server(app)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        result = await run_open_loop(
            session,
            [RequestSpec("GET", str(server.make_url("/slow")))],
            rate_per_s=50,
            duration_s=1,
        )
        assert result.scheduled == 50 and result.completed == 50
        # Requests due during the stall waited for the connection: their latency counts the wait.
        assert result.max_ms >= 400 and sorted(result.latencies_ms)[-10] >= 200
        errors = await run_open_loop(
            session, [RequestSpec("GET", str(server.make_url("/missing")))], 20, 0.5
        )
    assert errors.errors["404"] == 10 and errors.completed == 0
    table = format_table({"slow": [result, result]}, 50)
    assert "P99 ms" in table and table.splitlines()[1].startswith("slow")
