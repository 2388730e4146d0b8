-- Maintenance and cost: service plans, work records, fuel records, the tenant's cost settings,
-- the due state of each (plan, vehicle) and the notifications it raises. Same RLS as 0003.

-- A plan applies to one vehicle, to the vehicles of one fleet, or (neither set) to every
-- vehicle of the tenant. It is due when the first of its intervals runs out.
CREATE TABLE maintenance_plans (
    id                  uuid PRIMARY KEY,
    tenant_id           text NOT NULL REFERENCES tenants (id),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    vehicle_id          uuid REFERENCES vehicles (id),
    fleet_id            uuid REFERENCES fleets (id),
    interval_km         double precision CHECK (interval_km > 0),
    interval_hours      double precision CHECK (interval_hours > 0),
    interval_days       integer CHECK (interval_days > 0),
    warn_fraction       double precision NOT NULL DEFAULT 0.1
                        CHECK (warn_fraction >= 0 AND warn_fraction <= 0.5),
    start_odometer_km   double precision NOT NULL DEFAULT 0 CHECK (start_odometer_km >= 0),
    start_engine_hours  double precision NOT NULL DEFAULT 0 CHECK (start_engine_hours >= 0),
    start_date          date NOT NULL DEFAULT current_date,
    active              boolean NOT NULL DEFAULT true,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (vehicle_id IS NULL OR fleet_id IS NULL),
    CHECK (interval_km IS NOT NULL OR interval_hours IS NOT NULL OR interval_days IS NOT NULL)
);
CREATE INDEX maintenance_plans_tenant_idx ON maintenance_plans (tenant_id, name);

-- Work done on a vehicle; one that names a plan restarts that plan's intervals from its
-- odometer, engine hours and date.
CREATE TABLE work_records (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    vehicle_id    uuid NOT NULL REFERENCES vehicles (id),
    plan_id       uuid REFERENCES maintenance_plans (id) ON DELETE SET NULL,
    performed_at  timestamptz NOT NULL,
    odometer_km   double precision CHECK (odometer_km >= 0),
    engine_hours  double precision CHECK (engine_hours >= 0),
    description   text NOT NULL DEFAULT '',
    parts         jsonb NOT NULL DEFAULT '[]',
    labour_cost   numeric(12, 2) NOT NULL DEFAULT 0 CHECK (labour_cost >= 0),
    parts_cost    numeric(12, 2) NOT NULL DEFAULT 0 CHECK (parts_cost >= 0),
    total_cost    numeric(12, 2) GENERATED ALWAYS AS (labour_cost + parts_cost) STORED,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX work_records_vehicle_idx ON work_records (tenant_id, vehicle_id, performed_at);
CREATE INDEX work_records_plan_idx ON work_records (plan_id, vehicle_id, performed_at);

CREATE TABLE fuel_records (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    vehicle_id  uuid NOT NULL REFERENCES vehicles (id),
    filled_at   timestamptz NOT NULL,
    litres      double precision NOT NULL CHECK (litres > 0),
    cost        numeric(12, 2) NOT NULL CHECK (cost >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fuel_records_vehicle_idx ON fuel_records (tenant_id, vehicle_id, filled_at);

CREATE TABLE cost_settings (
    tenant_id          text PRIMARY KEY REFERENCES tenants (id),
    fuel_price_per_l   numeric(8, 3) NOT NULL CHECK (fuel_price_per_l >= 0),
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    version            integer NOT NULL DEFAULT 1
);

-- The last computed status of each (plan, vehicle): a change to due or overdue raises one
-- notification, not one per scan.
CREATE TABLE maintenance_due_state (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    plan_id     uuid NOT NULL REFERENCES maintenance_plans (id) ON DELETE CASCADE,
    vehicle_id  uuid NOT NULL REFERENCES vehicles (id),
    status      text NOT NULL CHECK (status IN ('ok', 'due', 'overdue')),
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_id, vehicle_id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['maintenance_plans', 'work_records', 'fuel_records', 'cost_settings',
                             'maintenance_due_state']
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

GRANT SELECT, INSERT, UPDATE, DELETE ON maintenance_plans, work_records, fuel_records,
    cost_settings, maintenance_due_state TO fleetlink_api;
