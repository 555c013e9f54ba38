-- Snapshots: per stream and state schema version, the newest aggregate
-- state saved by the command bus, so a long stream loads from it plus the
-- events after it. Only an optimisation: deleting every row loses nothing
-- but speed. Never published (no outbox row).
CREATE TABLE security_snapshots (
    tenant_id uuid NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id uuid NOT NULL,
    schema_version bigint NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
    version bigint NOT NULL CHECK (version > 0),
    global_position bigint NOT NULL CHECK (global_position > 0),
    occurred_until timestamptz NOT NULL,
    -- json, not jsonb, as for events: the exact text written comes back.
    state json NOT NULL,
    PRIMARY KEY (tenant_id, aggregate_type, aggregate_id, schema_version)
);

ALTER TABLE security_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_snapshots FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON security_snapshots
    USING (tenant_id = (SELECT security_current_tenant()))
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));
