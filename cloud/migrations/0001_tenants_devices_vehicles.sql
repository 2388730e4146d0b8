CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id             text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    tenant_id      text NOT NULL REFERENCES tenants (id),
    name           text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz,
    online         boolean,
    agent_version  text,
    status         jsonb
);
CREATE INDEX devices_tenant_idx ON devices (tenant_id);

CREATE TABLE vehicles (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    vin         text CHECK (vin IS NULL OR vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vehicles_tenant_idx ON vehicles (tenant_id, name);

-- valid_to NULL means "current"; the partial unique index gives a device at most one current vehicle.
CREATE TABLE device_assignments (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    device_id   text NOT NULL REFERENCES devices (id),
    vehicle_id  uuid NOT NULL REFERENCES vehicles (id),
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz,
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX device_assignments_one_current
    ON device_assignments (device_id) WHERE valid_to IS NULL;
CREATE INDEX device_assignments_device_idx ON device_assignments (device_id, valid_from);

CREATE TABLE signals (
    id     smallint PRIMARY KEY,
    name   text NOT NULL UNIQUE,
    unit   text NOT NULL,
    description text NOT NULL DEFAULT ''
);
