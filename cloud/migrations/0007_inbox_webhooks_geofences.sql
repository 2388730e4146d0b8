-- The fleet manager's alerts inbox, notifications (webhooks and email) and geofences.
--
-- Anything worth a person's attention becomes one inbox item: a device event of severity
-- warning or critical (inserted in the ingest's own transaction), a geofence crossing, a rule
-- of the cloud. fleetlink_notify() queues the webhook deliveries and emails an event type
-- asks for, in the transaction of whatever raised it, so a notification exists exactly when
-- its cause was committed.

CREATE TABLE inbox_items (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   text NOT NULL REFERENCES tenants (id),
    source      text NOT NULL CHECK (source IN ('device', 'geofence', 'rule')),
    type        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    vehicle_id  uuid,
    device_id   text,
    event_id    uuid UNIQUE,
    ts          timestamptz NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}',
    state       text NOT NULL DEFAULT 'open'
                CHECK (state IN ('open', 'acknowledged', 'resolved')),
    assignee_id uuid REFERENCES users (id),
    coached     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1
);
CREATE INDEX inbox_items_tenant_ts_idx ON inbox_items (tenant_id, ts DESC, id DESC);
CREATE INDEX inbox_items_open_idx ON inbox_items (tenant_id, state) WHERE state <> 'resolved';

-- The item's own timeline: each action on it, who took it and what they said.
CREATE TABLE inbox_notes (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    item_id     uuid NOT NULL REFERENCES inbox_items (id) ON DELETE CASCADE,
    action      text NOT NULL
                CHECK (action IN ('acknowledge', 'resolve', 'reopen', 'assign', 'comment',
                                  'coach')),
    actor       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_notes_item_idx ON inbox_notes (item_id, id);

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    url         text NOT NULL,
    description text NOT NULL DEFAULT '',
    event_types text[] NOT NULL,
    -- The signing secret, encrypted with the field key ring (FieldCipher); never returned
    -- after creation and never logged.
    secret_enc  text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1
);
CREATE INDEX webhooks_tenant_idx ON webhooks (tenant_id) WHERE active;

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       text NOT NULL REFERENCES tenants (id),
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    replay_of       uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, created_at DESC, id);

CREATE TABLE email_rules (
    id           uuid PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    recipients   text[] NOT NULL,
    event_types  text[] NOT NULL,
    min_severity text NOT NULL DEFAULT 'warning'
                 CHECK (min_severity IN ('info', 'warning', 'critical')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE email_outbox (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       text NOT NULL REFERENCES tenants (id),
    rule_id         uuid REFERENCES email_rules (id) ON DELETE SET NULL,
    recipients      text[] NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status = 'pending';

CREATE TABLE geofences (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id),
    name            text NOT NULL,
    -- A GeoJSON Polygon, or a Point with radius_m for a circle.
    geometry        jsonb NOT NULL,
    radius_m        double precision CHECK (radius_m > 0),
    speed_limit_kmh double precision CHECK (speed_limit_kmh > 0),
    dwell_s         integer CHECK (dwell_s > 0),
    min_lat double precision NOT NULL,
    max_lat double precision NOT NULL,
    min_lon double precision NOT NULL,
    max_lon double precision NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, name)
);

-- Whether each vehicle is inside each fence, as of the newest position evaluated.
CREATE TABLE geofence_presence (
    tenant_id     text NOT NULL REFERENCES tenants (id),
    vehicle_id    uuid NOT NULL,
    geofence_id   uuid NOT NULL REFERENCES geofences (id) ON DELETE CASCADE,
    entered_at    timestamptz NOT NULL,
    dwell_raised  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (vehicle_id, geofence_id)
);

-- The newest position evaluated per vehicle: older positions arriving late do not move it.
CREATE TABLE geofence_cursor (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    vehicle_id  uuid PRIMARY KEY,
    ts          timestamptz NOT NULL
);

-- The version of each tenant's fence set, as pushed to its devices.
CREATE TABLE geofence_sets (
    tenant_id   text PRIMARY KEY REFERENCES tenants (id),
    version     bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION fleetlink_severity_rank(text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE $1 WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END $$;

-- Queue the webhook deliveries and emails that ``p_type`` asks for; return the event's id.
CREATE FUNCTION fleetlink_notify(p_tenant text, p_type text, p_severity text, p_data jsonb)
    RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := gen_random_uuid();
    v_payload jsonb := jsonb_build_object(
        'id', v_id, 'type', p_type, 'tenant', p_tenant, 'severity', p_severity,
        'created_at', now(), 'data', p_data);
BEGIN
    INSERT INTO webhook_deliveries (tenant_id, webhook_id, event_id, event_type, payload)
    SELECT p_tenant, w.id, v_id, p_type, v_payload FROM webhooks w
    WHERE w.tenant_id = p_tenant AND w.active
      AND (p_type = ANY (w.event_types) OR '*' = ANY (w.event_types));
    INSERT INTO email_outbox (tenant_id, rule_id, recipients, subject, body)
    SELECT p_tenant, r.id, r.recipients,
           format('[Fleetlink] %s (%s)', p_type, p_severity),
           format(E'%s at %s\n\n%s', p_type, now(), jsonb_pretty(p_data))
    FROM email_rules r
    WHERE r.tenant_id = p_tenant AND p_type = ANY (r.event_types)
      AND fleetlink_severity_rank(p_severity) >= fleetlink_severity_rank(r.min_severity);
    RETURN v_id;
END
$$;

-- Raise an inbox item and its notifications for each warning or critical device event.
CREATE FUNCTION fleetlink_inbox_from_events(p_ids uuid[]) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN
        INSERT INTO inbox_items (tenant_id, source, type, severity, vehicle_id, device_id,
                                 event_id, ts, data)
        SELECT e.tenant_id, 'device', e.type, e.severity, e.vehicle_id, e.device_id, e.id, e.ts,
               e.data
        FROM events e WHERE e.id = ANY (p_ids) AND e.severity IN ('warning', 'critical')
        ON CONFLICT (event_id) DO NOTHING
        RETURNING *
    LOOP
        PERFORM fleetlink_notify(r.tenant_id, 'vehicle.telemetry_alert', r.severity,
            jsonb_build_object('inbox_item_id', r.id, 'event_id', r.event_id,
                               'event_type', r.type, 'vehicle_id', r.vehicle_id,
                               'device_id', r.device_id, 'ts', r.ts, 'data', r.data));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['inbox_items', 'inbox_notes', 'webhooks', 'webhook_deliveries',
                             'email_rules', 'email_outbox', 'geofences', 'geofence_presence',
                             'geofence_cursor', 'geofence_sets']
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

GRANT SELECT, INSERT, UPDATE ON inbox_items TO fleetlink_api;
GRANT SELECT, INSERT ON inbox_notes TO fleetlink_api;
GRANT USAGE ON SEQUENCE inbox_notes_id_seq TO fleetlink_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhooks, email_rules, geofences TO fleetlink_api;
GRANT SELECT, INSERT ON webhook_deliveries, email_outbox TO fleetlink_api;
GRANT SELECT, INSERT, UPDATE ON geofence_sets TO fleetlink_api;
GRANT SELECT ON geofence_presence, geofence_cursor TO fleetlink_api;
