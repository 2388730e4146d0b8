-- Gaps (issue 8): what a device had to give up (its outbox reached its byte cap, or batches
-- overflowed memory while the outbox refused writes), as first-class records per vehicle.
-- A gap arrives as an event of type 'gap' and is stored once, under the event's id.
CREATE TABLE gaps (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    device_id   text NOT NULL,
    vehicle_id  uuid,
    start_ts    timestamptz NOT NULL,
    end_ts      timestamptz NOT NULL,
    signals     text NOT NULL DEFAULT '',
    signals_cut boolean NOT NULL DEFAULT false,
    samples     bigint NOT NULL DEFAULT 0 CHECK (samples >= 0),
    batches     integer NOT NULL DEFAULT 0 CHECK (batches >= 0),
    events      integer NOT NULL DEFAULT 0 CHECK (events >= 0),
    reason      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CHECK (end_ts >= start_ts)
);
CREATE INDEX gaps_vehicle_start_idx ON gaps (tenant_id, vehicle_id, start_ts, id);

ALTER TABLE gaps ENABLE ROW LEVEL SECURITY;
ALTER TABLE gaps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON gaps TO fleetlink_api
    USING (tenant_id = fleetlink_tenant()) WITH CHECK (tenant_id = fleetlink_tenant());
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_rows ON gaps TO %I USING (true) WITH CHECK (true)',
                   current_user);
END
$$;
GRANT SELECT ON gaps TO fleetlink_api;
