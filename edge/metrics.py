"""The agent's Prometheus metrics on a localhost port (``[metrics] port`` in the device TOML).

Off by default: a vehicle gateway opens no listening socket unless asked. When on, it listens
on 127.0.0.1 only (a local node exporter or Prometheus agent scrapes it and forwards). Values
are read from the agent when scraped: outbox depth, batches published and not yet acked,
publish/ack/resend counts (rates in Prometheus), and the adapter's link state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fleetlink.edge.sources.base import AdapterState

if TYPE_CHECKING:
    from fleetlink.edge.agent import Agent

log = logging.getLogger(__name__)

ADAPTER_STATES = get_args(AdapterState)
_UPLINK_COUNTERS = ("published", "republished", "acked", "acks_rejected")


class AgentCollector(Collector):
    """Reads the agent's state at each scrape."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self._agent
        depth = GaugeMetricFamily(
            "fleetlink_agent_outbox_batches", "Batches held in the outbox (not yet acked)"
        )
        depth.add_metric([], len(agent.outbox))
        yield depth
        held = GaugeMetricFamily(
            "fleetlink_agent_outbox_bytes", "Bytes the outbox's batches take on disk"
        )
        held.add_metric([], agent.outbox.stored_bytes)
        yield held
        unacked = GaugeMetricFamily(
            "fleetlink_agent_unacked", "Batches published and waiting for the cloud's ack"
        )
        unacked.add_metric([], agent.uplink.unacked)
        yield unacked
        uplink = CounterMetricFamily(
            "fleetlink_agent_uplink",
            "Uplink events: published, republished, acked, ...",
            labels=["event"],
        )
        for name in _UPLINK_COUNTERS:
            uplink.add_metric([name], agent.uplink.counters[name])
        yield uplink
        connected = GaugeMetricFamily(
            "fleetlink_agent_broker_connected", "1 while the agent is connected to the broker"
        )
        connected.add_metric([], 1 if agent.uplink.ready else 0)
        yield connected
        state = GaugeMetricFamily(
            "fleetlink_agent_adapter_state",
            "1 for the adapter's current link state",
            labels=["state"],
        )
        current = agent.adapter_state()
        for name in sorted({*ADAPTER_STATES, current}):
            state.add_metric([name], 1 if name == current else 0)
        yield state


def serve_metrics(agent: Agent, port: int) -> object:
    """Serve the agent's metrics on 127.0.0.1:``port``; return the server (``shutdown()``).

    Raises OSError if the port cannot be bound.
    """
    registry = CollectorRegistry()
    registry.register(AgentCollector(agent))
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    log.info("agent metrics on http://127.0.0.1:%d/metrics", port)
    return server
