-- Trips, driving events, driver scoring, rollups, retention and scheduled reports (issue 12).
--
-- The ingest marks each (vehicle, UTC day) it writes samples or events for in trip_dirty, in
-- its own transaction; the cloud's recompute worker claims marked days, recomputes that day's
-- trips, driving events and signal rollups from everything stored, and replaces the old rows.
-- A day is a pure function of its samples and events, so arrival order cannot change it.

CREATE TABLE trip_dirty (
    vehicle_id  uuid NOT NULL,
    day         date NOT NULL,
    tenant_id   text NOT NULL,
    -- Bumped by every write: the worker's claim waits for a writer that holds the row.
    marks       bigint NOT NULL DEFAULT 1,
    marked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vehicle_id, day)
);

CREATE TABLE trips (
    id             uuid PRIMARY KEY,
    tenant_id      text NOT NULL,
    vehicle_id     uuid NOT NULL,
    day            date NOT NULL,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL,
    duration_s     double precision NOT NULL,
    distance_km    double precision NOT NULL,
    idle_s         double precision NOT NULL,
    max_speed_kmh  double precision NOT NULL,
    fuel_used_l    double precision,
    engine_hours   double precision NOT NULL,
    start_lat      double precision,
    start_lon      double precision,
    end_lat        double precision,
    end_lon        double precision,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at >= started_at)
);
CREATE INDEX trips_vehicle_day_idx ON trips (vehicle_id, day);
CREATE INDEX trips_tenant_started_idx ON trips (tenant_id, started_at);

-- What the scorecard counts, each traced to its source: a device event (event_id) or the
-- cloud's reading of the speed signal (source 'derived').
CREATE TABLE driving_events (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    vehicle_id  uuid NOT NULL,
    trip_id     uuid NOT NULL,
    day         date NOT NULL,
    ts          timestamptz NOT NULL,
    type        text NOT NULL,
    source      text NOT NULL CHECK (source IN ('device', 'derived')),
    event_id    uuid,
    duration_s  double precision NOT NULL DEFAULT 0,
    magnitude   double precision,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX driving_events_vehicle_day_idx ON driving_events (vehicle_id, day);
CREATE INDEX driving_events_tenant_ts_idx ON driving_events (tenant_id, ts);

-- A tenant's scoring rules, badges and detection thresholds (a document; defaults when absent).
CREATE TABLE scoring_rules (
    tenant_id   text PRIMARY KEY REFERENCES tenants (id),
    rules       jsonb NOT NULL,
    version     integer NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE challenges (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    rule        jsonb NOT NULL,
    starts_on   date NOT NULL,
    ends_on     date NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_on >= starts_on)
);
CREATE INDEX challenges_tenant_idx ON challenges (tenant_id, starts_on);

-- Rollups of samples: one row per (vehicle, signal, bucket); avg = total / count.
CREATE TABLE signal_rollups_1m (
    tenant_id   text NOT NULL,
    vehicle_id  uuid NOT NULL,
    signal_id   smallint NOT NULL,
    bucket      timestamptz NOT NULL,
    count       integer NOT NULL,
    total       double precision NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    PRIMARY KEY (vehicle_id, signal_id, bucket)
);
CREATE TABLE signal_rollups_1h (LIKE signal_rollups_1m INCLUDING ALL);

-- How long each tenant's data is kept; absent: the defaults of retention.py.
CREATE TABLE retention_policies (
    tenant_id        text PRIMARY KEY REFERENCES tenants (id),
    raw_days         integer NOT NULL CHECK (raw_days BETWEEN 1 AND 36500),
    rollup_1m_days   integer NOT NULL CHECK (rollup_1m_days BETWEEN 1 AND 36500),
    rollup_1h_days   integer NOT NULL CHECK (rollup_1h_days BETWEEN 1 AND 36500),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE report_schedules (
    id           uuid PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    report       text NOT NULL CHECK (report IN ('trips', 'scores', 'events')),
    every        text NOT NULL CHECK (every IN ('daily', 'weekly', 'monthly')),
    recipients   text[] NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 20),
    next_run_at  timestamptz NOT NULL,
    last_run_at  timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX report_schedules_due_idx ON report_schedules (next_run_at);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['trip_dirty', 'trips', 'driving_events', 'scoring_rules',
                             'challenges', 'signal_rollups_1m', 'signal_rollups_1h',
                             'retention_policies', 'report_schedules']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_rows ON %I TO fleetlink_api '
                       'USING (tenant_id = fleetlink_tenant()) '
                       'WITH CHECK (tenant_id = fleetlink_tenant())', t);
        EXECUTE format('CREATE POLICY owner_rows ON %I TO %I USING (true) WITH CHECK (true)',
                       t, current_user);
    END LOOP;
END
$$;

GRANT SELECT ON trips, driving_events, signal_rollups_1m, signal_rollups_1h TO fleetlink_api;
GRANT SELECT, INSERT, UPDATE ON trip_dirty TO fleetlink_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON scoring_rules, challenges, retention_policies,
    report_schedules TO fleetlink_api;

-- Trips find their driver by vehicle and time.
CREATE INDEX driver_assignments_vehicle_idx ON driver_assignments (vehicle_id, valid_from);
