-- Enrollment, per-device broker identity, install reports and remote updates (issue 11).

-- One-time, expiring enrollment tokens: only the SHA-256 digest of the token is stored.
CREATE TABLE enrollment_tokens (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    digest        bytea NOT NULL UNIQUE,
    vehicle_id    uuid REFERENCES vehicles (id),
    label         text NOT NULL DEFAULT '',
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    used_by       text,
    revoked_at    timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX enrollment_tokens_tenant_idx ON enrollment_tokens (tenant_id, created_at);

-- A device's broker login: username = device id, the password as mosquitto's PBKDF2-SHA512
-- hash ($7$). A device has at most one live credential; revoked ones stay as history.
CREATE TABLE device_credentials (
    id             bigserial PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id),
    device_id      text NOT NULL REFERENCES devices (id),
    password_hash  text NOT NULL CHECK (password_hash LIKE '$7$%'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
CREATE UNIQUE INDEX device_credentials_one_live
    ON device_credentials (device_id) WHERE revoked_at IS NULL;

ALTER TABLE devices ADD COLUMN removed_at timestamptz;

CREATE TABLE install_reports (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    device_id    text NOT NULL REFERENCES devices (id),
    vehicle_id   uuid REFERENCES vehicles (id),
    received_at  timestamptz NOT NULL DEFAULT now(),
    passed       boolean NOT NULL,
    report       jsonb NOT NULL
);
CREATE INDEX install_reports_vehicle_idx ON install_reports (tenant_id, vehicle_id, received_at);

-- Updates pushed on a device's cmd topic; the device's answer arrives as an
-- "update_result" event naming the command id.
CREATE TABLE device_commands (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    device_id     text NOT NULL REFERENCES devices (id),
    kind          text NOT NULL CHECK (kind IN ('config', 'profile', 'model')),
    version       text NOT NULL,
    sha256        text NOT NULL,
    size          integer NOT NULL,
    issued_by     text NOT NULL,
    issued_at     timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX device_commands_device_idx ON device_commands (tenant_id, device_id, issued_at);
CREATE INDEX events_update_result_idx ON events ((data ->> 'command_id'))
    WHERE type = 'update_result';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['enrollment_tokens', 'device_credentials', 'install_reports',
                             'device_commands']
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

GRANT SELECT, INSERT, UPDATE ON enrollment_tokens, device_credentials, device_commands
    TO fleetlink_api;
GRANT SELECT ON install_reports TO fleetlink_api;
GRANT USAGE ON SEQUENCE device_credentials_id_seq TO fleetlink_api;
