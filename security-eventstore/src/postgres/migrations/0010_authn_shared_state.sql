-- What the replicas of an authentication service share besides events:
-- rate-limit windows, verification budgets (and the lockouts of unknown
-- usernames), pending login challenges. Each operation is one statement
-- (a function call), atomic per key through the key's row lock.

-- Sliding-window logs: the instants of the counted events of each key.
-- Keys are opaque (the library puts hashes of usernames in them, never a
-- name); no tenant column, so no row-level security: only the owner role
-- and its members use these tables.
CREATE TABLE security_rate_limits (
    key text PRIMARY KEY,
    hits timestamptz[] NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX security_rate_limits_expiry_idx ON security_rate_limits (expires_at);

-- Counts one event under the limit for each key in turn and stops at the
-- first refusal: its 1-based index and the milliseconds until a slot frees
-- (0, 0 when every key allowed it).
CREATE FUNCTION security_rate_acquire(
    p_keys text[], p_max integer, p_window interval, p_now timestamptz,
    OUT refused integer, OUT retry_after_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_key text;
    v_index integer := 0;
    v_hits timestamptz[];
    v_frees timestamptz;
BEGIN
    refused := 0;
    retry_after_ms := 0;
    FOREACH v_key IN ARRAY p_keys LOOP
        v_index := v_index + 1;
        INSERT INTO security_rate_limits (key, hits, expires_at)
        VALUES (v_key, '{}', p_now + p_window)
        ON CONFLICT (key) DO NOTHING;
        SELECT hits INTO v_hits FROM security_rate_limits WHERE key = v_key FOR UPDATE;
        SELECT coalesce(array_agg(h ORDER BY h), '{}') INTO v_hits
        FROM unnest(v_hits) AS h WHERE h > p_now - p_window;
        IF cardinality(v_hits) >= p_max THEN
            v_frees := v_hits[cardinality(v_hits) - p_max + 1] + p_window;
            UPDATE security_rate_limits SET hits = v_hits WHERE key = v_key;
            refused := v_index;
            retry_after_ms := greatest(0, ceil(extract(epoch FROM (v_frees - p_now)) * 1000))::bigint;
            RETURN;
        END IF;
        UPDATE security_rate_limits
        SET hits = v_hits || p_now, expires_at = p_now + p_window
        WHERE key = v_key;
    END LOOP;
    -- Now and then, sweep windows that emptied.
    IF random() < 0.01 THEN
        DELETE FROM security_rate_limits
        WHERE ctid = ANY (ARRAY(SELECT ctid FROM security_rate_limits
                                WHERE expires_at < p_now LIMIT 256));
    END IF;
END $$;

-- Verification budgets: failures since the last success, the ledger's own
-- lock (unknown usernames), and the escalation level.
CREATE TABLE security_login_attempts (
    key text PRIMARY KEY,
    failures integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    level integer NOT NULL DEFAULT 0,
    last_lock_until timestamptz,
    expires_at timestamptz NOT NULL
);
CREATE INDEX security_login_attempts_expiry_idx ON security_login_attempts (expires_at);

-- Leases in flight.
CREATE TABLE security_login_leases (
    key text NOT NULL REFERENCES security_login_attempts (key) ON DELETE CASCADE,
    lease_id uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (key, lease_id)
);

-- 'granted' | 'busy' | 'locked', the leases in flight, the lock's end.
CREATE FUNCTION security_attempt_reserve(
    p_key text, p_lease uuid, p_max integer, p_ttl interval, p_retention interval,
    p_now timestamptz, OUT outcome text, OUT in_flight integer, OUT locked_until timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_row security_login_attempts%ROWTYPE;
BEGIN
    INSERT INTO security_login_attempts (key, expires_at) VALUES (p_key, p_now + p_retention)
    ON CONFLICT (key) DO NOTHING;
    SELECT * INTO v_row FROM security_login_attempts WHERE key = p_key FOR UPDATE;
    DELETE FROM security_login_leases l WHERE l.key = p_key AND l.expires_at <= p_now;
    SELECT count(*) INTO in_flight FROM security_login_leases l WHERE l.key = p_key;
    IF v_row.locked_until > p_now THEN
        outcome := 'locked';
        locked_until := v_row.locked_until;
        RETURN;
    END IF;
    IF v_row.failures + in_flight >= p_max THEN
        outcome := 'busy';
        RETURN;
    END IF;
    INSERT INTO security_login_leases (key, lease_id, expires_at)
    VALUES (p_key, p_lease, p_now + p_ttl);
    UPDATE security_login_attempts SET expires_at = greatest(expires_at, p_now + p_retention)
    WHERE key = p_key;
    outcome := 'granted';
    in_flight := in_flight + 1;
END $$;

-- Settles a lease ('failure' | 'success' | 'released'); with a lockout
-- policy (p_base_secs not null) reaching p_max failures locks the key.
-- Returns the lock's end when the key is locked after it.
CREATE FUNCTION security_attempt_settle(
    p_key text, p_lease uuid, p_outcome text, p_max integer,
    p_base_secs bigint, p_max_lock_secs bigint, p_reset_secs bigint,
    p_retention interval, p_now timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_row security_login_attempts%ROWTYPE;
    v_held boolean;
    v_level integer;
    v_secs numeric;
BEGIN
    SELECT * INTO v_row FROM security_login_attempts WHERE key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    DELETE FROM security_login_leases l WHERE l.key = p_key AND l.expires_at <= p_now;
    DELETE FROM security_login_leases l WHERE l.key = p_key AND l.lease_id = p_lease;
    v_held := FOUND;
    IF v_held THEN
        IF p_outcome = 'failure' THEN
            v_row.failures := v_row.failures + 1;
            IF p_base_secs IS NOT NULL
               AND (v_row.locked_until IS NULL OR v_row.locked_until <= p_now)
               AND v_row.failures >= p_max THEN
                v_level := CASE
                    WHEN v_row.last_lock_until IS NOT NULL
                         AND p_now >= v_row.last_lock_until + make_interval(secs => p_reset_secs)
                    THEN 0 ELSE v_row.level END;
                v_secs := least(p_base_secs::numeric * power(2::numeric, least(v_level, 32)),
                                p_max_lock_secs::numeric);
                v_row.locked_until := p_now + make_interval(secs => v_secs::double precision);
                v_row.last_lock_until := v_row.locked_until;
                v_row.level := v_level + 1;
                v_row.failures := 0;
            END IF;
        ELSIF p_outcome = 'success' THEN
            v_row.failures := 0;
            v_row.level := 0;
        END IF;
        UPDATE security_login_attempts
        SET failures = v_row.failures, locked_until = v_row.locked_until, level = v_row.level,
            last_lock_until = v_row.last_lock_until,
            expires_at = greatest(v_row.expires_at, p_now + p_retention,
                                  coalesce(v_row.locked_until, p_now) + p_retention)
        WHERE key = p_key;
    END IF;
    -- Now and then, sweep budgets that hold nothing any more.
    IF random() < 0.01 THEN
        DELETE FROM security_login_attempts
        WHERE ctid = ANY (ARRAY(SELECT ctid FROM security_login_attempts
                                WHERE expires_at < p_now LIMIT 256));
    END IF;
    IF v_row.locked_until > p_now THEN
        RETURN v_row.locked_until;
    END IF;
    RETURN NULL;
END $$;

-- Sets the failures when no lease is live.
CREATE FUNCTION security_attempt_resync(p_key text, p_failures integer, p_now timestamptz)
RETURNS void
LANGUAGE sql AS $$
    UPDATE security_login_attempts a SET failures = p_failures
    WHERE a.key = p_key
      AND NOT EXISTS (SELECT 1 FROM security_login_leases l
                      WHERE l.key = p_key AND l.expires_at > p_now);
$$;

-- Pending challenges, by the SHA-256 of their token, under row-level
-- security per tenant like every tenant table.
CREATE TABLE security_challenges (
    digest bytea PRIMARY KEY,
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    purpose text NOT NULL,
    payload text NOT NULL,
    failures integer NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX security_challenges_tenant_idx ON security_challenges (tenant_id, expires_at);
CREATE INDEX security_challenges_user_idx ON security_challenges (tenant_id, user_id, expires_at);

ALTER TABLE security_challenges ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_challenges FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON security_challenges
    USING (tenant_id = (SELECT security_current_tenant()))
    WITH CHECK (tenant_id = (SELECT security_current_tenant()));

-- Stores a challenge within the quotas: 'ok' | 'user' | 'tenant' |
-- 'duplicate'. The user's quota is exact (an advisory lock per user); the
-- tenant's may be passed by the number of concurrent issuers.
CREATE FUNCTION security_challenge_issue(
    p_tenant uuid, p_digest bytea, p_user uuid, p_purpose text, p_payload text,
    p_failures integer, p_expires timestamptz, p_per_user integer, p_per_tenant integer,
    p_now timestamptz)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM set_config('app.current_tenant', p_tenant::text, true);
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'security_challenges:' || p_tenant::text || ':' || p_user::text, 0));
    DELETE FROM security_challenges
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM security_challenges
                            WHERE tenant_id = p_tenant AND expires_at <= p_now LIMIT 64));
    SELECT count(*) INTO v_count FROM security_challenges
    WHERE tenant_id = p_tenant AND user_id = p_user AND expires_at > p_now;
    IF v_count >= p_per_user THEN
        RETURN 'user';
    END IF;
    SELECT count(*) INTO v_count FROM (
        SELECT 1 FROM security_challenges
        WHERE tenant_id = p_tenant AND expires_at > p_now LIMIT p_per_tenant) AS live;
    IF v_count >= p_per_tenant THEN
        RETURN 'tenant';
    END IF;
    INSERT INTO security_challenges
        (digest, tenant_id, user_id, purpose, payload, failures, expires_at)
    VALUES (p_digest, p_tenant, p_user, p_purpose, p_payload, p_failures, p_expires)
    ON CONFLICT (digest) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;
    RETURN 'ok';
END $$;

-- Removes and returns the live challenge of the tenant with this digest
-- and purpose (nothing for an expired one, which is removed, or one of
-- another purpose, which stays).
CREATE FUNCTION security_challenge_take(
    p_tenant uuid, p_digest bytea, p_purpose text, p_now timestamptz)
RETURNS TABLE (user_id uuid, payload text, failures integer, expires_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.current_tenant', p_tenant::text, true);
    DELETE FROM security_challenges c
    WHERE c.digest = p_digest AND c.tenant_id = p_tenant AND c.expires_at <= p_now;
    DELETE FROM security_challenges c
    WHERE c.digest = p_digest AND c.tenant_id = p_tenant AND c.purpose = p_purpose
      AND c.expires_at > p_now
    RETURNING c.user_id, c.payload, c.failures, c.expires_at
    INTO user_id, payload, failures, expires_at;
    IF FOUND THEN
        RETURN NEXT;
    END IF;
END $$;

-- Stores a taken challenge again, unless it has expired.
CREATE FUNCTION security_challenge_put_back(
    p_tenant uuid, p_digest bytea, p_user uuid, p_purpose text, p_payload text,
    p_failures integer, p_expires timestamptz, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.current_tenant', p_tenant::text, true);
    IF p_expires > p_now THEN
        INSERT INTO security_challenges
            (digest, tenant_id, user_id, purpose, payload, failures, expires_at)
        VALUES (p_digest, p_tenant, p_user, p_purpose, p_payload, p_failures, p_expires)
        ON CONFLICT (digest) DO UPDATE SET failures = EXCLUDED.failures;
    END IF;
END $$;

REVOKE ALL ON security_rate_limits, security_login_attempts, security_login_leases FROM PUBLIC;
