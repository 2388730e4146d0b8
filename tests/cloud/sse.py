"""A small Server-Sent Events reader for the tests (and nothing the product ships)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class SseEvent:
    event: str
    id: str | None
    data: Any


async def read_events(
    response: aiohttp.ClientResponse, count: int, timeout_s: float = 10.0
) -> list[SseEvent]:
    """Return the next ``count`` events of an open SSE response (comments skipped)."""
    events: list[SseEvent] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(timeout_s):
        while len(events) < count:
            line = (await response.content.readline()).decode().rstrip("\r\n")
            if line == "":
                if "data" in fields:
                    events.append(
                        SseEvent(
                            fields.get("event", "message"),
                            fields.get("id"),
                            json.loads(fields["data"]),
                        )
                    )
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    return events
