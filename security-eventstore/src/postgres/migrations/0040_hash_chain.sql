-- The tamper-evident hash chain of each tenant's events (docs/AUDIT.md).
--
-- Every event row carries `prev_hash`, the hash of its tenant's previous
-- event (32 zero bytes for the first), and `hash`:
--   SHA-256(prev_hash || int8send(global_position) || content digest)
-- where the content digest is SHA-256 of the canonical encoding of the
-- envelope (`security_chain_content` below; the store computes it in Rust
-- before taking the log head's lock). `security_chain_heads` records each
-- tenant's last event, updated in the commit that appends it, so a removed
-- tail shows.

CREATE TABLE security_chain_heads (
    tenant_id uuid PRIMARY KEY,
    position bigint NOT NULL CHECK (position > 0),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32)
);

-- SHA-256 of the canonical encoding of one event (docs/AUDIT.md). The
-- store computes the same digest in Rust; this one fills in rows written
-- before the chain existed and lets the database check a row by itself.
CREATE FUNCTION security_chain_content(
    event_id uuid, tenant_id uuid, aggregate_type text, aggregate_id uuid, version bigint,
    event_type text, schema_version bigint, occurred_at timestamptz, payload text, metadata text
) RETURNS bytea
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN sha256(
        '\x73656375726974792d636861696e2d763100'::bytea -- "security-chain-v1" 0x00
        || uuid_send(event_id) || uuid_send(tenant_id)
        || int8send(octet_length(aggregate_type)::bigint) || convert_to(aggregate_type, 'UTF8')
        || uuid_send(aggregate_id) || int8send(version)
        || int8send(octet_length(event_type)::bigint) || convert_to(event_type, 'UTF8')
        || int8send(schema_version)
        || int8send(floor(extract(epoch FROM occurred_at))::bigint)
        || int4send(((extract(epoch FROM occurred_at) - floor(extract(epoch FROM occurred_at)))
                     * 1000000000)::integer)
        || int8send(octet_length(payload)::bigint) || convert_to(payload, 'UTF8')
        || int8send(octet_length(metadata)::bigint) || convert_to(metadata, 'UTF8'));

-- Chains one append's events (their content digests, in order, numbered
-- from `first_position`) to the tenant's head, records the new head, and
-- returns the tenant's old head followed by each event's hash.
--
-- The append statement calls it with a position taken from the log head,
-- so it runs after that row's lock is held; every append holds that lock
-- until it commits. As a VOLATILE function its query takes a fresh
-- snapshot, which therefore sees every append committed before this one:
-- the head read here is the tenant's last committed event, never a stale
-- one, whichever process wrote it.
CREATE FUNCTION security_chain_append(p_tenant uuid, p_first bigint, p_contents bytea[])
    RETURNS bytea[]
    LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    tip bytea;
    links bytea[];
    content bytea;
    pos bigint := p_first;
BEGIN
    SELECT hash INTO tip FROM security_chain_heads WHERE tenant_id = p_tenant;
    IF tip IS NULL THEN
        tip := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;
    links := ARRAY[tip];
    FOREACH content IN ARRAY p_contents LOOP
        tip := sha256(tip || int8send(pos) || content);
        links := array_append(links, tip);
        pos := pos + 1;
    END LOOP;
    INSERT INTO security_chain_heads AS h (tenant_id, position, hash)
        VALUES (p_tenant, pos - 1, tip)
        ON CONFLICT (tenant_id) DO UPDATE SET position = EXCLUDED.position, hash = EXCLUDED.hash;
    RETURN links;
END
$$;

-- Rows written before the chain existed are chained here, in position
-- order, with appends held off.
LOCK TABLE security_log_head IN EXCLUSIVE MODE;
ALTER TABLE security_events ADD COLUMN prev_hash bytea, ADD COLUMN hash bytea;
ALTER TABLE security_events NO FORCE ROW LEVEL SECURITY;
DO $$
DECLARE
    r record;
    tip bytea;
    link bytea;
BEGIN
    FOR r IN SELECT * FROM security_events ORDER BY global_position LOOP
        SELECT hash INTO tip FROM security_chain_heads WHERE tenant_id = r.tenant_id;
        tip := coalesce(tip, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
        link := sha256(tip || int8send(r.global_position) || security_chain_content(
            r.event_id, r.tenant_id, r.aggregate_type, r.aggregate_id, r.version, r.event_type,
            r.schema_version, r.occurred_at, r.payload::text, r.metadata::text));
        UPDATE security_events SET prev_hash = tip, hash = link
            WHERE global_position = r.global_position;
        INSERT INTO security_chain_heads (tenant_id, position, hash)
            VALUES (r.tenant_id, r.global_position, link)
            ON CONFLICT (tenant_id) DO UPDATE SET position = EXCLUDED.position, hash = EXCLUDED.hash;
    END LOOP;
END
$$;
ALTER TABLE security_events FORCE ROW LEVEL SECURITY;
ALTER TABLE security_events
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL,
    ADD CONSTRAINT security_events_hash_len CHECK (octet_length(prev_hash) = 32 AND octet_length(hash) = 32);

ALTER TABLE security_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON security_chain_heads FOR SELECT
    USING (tenant_id = (SELECT security_current_tenant()) OR (SELECT security_all_tenants()));
CREATE POLICY tenant_append ON security_chain_heads FOR INSERT
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));
CREATE POLICY tenant_advance ON security_chain_heads FOR UPDATE
    USING (tenant_id = (SELECT security_current_tenant()))
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));
