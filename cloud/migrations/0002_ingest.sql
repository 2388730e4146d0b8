-- Daily partitions are created on demand by the ingest (cloud/ingest/partitions.py).
CREATE TABLE samples (
    tenant_id   text NOT NULL,
    vehicle_id  uuid,
    device_id   text NOT NULL,
    signal_id   smallint NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX samples_vehicle_signal_ts_idx ON samples (vehicle_id, signal_id, ts);

-- One row per (device, seq) ever accepted: the exactly-once guard, written in the same
-- transaction as the batch's rows.
CREATE TABLE ingested_batches (
    tenant_id     text NOT NULL,
    device_id     text NOT NULL,
    seq           bigint NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('telemetry', 'events')),
    received_at   timestamptz NOT NULL DEFAULT now(),
    sample_count  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE latest_signals (
    tenant_id   text NOT NULL,
    vehicle_id  uuid NOT NULL,
    signal_id   smallint NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    PRIMARY KEY (vehicle_id, signal_id)
);

CREATE TABLE events (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    device_id   text NOT NULL,
    vehicle_id  uuid,
    ts          timestamptz NOT NULL,
    type        text NOT NULL,
    severity    text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_vehicle_ts_idx ON events (tenant_id, vehicle_id, ts);

CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    payload      bytea NOT NULL,
    reason       text NOT NULL
);

CREATE TABLE ingest_counters (
    name   text PRIMARY KEY,
    count  bigint NOT NULL DEFAULT 0
);
