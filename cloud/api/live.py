"""``/api/v1/live``: the tenant's live stream as Server-Sent Events.

Authenticated at connect like every route (a browser's ``EventSource`` sends the session
cookie; other clients send a bearer token). Events: ``signals`` (a vehicle's newest values
from one committed batch), ``event`` (a device event), ``inbox`` (a new alert such as a
geofence crossing), ``reset`` (what was missed cannot be replayed: reload, then follow).
A client that does not keep up is disconnected; it reconnects with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web
from aiohttp_sse import EventSourceResponse
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import query_model
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import LIVE_HUB, SETTINGS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.live.hub import LiveFilter, LiveHub, LiveMessage, Subscriber
from fleetlink.shared.signals import BY_NAME

api = ResourceRoutes("live")
routes = api.routes

EVENTS = frozenset({"signals", "event", "inbox"})
_MAX_LIST = 100


class LiveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vehicles: str | None = Field(
        None, max_length=4000, description="Comma-separated vehicle UUIDs (default: all)"
    )
    signals: str | None = Field(
        None,
        max_length=4000,
        description="Comma-separated signal names such as Vehicle.Speed (default: all)",
    )
    events: str | None = Field(
        None,
        max_length=100,
        description="Comma-separated event kinds: signals, event, inbox (default: all)",
    )


def _items(value: str | None, name: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or len(items) > _MAX_LIST:
        raise ProblemError(400, f"{name}: give 1-{_MAX_LIST} comma-separated values")
    return items


def live_filter(query: LiveQuery) -> LiveFilter:
    """Return the filter a query asks for; raise ProblemError(400) naming a bad value."""
    vehicles = _items(query.vehicles, "vehicles")
    if vehicles is not None:
        try:
            vehicles = [str(uuid.UUID(v)) for v in vehicles]
        except ValueError:
            raise ProblemError(400, "vehicles: every value must be a vehicle UUID") from None
    signals = _items(query.signals, "signals")
    for name in signals or ():
        if name not in BY_NAME:
            raise ProblemError(400, f"signals: {name!r} is not in the signal catalog")
    events = _items(query.events, "events")
    for kind in events or ():
        if kind not in EVENTS:
            raise ProblemError(400, f"events: {kind!r} is not one of {sorted(EVENTS)}")
    return LiveFilter(
        frozenset(vehicles) if vehicles is not None else None,
        frozenset(signals) if signals is not None else None,
        frozenset(events) if events is not None else None,
    )


@api.get(
    "/api/v1/live",
    summary="The tenant's live stream (text/event-stream), resumable with Last-Event-ID",
    response=None,
    permission=Permission.LIVE_READ,
    query=LiveQuery,
    errors=(400,),
    response_media_type="text/event-stream",
)
async def live(request: web.Request) -> web.StreamResponse:
    wanted = live_filter(query_model(request, LiveQuery))
    settings = request.app[SETTINGS]
    hub = request.app[LIVE_HUB]
    last_event_id = request.headers.get("Last-Event-ID")
    subscriber = hub.subscribe(principal_of(request).tenant_id, wanted, last_event_id)
    stream = EventSourceResponse(
        ping_interval=settings.live_ping_s,
        send_timeout=settings.live_send_timeout_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    transport = request.transport
    if transport is not None:
        subscriber.on_drop = transport.abort
    try:
        await stream.prepare(request)
        async with stream:
            if subscriber.reset:
                await stream.send('{"reason":"missed messages are no longer held"}', event="reset")
            else:
                await stream.write(b": live\n\n")  # sends the headers aiohttp holds back
            if transport is not None and not subscriber.dropped:
                _deliver_directly(
                    hub, subscriber, stream, transport, settings.live_client_buffer_bytes
                )
            # Only the end of the stream comes through the queue now; a client that went away
            # ends the stream's pings (stream.wait()) or the next write to it.
            ended = asyncio.ensure_future(subscriber.next())
            pinging = asyncio.ensure_future(stream.wait())
            await asyncio.wait((ended, pinging), return_when=asyncio.FIRST_COMPLETED)
            for task in (ended, pinging):
                task.cancel()
    except (ConnectionResetError, TimeoutError):
        pass  # the client went away or stalled; nothing to answer
    finally:
        hub.unsubscribe(subscriber)
    return stream


def _deliver_directly(
    hub: LiveHub,
    subscriber: Subscriber,
    stream: EventSourceResponse,
    transport: asyncio.Transport,
    limit_bytes: int,
) -> None:
    """Switch the subscriber to writing each message straight into its connection.

    The hub then writes every client's copy in its own publish call (the frame, and its HTTP
    chunk, serialised once), without waking a task per client. What the socket has not taken
    stays in the transport's buffer; above ``limit_bytes`` the client is too slow and dropped.
    What was queued since subscribing is written first, in order.
    """
    chunked = stream.chunked

    def deliver(message: LiveMessage) -> bool:
        if transport.is_closing():
            subscriber.closed = True
            return False
        if transport.get_write_buffer_size() > limit_bytes:
            return False
        transport.write(message.chunk if chunked else message.frame)
        return True

    while not subscriber.queue.empty():
        queued = subscriber.queue.get_nowait()
        if queued is None:
            subscriber.queue.put_nowait(None)
            return
        if not deliver(queued):
            hub.drop(subscriber)
            return
    subscriber.sink = deliver
