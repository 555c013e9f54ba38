//! An [`AttemptLedger`] in Redis: a hash per key (failures, the ledger's
//! lock, the escalation level) and a sorted set of its leases (scored by
//! expiry), changed by Lua scripts, each atomic on the server.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use security_core::{
    AttemptLedger, AttemptLedgerError, AttemptOutcome, AttemptPolicy, LeaseId, Reservation,
};
use uuid::Uuid;

use super::connection::RedisConnection;

/// `{'granted'|'busy'|'locked', in_flight, locked_until_ms}`.
const RESERVE: &str = r"
local max = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local lease = ARGV[4]
local retention = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local n = redis.call('ZCARD', KEYS[2])
local locked = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')
if locked > now then return {'locked', n, locked} end
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if failures + n >= max then return {'busy', n, 0} end
redis.call('ZADD', KEYS[2], now + ttl, lease)
redis.call('PEXPIRE', KEYS[2], ttl)
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], retention) end
return {'granted', n + 1, 0}
";

/// Returns the lock's end in ms when the key is locked after it, else 0.
const SETTLE: &str = r"
local lease = ARGV[1]
local outcome = ARGV[2]
local max = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local base = tonumber(ARGV[5])
local maxlock = tonumber(ARGV[6])
local reset = tonumber(ARGV[7])
local retention = tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local held = redis.call('ZREM', KEYS[2], lease)
local locked = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')
if held == 1 then
  if outcome == 'failure' then
    local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
    if base >= 0 and locked <= now and failures >= max then
      local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
      local last = tonumber(redis.call('HGET', KEYS[1], 'last_lock_until') or '-1')
      if last >= 0 and now >= last + reset then level = 0 end
      local duration = math.min(base * (2 ^ math.min(level, 32)), maxlock)
      locked = now + duration
      redis.call('HSET', KEYS[1], 'locked_until', string.format('%d', locked),
        'last_lock_until', string.format('%d', locked), 'level', level + 1, 'failures', 0)
    end
  elseif outcome == 'success' then
    redis.call('HSET', KEYS[1], 'failures', 0, 'level', 0)
  end
  local keep = retention
  if locked > now then keep = keep + (locked - now) end
  redis.call('PEXPIRE', KEYS[1], keep)
end
if locked > now then return locked end
return 0
";

/// Sets the failures when no lease is live.
const RESYNC: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'failures', ARGV[1])
end
return 0
";

/// Verification budgets and the lockouts of unknown usernames in Redis:
/// each operation one round trip (a Lua script, atomic on the server).
/// Keys are `<prefix>attempts:<key>` (a hash) and
/// `<prefix>attempts:<key>:leases` (a sorted set); both expire by
/// themselves (the hash a day, or the policy's escalation reset, after its
/// last change, longer while a lock lasts), so nothing needs sweeping.
#[derive(Debug, Clone)]
pub struct RedisAttemptLedger {
    connection: RedisConnection,
    reserve: Script,
    settle: Script,
    resync: Script,
}

impl RedisAttemptLedger {
    /// A ledger over a connection.
    pub fn new(connection: &RedisConnection) -> Self {
        Self {
            connection: connection.clone(),
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
            resync: Script::new(RESYNC),
        }
    }

    fn keys(&self, key: &str) -> (String, String) {
        let hash = self.connection.key("attempts", key);
        let leases = format!("{hash}:leases");
        (hash, leases)
    }
}

fn backend(error: redis::RedisError) -> AttemptLedgerError {
    AttemptLedgerError::backend(error)
}

fn ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

fn retention_ms(policy: &AttemptPolicy) -> i64 {
    let reset = policy
        .lockout
        .map_or(security_core::DEFAULT_ESCALATION_RESET_SECS, |l| {
            l.escalation_reset_secs
        });
    secs_ms(reset.clamp(3600, 30 * 86_400))
}

fn at(ms: i64) -> Option<DateTime<Utc>> {
    (ms > 0)
        .then(|| DateTime::from_timestamp_millis(ms))
        .flatten()
}

#[async_trait]
impl AttemptLedger for RedisAttemptLedger {
    async fn reserve(
        &self,
        key: &str,
        policy: &AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<Reservation, AttemptLedgerError> {
        let (hash, leases) = self.keys(key);
        let lease = LeaseId(Uuid::now_v7());
        let mut connection = self.connection.manager.clone();
        let (outcome, in_flight, locked): (String, i64, i64) = self
            .reserve
            .key(hash)
            .key(leases)
            .arg(policy.max_failures.max(1))
            .arg(ms(policy.lease_ttl))
            .arg(now.timestamp_millis())
            .arg(lease.0.simple().to_string())
            .arg(retention_ms(policy))
            .invoke_async(&mut connection)
            .await
            .map_err(backend)?;
        Ok(match (outcome.as_str(), at(locked)) {
            ("granted", _) => Reservation::Granted(lease),
            ("locked", Some(until)) => Reservation::Locked { until },
            _ => Reservation::Busy {
                in_flight: u32::try_from(in_flight).unwrap_or(0),
            },
        })
    }

    async fn settle(
        &self,
        key: &str,
        lease: LeaseId,
        outcome: AttemptOutcome,
        policy: &AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptLedgerError> {
        let (hash, leases) = self.keys(key);
        let outcome = match outcome {
            AttemptOutcome::Failure => "failure",
            AttemptOutcome::Success => "success",
            AttemptOutcome::Released => "released",
        };
        let (base, max_lock, reset) = match policy.lockout {
            Some(l) => (
                secs_ms(l.base_lock_secs),
                secs_ms(l.max_lock_secs),
                secs_ms(l.escalation_reset_secs),
            ),
            None => (-1, 0, 0),
        };
        let mut connection = self.connection.manager.clone();
        let locked: i64 = self
            .settle
            .key(hash)
            .key(leases)
            .arg(lease.0.simple().to_string())
            .arg(outcome)
            .arg(policy.max_failures.max(1))
            .arg(now.timestamp_millis())
            .arg(base)
            .arg(max_lock)
            .arg(reset)
            .arg(retention_ms(policy))
            .invoke_async(&mut connection)
            .await
            .map_err(backend)?;
        Ok(at(locked))
    }

    async fn resync(
        &self,
        key: &str,
        failures: u32,
        now: DateTime<Utc>,
    ) -> Result<(), AttemptLedgerError> {
        let (hash, leases) = self.keys(key);
        let mut connection = self.connection.manager.clone();
        self.resync
            .key(hash)
            .key(leases)
            .arg(failures)
            .arg(now.timestamp_millis())
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
