-- The tenants whose live stream some API process serves (D104): each process that listens on
-- the live channel keeps its rows fresh, and the processes that produce live messages read
-- the set, so a tenant nobody watches costs them nothing. Rows expire rather than being
-- cleaned up, so a process that dies leaves nothing behind; UNLOGGED, since they are
-- rewritten within seconds anyway.
CREATE UNLOGGED TABLE live_watchers (
    listener    text NOT NULL,
    tenant_id   text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (listener, tenant_id)
);

-- Only the owner's connections (the live relay) use it; the API role gets no grant.
ALTER TABLE live_watchers ENABLE ROW LEVEL SECURITY;
ALTER TABLE live_watchers FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_rows ON live_watchers TO %I '
                   'USING (true) WITH CHECK (true)', current_user);
END
$$;
