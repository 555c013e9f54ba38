-- The event store, its outbox, idempotency keys, projection checkpoints.
--
-- Every table that holds tenant rows has row-level security, forced also on
-- the owner: a session sees a tenant's rows only after the store has set
-- `app.current_tenant` for its transaction. `app.all_tenants = 'on'` opens
-- every tenant's rows for reading (Scope::All projections, the relay), but
-- only to members of the tables' owner role, so a role that owns nothing
-- cannot use it. Superusers and BYPASSRLS roles bypass all of this.

-- The head of the global log: the last position handed out. Appends take
-- this row's lock to number their events and keep it until they commit, so
-- transactions commit in position order (see the store's documentation).
-- It holds no tenant data.
CREATE TABLE security_log_head (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    position bigint NOT NULL CHECK (position >= 0)
);
INSERT INTO security_log_head (id, position) VALUES (true, 0);

-- The tenant the current transaction acts for (NULL: none).
CREATE FUNCTION security_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN nullif(current_setting('app.current_tenant', true), '')::uuid;

-- Whether the current transaction reads every tenant, and may.
CREATE FUNCTION security_all_tenants() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce(current_setting('app.all_tenants', true), '') = 'on'
        AND pg_has_role(current_user,
                        (SELECT c.relowner FROM pg_catalog.pg_class c
                          WHERE c.oid = 'security_log_head'::regclass),
                        'MEMBER');

-- One row per stream: its last version. Appends lock it for the
-- optimistic-concurrency check.
CREATE TABLE security_streams (
    tenant_id uuid NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    PRIMARY KEY (tenant_id, aggregate_type, aggregate_id)
);

CREATE TABLE security_events (
    global_position bigint PRIMARY KEY CHECK (global_position > 0),
    event_id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id uuid NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    event_type text NOT NULL,
    schema_version bigint NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
    occurred_at timestamptz NOT NULL,
    -- json, not jsonb: the exact text written comes back (jsonb cannot
    -- hold \u0000 and reorders keys).
    payload json NOT NULL,
    metadata json NOT NULL,
    CONSTRAINT security_events_event_id_key UNIQUE (event_id),
    CONSTRAINT security_events_stream_version_key
        UNIQUE (tenant_id, aggregate_type, aggregate_id, version)
);
CREATE INDEX security_events_tenant_position_idx ON security_events (tenant_id, global_position);

CREATE TABLE security_idempotency_keys (
    tenant_id uuid NOT NULL,
    idempotency_key text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id uuid NOT NULL,
    first_version bigint NOT NULL,
    last_version bigint NOT NULL,
    first_position bigint NOT NULL,
    last_position bigint NOT NULL,
    event_ids uuid[] NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);

-- The transactional outbox: one row per event not yet published. Written
-- by the append's own statement, removed by the relay once published.
CREATE TABLE security_outbox (
    global_position bigint PRIMARY KEY,
    tenant_id uuid NOT NULL
);

CREATE TABLE security_projection_checkpoints (
    scope text NOT NULL CHECK (scope IN ('tenant', 'all')),
    tenant_id uuid NOT NULL,
    projection text NOT NULL,
    position bigint NOT NULL CHECK (position >= 0),
    PRIMARY KEY (scope, tenant_id, projection)
);

ALTER TABLE security_streams ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_streams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON security_streams
    USING (tenant_id = (SELECT security_current_tenant()))
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));

-- Events are append-only: there is no UPDATE or DELETE policy, so no
-- role subject to row-level security can change or remove one.
ALTER TABLE security_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON security_events FOR SELECT
    USING (tenant_id = (SELECT security_current_tenant()) OR (SELECT security_all_tenants()));
CREATE POLICY tenant_append ON security_events FOR INSERT
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));

ALTER TABLE security_idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON security_idempotency_keys FOR SELECT
    USING (tenant_id = (SELECT security_current_tenant()));
CREATE POLICY tenant_append ON security_idempotency_keys FOR INSERT
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));

ALTER TABLE security_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_append ON security_outbox FOR INSERT
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));
CREATE POLICY relay_read ON security_outbox FOR SELECT
    USING (tenant_id = (SELECT security_current_tenant()) OR (SELECT security_all_tenants()));
CREATE POLICY relay_done ON security_outbox FOR DELETE
    USING (tenant_id = (SELECT security_current_tenant()) OR (SELECT security_all_tenants()));

ALTER TABLE security_projection_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_projection_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY scoped_rows ON security_projection_checkpoints
    USING ((scope = 'tenant' AND tenant_id = (SELECT security_current_tenant()))
        OR (scope = 'all' AND (SELECT security_all_tenants())))
    WITH CHECK ((scope = 'tenant' AND tenant_id = (SELECT security_current_tenant()))
        OR (scope = 'all' AND (SELECT security_all_tenants())));

REVOKE ALL ON security_log_head FROM PUBLIC;
