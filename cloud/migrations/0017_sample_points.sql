-- Native PostgreSQL backend (docs/decisions.md, D90–D91): sample_points in daily range
-- partitions, created on demand by the ingest (cloud/ingest/partitions.py) and dropped whole by
-- retention. With TimescaleDB present, cloud/migrations/timescaledb/0017_sample_points.sql runs
-- instead of this file.
ALTER TABLE samples RENAME TO samples_0002;

CREATE TABLE sample_points (
    series_id  integer NOT NULL,
    ts         timestamptz NOT NULL,
    value      double precision NOT NULL
) PARTITION BY RANGE (ts);

-- One new partition per old one, same bounds; rows in series order (a series' day together).
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'samples_0002'::regclass ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF sample_points %s',
                       'sample_points_' || substring(part.relname FROM 9), part.bound);
    END LOOP;
END
$$;
INSERT INTO sample_points (series_id, ts, value)
SELECT s.id, o.ts, o.value
FROM samples_0002 o JOIN sample_series s
  ON s.tenant_id = o.tenant_id AND s.device_id = o.device_id AND s.signal_id = o.signal_id
 AND coalesce(s.vehicle_id, '00000000-0000-0000-0000-000000000000')
   = coalesce(o.vehicle_id, '00000000-0000-0000-0000-000000000000')
ORDER BY s.id, o.ts;
DROP TABLE samples_0002;
CREATE INDEX sample_points_series_ts_idx ON sample_points (series_id, ts);

-- Closed days are compacted (cloud/storage/compaction.py): one row per (series, hour) with the
-- hour's offsets (microseconds) and values as arrays, compressed by TOAST; partitioned by day like
-- the points so retention drops them whole. Late points of a compacted day stay in sample_points
-- until the next compaction merges them.
CREATE TABLE sample_blocks (
    series_id   integer NOT NULL,
    hour        timestamptz NOT NULL,
    offsets_us  bigint[] NOT NULL,
    vals        double precision[] NOT NULL,
    PRIMARY KEY (series_id, hour)
) PARTITION BY RANGE (hour);

-- Every reader keeps the columns it knew; the series table's row security applies to the
-- reader (security_invoker), so a tenant sees only its own series' points.
CREATE VIEW samples WITH (security_invoker = true) AS
SELECT s.tenant_id, s.vehicle_id, s.device_id, s.signal_id, p.ts, p.value
FROM sample_points p JOIN sample_series s ON s.id = p.series_id
UNION ALL
SELECT s.tenant_id, s.vehicle_id, s.device_id, s.signal_id,
       b.hour + u.o * interval '1 microsecond', u.v
FROM sample_blocks b JOIN sample_series s ON s.id = b.series_id,
     unnest(b.offsets_us, b.vals) AS u(o, v);
CREATE TRIGGER samples_insert INSTEAD OF INSERT ON samples
    FOR EACH ROW EXECUTE FUNCTION fleetlink_samples_insert();

-- A vehicle's samples in [since, until): what the readers query (the view above cannot narrow
-- the blocks it unpacks by time). Inlined by the planner, so outer filters reach the series.
CREATE FUNCTION samples_between(vehicle uuid, since timestamptz, until timestamptz)
RETURNS TABLE (tenant_id text, vehicle_id uuid, device_id text, signal_id smallint,
               ts timestamptz, value double precision)
LANGUAGE sql STABLE AS $$
    SELECT s.tenant_id, s.vehicle_id, s.device_id, s.signal_id, p.ts, p.value
    FROM sample_points p JOIN sample_series s ON s.id = p.series_id
    WHERE s.vehicle_id = vehicle AND p.ts >= since AND p.ts < until
    UNION ALL
    SELECT s.tenant_id, s.vehicle_id, s.device_id, s.signal_id, u.ts, u.value
    FROM sample_blocks b JOIN sample_series s ON s.id = b.series_id,
         LATERAL (SELECT b.hour + z.o * interval '1 microsecond' AS ts, z.v AS value
                  FROM unnest(b.offsets_us, b.vals) AS z(o, v)) u
    WHERE s.vehicle_id = vehicle
      AND b.hour >= date_bin('1 hour', since, TIMESTAMPTZ '2000-01-01 00:00+00')
      AND b.hour < until AND u.ts >= since AND u.ts < until
$$;
GRANT SELECT ON samples, sample_points, sample_blocks TO fleetlink_api;
GRANT EXECUTE ON FUNCTION samples_between(uuid, timestamptz, timestamptz) TO fleetlink_api;
