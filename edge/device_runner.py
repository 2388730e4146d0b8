"""Runs the agent as a service: until SIGINT or SIGTERM, restarting it into an update the
cloud pushed, and back to the previous version if the update does not start.

The agent core (``edge/agent.py``) knows nothing of updates; this module builds an Agent
from the configuration with the active updates in force, hands the cloud's commands to the
:class:`~fleetlink.edge.updates.Updater`, and reports each outcome as an event.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from fleetlink.edge.agent import Agent
from fleetlink.edge.config import ConfigError, DeviceConfig
from fleetlink.edge.outbox import OutboxError
from fleetlink.edge.updates import (
    Updater,
    apply_active,
    event_payload,
    result_event,
    running_versions,
    settle_trial,
)
from fleetlink.edge.watchdog import Watchdog

log = logging.getLogger(__name__)


def _start(config: DeviceConfig, results: list[dict[str, str]]) -> Agent:
    """Return the agent for ``config`` with its active updates; an update on trial that does
    not start is switched back (and reported) and the previous one started.

    Raises:
        ConfigError, OutboxError: the device's own configuration does not start.
    """
    try:
        agent = Agent(apply_active(config))
    except (ConfigError, OutboxError, OSError) as exc:
        result = settle_trial(config.updates, False, str(exc)) if config.updates else None
        if result is None:
            raise
        log.error(
            "the %s update does not start (%s); back to the previous one", result["kind"], exc
        )
        results.append(result)
        agent = Agent(apply_active(config))
    else:
        result = settle_trial(config.updates, True) if config.updates else None
        if result is not None:
            results.append(result)
    return agent


async def run_device_async(
    config: DeviceConfig, stop: asyncio.Event, watchdog: Watchdog | None = None
) -> None:
    """Run the agent until ``stop`` is set, restarting it into each accepted update; tell
    systemd (``watchdog``) when it is ready, alive and stopping."""
    watchdog = watchdog or Watchdog()
    while not stop.is_set():
        results: list[dict[str, str]] = []
        agent = _start(config, results)
        agent.heartbeat = watchdog.pet
        if agent.config.obd is not None:
            agent.uplink.running["profile"] = agent.config.obd.profile
        agent.uplink.running["versions"] = running_versions(config.updates)
        restart = asyncio.Event()
        updater = Updater(config) if config.updates is not None else None

        def report(result: dict[str, str], agent: Agent = agent) -> None:
            agent.outbox.add("events", event_payload(config.device.id, [result_event(result)]))
            agent.uplink.wake()

        def on_command(
            payload: bytes,
            restart: asyncio.Event = restart,
            updater: Updater | None = updater,
            report: Callable[[dict[str, str]], None] = report,
        ) -> None:
            if updater is None:
                log.warning("an update arrived, but [updates] is not configured; ignored")
                return
            handled = updater.handle(payload)
            if handled is None:
                return
            command, outcome, reason = handled
            if outcome == "applied":
                restart.set()
                return
            report(
                {
                    "command_id": str(command.command_id) if command else "",
                    "kind": command.kind if command else "",
                    "version": command.version if command else "",
                    "outcome": outcome,
                    "reason": reason,
                }
            )

        agent.uplink.on_command = on_command
        for result in results:
            report(result)
        run_stop = asyncio.Event()
        waiters = [
            asyncio.create_task(stop.wait()),
            asyncio.create_task(restart.wait()),
        ]
        runner = asyncio.create_task(agent.run(run_stop))
        await asyncio.wait([runner, *waiters], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            watchdog.stopping()
        run_stop.set()
        for waiter in waiters:
            waiter.cancel()
        await runner
        if restart.is_set() and not stop.is_set():
            log.info("restarting the agent into the update")


def run_device(config: DeviceConfig) -> None:
    """Run the agent in a new event loop until SIGINT or SIGTERM; return after a clean stop."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_device_async(config, stop)

    asyncio.run(main())
