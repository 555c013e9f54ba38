-- The audit index: one row per classified event (see docs/AUDIT.md), kept
-- by a projection over every tenant and queried one tenant at a time.
-- Rows are written only by the application's own projection (a
-- transaction that reads every tenant); a tenant's transaction reads its
-- own rows only.
CREATE TABLE security_audit_index (
    tenant_id uuid NOT NULL,
    global_position bigint NOT NULL CHECK (global_position > 0),
    event_id uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    kind text NOT NULL
        CHECK (kind IN ('authentication', 'authorization', 'admin', 'key_management')),
    outcome text NOT NULL CHECK (outcome IN ('success', 'challenged', 'failure', 'denied')),
    event_type text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id uuid NOT NULL,
    subject_id uuid,
    actor text,
    PRIMARY KEY (tenant_id, global_position)
);

CREATE INDEX security_audit_index_subject
    ON security_audit_index (tenant_id, subject_id, global_position)
    WHERE subject_id IS NOT NULL;
CREATE INDEX security_audit_index_actor
    ON security_audit_index (tenant_id, actor, global_position)
    WHERE actor IS NOT NULL;
CREATE INDEX security_audit_index_kind
    ON security_audit_index (tenant_id, kind, global_position);
CREATE INDEX security_audit_index_time
    ON security_audit_index (tenant_id, occurred_at);

-- Usernames of the users the index knows, for resolving subjects.
CREATE TABLE security_audit_usernames (
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    username text NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

ALTER TABLE security_audit_index ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_audit_index FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON security_audit_index FOR SELECT
    USING (tenant_id = (SELECT security_current_tenant()) OR (SELECT security_all_tenants()));
CREATE POLICY projection_write ON security_audit_index FOR INSERT
    WITH CHECK ((SELECT security_all_tenants()));
CREATE POLICY projection_rebuild ON security_audit_index FOR DELETE
    USING ((SELECT security_all_tenants()));

ALTER TABLE security_audit_usernames ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_audit_usernames FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON security_audit_usernames FOR SELECT
    USING (tenant_id = (SELECT security_current_tenant()) OR (SELECT security_all_tenants()));
CREATE POLICY projection_write ON security_audit_usernames FOR INSERT
    WITH CHECK ((SELECT security_all_tenants()));
CREATE POLICY projection_update ON security_audit_usernames FOR UPDATE
    USING ((SELECT security_all_tenants()))
    WITH CHECK ((SELECT security_all_tenants()));
CREATE POLICY projection_rebuild ON security_audit_usernames FOR DELETE
    USING ((SELECT security_all_tenants()));
