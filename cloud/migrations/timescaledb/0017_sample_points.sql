-- TimescaleDB backend (docs/decisions.md, D92): replaces ../0017_sample_points.sql when the
-- extension is present. sample_points is a hypertable of daily chunks, compressed per series
-- after a day; the 1 minute and 1 hour rollups are continuous aggregates (real-time) behind
-- views of the columns the readers know, so no rollup job writes them.
CREATE EXTENSION IF NOT EXISTS timescaledb;
ALTER TABLE samples RENAME TO samples_0002;

CREATE TABLE sample_points (
    series_id  integer NOT NULL,
    ts         timestamptz NOT NULL,
    value      double precision NOT NULL
);
SELECT create_hypertable('sample_points', by_range('ts', INTERVAL '1 day'));
INSERT INTO sample_points (series_id, ts, value)
SELECT s.id, o.ts, o.value
FROM samples_0002 o JOIN sample_series s
  ON s.tenant_id = o.tenant_id AND s.device_id = o.device_id AND s.signal_id = o.signal_id
 AND coalesce(s.vehicle_id, '00000000-0000-0000-0000-000000000000')
   = coalesce(o.vehicle_id, '00000000-0000-0000-0000-000000000000')
ORDER BY s.id, o.ts;
DROP TABLE samples_0002;
CREATE INDEX sample_points_series_ts_idx ON sample_points (series_id, ts);
ALTER TABLE sample_points SET (timescaledb.compress, timescaledb.compress_segmentby = 'series_id',
                               timescaledb.compress_orderby = 'ts');
SELECT add_compression_policy('sample_points', compress_after => INTERVAL '1 day');

CREATE VIEW samples WITH (security_invoker = true) AS
SELECT s.tenant_id, s.vehicle_id, s.device_id, s.signal_id, p.ts, p.value
FROM sample_points p JOIN sample_series s ON s.id = p.series_id;
CREATE TRIGGER samples_insert INSTEAD OF INSERT ON samples
    FOR EACH ROW EXECUTE FUNCTION fleetlink_samples_insert();
-- The readers' entry point, as in the native backend; compressed chunks need no unpacking here.
CREATE FUNCTION samples_between(vehicle uuid, since timestamptz, until timestamptz)
RETURNS TABLE (tenant_id text, vehicle_id uuid, device_id text, signal_id smallint,
               ts timestamptz, value double precision)
LANGUAGE sql STABLE AS $$
    SELECT s.tenant_id, s.vehicle_id, s.device_id, s.signal_id, p.ts, p.value
    FROM sample_points p JOIN sample_series s ON s.id = p.series_id
    WHERE s.vehicle_id = vehicle AND p.ts >= since AND p.ts < until
$$;
GRANT SELECT ON samples, sample_points TO fleetlink_api;
GRANT EXECUTE ON FUNCTION samples_between(uuid, timestamptz, timestamptz) TO fleetlink_api;

-- Rollups: finite values only, buckets aligned as time_bucket's default origin (2000-01-03,
-- a whole number of minutes and hours after the API's 2000-01-01).
DROP TABLE signal_rollups_1m, signal_rollups_1h;
CREATE MATERIALIZED VIEW sample_rollups_1m WITH (timescaledb.continuous,
                                                 timescaledb.materialized_only = false) AS
SELECT series_id, time_bucket(INTERVAL '1 minute', ts) AS bucket, count(*)::integer AS count,
       sum(value) AS total, min(value) AS min, max(value) AS max
FROM sample_points
WHERE value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308
GROUP BY series_id, time_bucket(INTERVAL '1 minute', ts)
WITH NO DATA;
CREATE MATERIALIZED VIEW sample_rollups_1h WITH (timescaledb.continuous,
                                                 timescaledb.materialized_only = false) AS
SELECT series_id, time_bucket(INTERVAL '1 hour', bucket) AS bucket, sum(count)::integer AS count,
       sum(total) AS total, min(min) AS min, max(max) AS max
FROM sample_rollups_1m
GROUP BY series_id, time_bucket(INTERVAL '1 hour', bucket)
WITH NO DATA;
-- The refresh window: late data within 30 days reaches the aggregates by itself; older late data
-- after `CALL refresh_continuous_aggregate(...)`. Raw chunks dropped by retention do not
-- invalidate the aggregates, so rollups outlive their samples as the policies say.
SELECT add_continuous_aggregate_policy('sample_rollups_1m', start_offset => INTERVAL '30 days',
    end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('sample_rollups_1h', start_offset => INTERVAL '30 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '10 minutes');

CREATE VIEW signal_rollups_1m WITH (security_invoker = true) AS
SELECT s.tenant_id, s.vehicle_id, s.signal_id, r.bucket, r.count, r.total, r.min, r.max
FROM sample_rollups_1m r JOIN sample_series s ON s.id = r.series_id;
CREATE VIEW signal_rollups_1h WITH (security_invoker = true) AS
SELECT s.tenant_id, s.vehicle_id, s.signal_id, r.bucket, r.count, r.total, r.min, r.max
FROM sample_rollups_1h r JOIN sample_series s ON s.id = r.series_id;
GRANT SELECT ON signal_rollups_1m, signal_rollups_1h, sample_rollups_1m, sample_rollups_1h
    TO fleetlink_api;

-- fleetlink: after commit
-- The aggregates of the rows moved above (a refresh cannot run in a transaction).
CALL refresh_continuous_aggregate('sample_rollups_1m', NULL, NULL);
CALL refresh_continuous_aggregate('sample_rollups_1h', NULL, NULL);
