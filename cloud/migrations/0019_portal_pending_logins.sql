-- Logins waiting for their one-time code (the password step passed, the TOTP step not yet),
-- kept in the database so that any API process can take the code step (D103). Only a digest
-- of the id the browser holds is stored, as for sessions.
CREATE TABLE portal_pending_logins (
    id_hash     bytea PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tries       integer NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX portal_pending_logins_expires_idx ON portal_pending_logins (expires_at);

-- Only the owner's connections (the login handlers) use it; the API role gets no grant.
ALTER TABLE portal_pending_logins ENABLE ROW LEVEL SECURITY;
ALTER TABLE portal_pending_logins FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_rows ON portal_pending_logins TO %I '
                   'USING (true) WITH CHECK (true)', current_user);
END
$$;
