-- Ingest hardening (issue 16). Independent of 0003: touches only ingest tables and adds its own.

-- Dead letters know the device and seq they carried (when readable), whether they are a
-- quarantined batch (valid, but its clock was outside the window) and when they were replayed.
ALTER TABLE dead_letters
    ADD COLUMN device_id    text,
    ADD COLUMN seq          bigint,
    ADD COLUMN quarantined  boolean NOT NULL DEFAULT false,
    ADD COLUMN replayed_at  timestamptz,
    ADD COLUMN size         integer GENERATED ALWAYS AS (length(payload)) STORED,
    ADD COLUMN digest       text;
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
-- A redelivered quarantined batch is kept once.
CREATE UNIQUE INDEX dead_letters_quarantined_once
    ON dead_letters (device_id, seq) WHERE quarantined;

-- The digest of the bytes stored under each (device, seq): acks carry it, so a device deletes
-- a batch only if the cloud holds that very batch.
ALTER TABLE ingested_batches ADD COLUMN digest text;

-- Each device's secret for signing acks and commands, and the counter acks carry.
CREATE TABLE device_keys (
    device_id   text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    key         bytea NOT NULL CHECK (length(key) = 32),
    counter     bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
