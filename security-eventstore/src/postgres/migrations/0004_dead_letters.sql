-- Events a projection could not decode or apply, recorded so that the
-- projection goes on (and can be rebuilt once the cause is fixed). Keyed
-- like checkpoints: a tenant's projections see only their own rows.
CREATE TABLE security_projection_dead_letters (
    scope text NOT NULL CHECK (scope IN ('tenant', 'all')),
    tenant_id uuid NOT NULL,
    projection text NOT NULL,
    global_position bigint NOT NULL CHECK (global_position > 0),
    event_id uuid NOT NULL,
    event_tenant_id uuid NOT NULL,
    event_type text NOT NULL,
    reason text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, tenant_id, projection, global_position)
);

ALTER TABLE security_projection_dead_letters ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_projection_dead_letters FORCE ROW LEVEL SECURITY;
CREATE POLICY scoped_rows ON security_projection_dead_letters
    USING ((scope = 'tenant' AND tenant_id = (SELECT security_current_tenant()))
        OR (scope = 'all' AND (SELECT security_all_tenants())))
    WITH CHECK ((scope = 'tenant' AND tenant_id = (SELECT security_current_tenant()))
        OR (scope = 'all' AND (SELECT security_all_tenants())));
