-- Samples keyed by a series id (docs/decisions.md, D90). What repeats on every sample row
-- (tenant, vehicle, device, signal) is kept once per series here; a sample row holds only
-- (series_id, ts, value). This file is shared by both storage backends; 0017 moves the rows.
CREATE TABLE sample_series (
    id          serial PRIMARY KEY,
    tenant_id   text NOT NULL,
    vehicle_id  uuid,
    device_id   text NOT NULL,
    signal_id   smallint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, vehicle_id, device_id, signal_id)
);
CREATE INDEX sample_series_vehicle_signal_idx ON sample_series (vehicle_id, signal_id);
CREATE INDEX sample_series_device_idx ON sample_series (device_id);

INSERT INTO sample_series (tenant_id, vehicle_id, device_id, signal_id)
SELECT DISTINCT tenant_id, vehicle_id, device_id, signal_id FROM samples
ORDER BY tenant_id, vehicle_id, device_id, signal_id;

ALTER TABLE sample_series ENABLE ROW LEVEL SECURITY;
ALTER TABLE sample_series FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON sample_series TO fleetlink_api
    USING (tenant_id = fleetlink_tenant()) WITH CHECK (tenant_id = fleetlink_tenant());
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_rows ON sample_series TO %I USING (true) WITH CHECK (true)',
                   current_user);
END
$$;
GRANT SELECT ON sample_series TO fleetlink_api;

-- Return the id of a series, creating it the first time it is seen.
CREATE FUNCTION fleetlink_series_id(t text, v uuid, d text, s smallint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    found integer;
BEGIN
    SELECT id INTO found FROM sample_series
    WHERE tenant_id = t AND vehicle_id IS NOT DISTINCT FROM v AND device_id = d AND signal_id = s;
    IF found IS NULL THEN
        INSERT INTO sample_series (tenant_id, vehicle_id, device_id, signal_id)
        VALUES (t, v, d, s) ON CONFLICT DO NOTHING RETURNING id INTO found;
    END IF;
    IF found IS NULL THEN
        SELECT id INTO found FROM sample_series
        WHERE tenant_id = t AND vehicle_id IS NOT DISTINCT FROM v AND device_id = d
          AND signal_id = s;
    END IF;
    RETURN found;
END
$$;

-- Rows written into the ``samples`` view (tools, imports, tests) land in sample_points; the
-- ingest writes sample_points directly by COPY.
CREATE FUNCTION fleetlink_samples_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sample_points (series_id, ts, value)
    VALUES (fleetlink_series_id(NEW.tenant_id, NEW.vehicle_id, NEW.device_id, NEW.signal_id),
            NEW.ts, NEW.value);
    RETURN NEW;
END
$$;
