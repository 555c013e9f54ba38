-- Encrypted key records of security-crypto's EnvelopeKeyStore. The private
-- material in `record` is encrypted (a data key wrapped under the master
-- key) and every field is covered by the record's MAC: this table never
-- holds a private key in clear. Records are never deleted (no DELETE
-- policy): destroying a key overwrites its material.
CREATE TABLE security_key_records (
    key_id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    owner_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    master_key_id text NOT NULL,
    revision bigint NOT NULL CHECK (revision >= 0),
    -- The whole record as written (json keeps the exact text).
    record json NOT NULL
);
CREATE INDEX security_key_records_owner_idx
    ON security_key_records (tenant_id, owner_id, created_at, key_id);
CREATE INDEX security_key_records_master_idx
    ON security_key_records (master_key_id, created_at, key_id);

-- Writes name their tenant. Reads by key id (keys are named by id in
-- sealed values and tokens; the layers above check the tenant) and the
-- master-key rotation's work list use the owner-only all-tenants mode.
ALTER TABLE security_key_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_key_records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON security_key_records FOR SELECT
    USING (tenant_id = (SELECT security_current_tenant()) OR (SELECT security_all_tenants()));
CREATE POLICY tenant_insert ON security_key_records FOR INSERT
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));
CREATE POLICY tenant_update ON security_key_records FOR UPDATE
    USING (tenant_id = (SELECT security_current_tenant()))
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));
