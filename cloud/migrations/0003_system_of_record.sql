-- The fleet's system of record: users and roles, fleets, vehicle profiles, drivers, devices,
-- sessions and API tokens, an append-only audit log, and row-level security under it all.
--
-- Two database roles take part:
--   * the migration owner (the user of FLEETLINK_DATABASE_URL): migrations, the MQTT ingest,
--     authentication look-ups and the operator CLI; it sees every tenant;
--   * fleetlink_api (NOLOGIN): every API request runs as it (SET ROLE at connection start),
--     with the request's tenant in the setting fleetlink.tenant for its transaction. Row-level
--     security, forced on every tenant table, shows it that tenant's rows only.

DO $$
BEGIN
    CREATE ROLE fleetlink_api NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- roles are per cluster; another database created it first
END
$$;
GRANT fleetlink_api TO CURRENT_USER;

CREATE FUNCTION fleetlink_tenant() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('fleetlink.tenant', true), '') $$;

-- array_to_string is only STABLE (for arrays of any type); for text[] it is immutable, which a
-- generated search column needs.
CREATE FUNCTION fleetlink_words(text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(array_to_string($1, ' '), '') $$;

-- Users are people; what they may do is per tenant, through memberships.
CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text NOT NULL CHECK (email = lower(email) AND email ~ '^[^@\s]+@[^@\s]+$'),
    name              text NOT NULL DEFAULT '',
    password_hash     text,
    totp_secret_enc   text,          -- AES-GCM, like drivers' personal fields
    totp_enabled      boolean NOT NULL DEFAULT false,
    failed_logins     integer NOT NULL DEFAULT 0,
    locked_until      timestamptz,
    disabled          boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_idx ON users (email);

CREATE TABLE memberships (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    user_id     uuid NOT NULL REFERENCES users (id),
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'fleet_manager', 'technician',
                                              'installer', 'driver', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);

-- Only hashes of session ids and token secrets are stored.
CREATE TABLE sessions (
    id_hash     bytea PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    user_id     uuid NOT NULL REFERENCES users (id),
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    user_id       uuid NOT NULL REFERENCES users (id),
    name          text NOT NULL DEFAULT '',
    secret_hash   bytea NOT NULL,
    scopes        text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write']::text[]),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_tokens_tenant_idx ON api_tokens (tenant_id, user_id);

-- Fleets: a hierarchy of groups within a tenant.
CREATE TABLE fleets (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    parent_id   uuid REFERENCES fleets (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE UNIQUE INDEX fleets_name_idx ON fleets (tenant_id, coalesce(parent_id, id), name);

-- Vehicle profiles.
ALTER TABLE vehicles
    ADD COLUMN plate            text,
    ADD COLUMN make             text,
    ADD COLUMN model            text,
    ADD COLUMN year             smallint CHECK (year IS NULL OR year BETWEEN 1900 AND 2100),
    ADD COLUMN fuel_type        text CHECK (fuel_type IN ('petrol', 'diesel', 'electric', 'hybrid',
                                                          'lpg', 'cng', 'hydrogen', 'other')),
    ADD COLUMN tank_capacity_l  double precision CHECK (tank_capacity_l > 0),
    ADD COLUMN odometer_km      double precision CHECK (odometer_km >= 0),
    ADD COLUMN engine_hours     double precision CHECK (engine_hours >= 0),
    ADD COLUMN status           text NOT NULL DEFAULT 'active'
                                CHECK (status IN ('active', 'in_maintenance', 'retired')),
    ADD COLUMN tags             text[] NOT NULL DEFAULT '{}',
    ADD COLUMN custom           jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN fleet_id         uuid REFERENCES fleets (id),
    ADD COLUMN version          integer NOT NULL DEFAULT 1,
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now();
ALTER TABLE vehicles ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple',
        coalesce(name, '') || ' ' || coalesce(plate, '') || ' ' || coalesce(vin, '') || ' ' ||
        coalesce(make, '') || ' ' || coalesce(model, '') || ' ' ||
        fleetlink_words(tags))
) STORED;
CREATE INDEX vehicles_search_idx ON vehicles USING gin (search);
CREATE UNIQUE INDEX vehicles_vin_idx ON vehicles (tenant_id, vin) WHERE vin IS NOT NULL;
CREATE UNIQUE INDEX vehicles_plate_idx ON vehicles (tenant_id, plate) WHERE plate IS NOT NULL;

-- Drivers; licence number and phone are stored encrypted by the application (AES-GCM).
CREATE TABLE drivers (
    id                 uuid PRIMARY KEY,
    tenant_id          text NOT NULL REFERENCES tenants (id),
    name               text NOT NULL,
    employee_number    text,
    email              text,
    licence_number_enc text,
    phone_enc          text,
    tags               text[] NOT NULL DEFAULT '{}',
    fleet_id           uuid REFERENCES fleets (id),
    user_id            uuid REFERENCES users (id),
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    erased_at          timestamptz,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    search             tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(employee_number, '') || ' ' ||
                              fleetlink_words(tags))
    ) STORED
);
CREATE UNIQUE INDEX drivers_employee_idx ON drivers (tenant_id, employee_number)
    WHERE employee_number IS NOT NULL;
CREATE INDEX drivers_search_idx ON drivers USING gin (search);

CREATE TABLE driver_assignments (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    driver_id   uuid NOT NULL REFERENCES drivers (id),
    vehicle_id  uuid NOT NULL REFERENCES vehicles (id),
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz,
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX driver_assignments_one_current
    ON driver_assignments (driver_id) WHERE valid_to IS NULL;

ALTER TABLE devices
    ADD COLUMN serial            text,
    ADD COLUMN firmware_profile  text,
    ADD COLUMN version           integer NOT NULL DEFAULT 1;

CREATE TABLE saved_searches (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    user_id     uuid NOT NULL REFERENCES users (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    resource    text NOT NULL CHECK (resource IN ('vehicles', 'drivers')),
    query       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id, name)
);

-- Append-only: the API's role may INSERT and SELECT, never UPDATE or DELETE.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    resource     text NOT NULL,
    resource_id  text,
    before       jsonb,
    after        jsonb,
    remote       text
);
CREATE INDEX audit_log_tenant_at_idx ON audit_log (tenant_id, at DESC);

-- Row-level security on every table that carries a tenant.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['vehicles', 'devices', 'device_assignments', 'samples',
                             'latest_signals', 'events', 'ingested_batches', 'fleets', 'drivers',
                             'driver_assignments', 'saved_searches', 'audit_log', 'memberships',
                             'api_tokens', 'sessions']
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
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON tenants TO fleetlink_api USING (id = fleetlink_tenant());
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_rows ON tenants TO %I USING (true) WITH CHECK (true)',
                   current_user);
END
$$;

-- A user is visible to the API only through a membership of the request's tenant.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_members ON users TO fleetlink_api USING (EXISTS (
    SELECT 1 FROM memberships m WHERE m.user_id = users.id AND m.tenant_id = fleetlink_tenant()));
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_rows ON users TO %I USING (true) WITH CHECK (true)',
                   current_user);
END
$$;

GRANT USAGE ON SCHEMA public TO fleetlink_api;
GRANT SELECT ON tenants, signals, samples, latest_signals, events, users TO fleetlink_api;
GRANT SELECT, UPDATE, DELETE ON memberships TO fleetlink_api;
GRANT SELECT, DELETE ON sessions TO fleetlink_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON vehicles, drivers, fleets, driver_assignments,
    device_assignments, saved_searches, api_tokens TO fleetlink_api;
GRANT SELECT, INSERT, UPDATE ON devices TO fleetlink_api;
GRANT SELECT, INSERT ON audit_log TO fleetlink_api;
GRANT USAGE ON SEQUENCE audit_log_id_seq, driver_assignments_id_seq, device_assignments_id_seq
    TO fleetlink_api;
