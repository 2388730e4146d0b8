"""Prometheus metrics of the cloud: ingest throughput, lag, ack latency, API latency.

One set of collectors per process (prometheus-client's default registry); every ingest
process and every API process serves its own ``/metrics``, and Prometheus sums them.
Metric names and the dashboard that reads them: docs/observability.md.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# Latency buckets from 5 ms to 10 s: ack latency is expected in tens of milliseconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

INGEST_MESSAGES = Counter(
    "fleetlink_ingest_messages",
    "MQTT messages the ingest committed and acked to the broker",
    ["worker"],
)
INGEST_OUTCOMES = Counter(
    "fleetlink_ingest_outcomes",
    "What committed chunks did, by counter (batches, samples, duplicates, dead_lettered, "
    "quarantined, unknown_device, wrong_tenant, refused, seq_jump, status, hellos, ...)",
    ["counter"],
)
INGEST_ACK_LATENCY = Histogram(
    "fleetlink_ingest_ack_latency_seconds",
    "From a message's arrival at the ingest to its ack (after commit)",
    buckets=_LATENCY_BUCKETS,
)
INGEST_COMMIT = Histogram(
    "fleetlink_ingest_commit_seconds",
    "Time to write and commit one chunk",
    buckets=_LATENCY_BUCKETS,
)
INGEST_CHUNK = Histogram(
    "fleetlink_ingest_chunk_messages",
    "Messages per committed chunk",
    buckets=(1, 5, 20, 50, 100, 200, 500, 1000, 2000),
)
INGEST_LAG = Gauge(
    "fleetlink_ingest_lag_seconds",
    "Age of the oldest message of the last committed chunk when it was committed",
    ["worker"],
)
INGEST_QUEUED = Gauge(
    "fleetlink_ingest_queued_messages",
    "Messages received and not yet committed",
    ["worker"],
)
INGEST_CONNECTED = Gauge(
    "fleetlink_ingest_connected",
    "1 while the worker is subscribed at the broker",
    ["worker"],
)
INGEST_INFLIGHT_WINDOW = Gauge(
    "fleetlink_ingest_inflight_window",
    "Unacked messages the broker may send this worker at once (the smaller of our receive "
    "maximum and the broker's per-client limit where the broker states it)",
    ["worker"],
)
INGEST_DB_FAILURES = Counter(
    "fleetlink_ingest_database_failures",
    "Chunk writes that failed for a database reason and were retried",
)
HTTP_LATENCY = Histogram(
    "fleetlink_http_request_seconds",
    "API request latency by route template, method and status class",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)


def exposition() -> tuple[bytes, str]:
    """Return the current metrics in the Prometheus text format and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
