-- Diagnostic reports: what a technician's scan tool (fleetlink diag report) found on a
-- vehicle, attached to the vehicle's record. Append-only history: the API inserts and reads.
CREATE TABLE diagnostic_reports (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    vehicle_id    uuid NOT NULL REFERENCES vehicles (id),
    vin           text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    scanned_at    timestamptz NOT NULL,
    uploaded_by   text NOT NULL,
    mil_on        boolean,
    codes         text[] NOT NULL DEFAULT '{}',
    report        jsonb NOT NULL
);
CREATE INDEX diagnostic_reports_vehicle_idx
    ON diagnostic_reports (tenant_id, vehicle_id, created_at DESC, id DESC);

ALTER TABLE diagnostic_reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE diagnostic_reports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON diagnostic_reports TO fleetlink_api
    USING (tenant_id = fleetlink_tenant())
    WITH CHECK (tenant_id = fleetlink_tenant());
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_rows ON diagnostic_reports TO %I '
                   'USING (true) WITH CHECK (true)', current_user);
END
$$;
GRANT SELECT, INSERT ON diagnostic_reports TO fleetlink_api;
