//! The in-memory [`ChallengeStore`]: exact inside one process. Several
//! replicas share one in PostgreSQL instead
//! (`security_eventstore::PostgresChallengeStore`).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use security_core::{
    ChallengeDigest, ChallengePurpose, ChallengeQuota, ChallengeStore, ChallengeStoreError,
    PendingChallenge, QuotaScope, TenantId, UserId,
};

/// Pending challenges in a map, by digest.
#[derive(Default)]
pub struct MemoryChallengeStore {
    map: Mutex<HashMap<ChallengeDigest, PendingChallenge>>,
}

impl std::fmt::Debug for MemoryChallengeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryChallengeStore")
            .field("pending", &self.pending())
            .finish()
    }
}

impl MemoryChallengeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many challenges are kept (live or not yet swept).
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChallengeDigest, PendingChallenge>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn live_counts(
    map: &HashMap<ChallengeDigest, PendingChallenge>,
    tenant: TenantId,
    user: UserId,
    now: DateTime<Utc>,
) -> (usize, usize) {
    let mut per_user = 0;
    let mut per_tenant = 0;
    for c in map.values() {
        if c.tenant_id == tenant && c.expires_at > now {
            per_tenant += 1;
            if c.user_id == user {
                per_user += 1;
            }
        }
    }
    (per_user, per_tenant)
}

#[async_trait]
impl ChallengeStore for MemoryChallengeStore {
    async fn issue(
        &self,
        challenge: PendingChallenge,
        quota: ChallengeQuota,
        now: DateTime<Utc>,
    ) -> Result<(), ChallengeStoreError> {
        let mut map = self.lock();
        let limit = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        let (mut per_user, mut per_tenant) =
            live_counts(&map, challenge.tenant_id, challenge.user_id, now);
        if per_tenant >= limit(quota.per_tenant) || per_user >= limit(quota.per_user) {
            map.retain(|_, c| c.expires_at > now);
            (per_user, per_tenant) = live_counts(&map, challenge.tenant_id, challenge.user_id, now);
        }
        if per_tenant >= limit(quota.per_tenant) {
            return Err(ChallengeStoreError::QuotaExceeded {
                scope: QuotaScope::Tenant,
            });
        }
        if per_user >= limit(quota.per_user) {
            return Err(ChallengeStoreError::QuotaExceeded {
                scope: QuotaScope::User,
            });
        }
        if map.contains_key(&challenge.digest) {
            return Err(ChallengeStoreError::Duplicate);
        }
        map.insert(challenge.digest, challenge);
        Ok(())
    }

    async fn take(
        &self,
        tenant: TenantId,
        digest: &ChallengeDigest,
        purpose: &ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingChallenge>, ChallengeStoreError> {
        let mut map = self.lock();
        let Some(found) = map.get(digest) else {
            return Ok(None);
        };
        if found.expires_at <= now {
            map.remove(digest);
            return Ok(None);
        }
        if found.purpose != *purpose || found.tenant_id != tenant {
            return Ok(None);
        }
        Ok(map.remove(digest))
    }

    async fn put_back(
        &self,
        challenge: PendingChallenge,
        now: DateTime<Utc>,
    ) -> Result<(), ChallengeStoreError> {
        if challenge.expires_at > now {
            self.lock().insert(challenge.digest, challenge);
        }
        Ok(())
    }
}
