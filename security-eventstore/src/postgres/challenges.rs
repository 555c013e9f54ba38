//! A [`ChallengeStore`] in PostgreSQL: pending login challenges that any
//! replica can complete.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use security_core::{
    ChallengeDigest, ChallengePurpose, ChallengeQuota, ChallengeStore, ChallengeStoreError,
    PendingChallenge, QuotaScope, TenantId, UserId,
};
use uuid::Uuid;

use super::errors::db;
use super::store::PostgresEventStore;

const ISSUE: &str = "SELECT security_challenge_issue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const TAKE: &str = "SELECT user_id, payload, failures, expires_at \
     FROM security_challenge_take($1, $2, $3, $4)";
const PUT_BACK: &str = "SELECT security_challenge_put_back($1, $2, $3, $4, $5, $6, $7, $8)";

/// Pending challenges in the event store's database
/// (`security_challenges`, under row-level security per tenant): one row
/// per challenge, keyed by the SHA-256 of its token, bound to its tenant,
/// user, purpose and expiry. Taking one is a `DELETE … RETURNING`, so of
/// concurrent takes on any replicas exactly one gets it. Each operation is
/// one statement. Expired rows are removed as new challenges are issued in
/// the tenant.
#[derive(Debug, Clone)]
pub struct PostgresChallengeStore {
    store: PostgresEventStore,
}

impl PostgresChallengeStore {
    /// A challenge store in the store's database (its migrations create
    /// the table).
    pub fn new(store: &PostgresEventStore) -> Self {
        Self {
            store: store.clone(),
        }
    }
}

fn backend(error: sqlx::Error) -> ChallengeStoreError {
    ChallengeStoreError::backend(db(error))
}

fn quota(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn payload(challenge: &PendingChallenge) -> Result<String, ChallengeStoreError> {
    serde_json::to_string(&challenge.payload).map_err(ChallengeStoreError::backend)
}

#[async_trait]
impl ChallengeStore for PostgresChallengeStore {
    async fn issue(
        &self,
        challenge: PendingChallenge,
        quotas: ChallengeQuota,
        now: DateTime<Utc>,
    ) -> Result<(), ChallengeStoreError> {
        let text = payload(&challenge)?;
        let outcome: String = sqlx::query_scalar(ISSUE)
            .bind(challenge.tenant_id.as_uuid())
            .bind(challenge.digest.0.as_slice())
            .bind(challenge.user_id.as_uuid())
            .bind(challenge.purpose.as_str())
            .bind(text)
            .bind(i32::try_from(challenge.failures).unwrap_or(i32::MAX))
            .bind(challenge.expires_at)
            .bind(quota(quotas.per_user))
            .bind(quota(quotas.per_tenant))
            .bind(now)
            .fetch_one(self.store.pool())
            .await
            .map_err(backend)?;
        match outcome.as_str() {
            "ok" => Ok(()),
            "user" => Err(ChallengeStoreError::QuotaExceeded {
                scope: QuotaScope::User,
            }),
            "tenant" => Err(ChallengeStoreError::QuotaExceeded {
                scope: QuotaScope::Tenant,
            }),
            _ => Err(ChallengeStoreError::Duplicate),
        }
    }

    async fn take(
        &self,
        tenant: TenantId,
        digest: &ChallengeDigest,
        purpose: &ChallengePurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingChallenge>, ChallengeStoreError> {
        let row: Option<(Uuid, String, i32, DateTime<Utc>)> = sqlx::query_as(TAKE)
            .bind(tenant.as_uuid())
            .bind(digest.0.as_slice())
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(self.store.pool())
            .await
            .map_err(backend)?;
        let Some((user_id, text, failures, expires_at)) = row else {
            return Ok(None);
        };
        Ok(Some(PendingChallenge {
            digest: *digest,
            tenant_id: tenant,
            user_id: UserId::from_uuid(user_id),
            purpose: purpose.clone(),
            payload: serde_json::from_str(&text).map_err(ChallengeStoreError::backend)?,
            failures: u32::try_from(failures).unwrap_or(0),
            expires_at,
        }))
    }

    async fn put_back(
        &self,
        challenge: PendingChallenge,
        now: DateTime<Utc>,
    ) -> Result<(), ChallengeStoreError> {
        let text = payload(&challenge)?;
        sqlx::query(PUT_BACK)
            .bind(challenge.tenant_id.as_uuid())
            .bind(challenge.digest.0.as_slice())
            .bind(challenge.user_id.as_uuid())
            .bind(challenge.purpose.as_str())
            .bind(text)
            .bind(i32::try_from(challenge.failures).unwrap_or(i32::MAX))
            .bind(challenge.expires_at)
            .bind(now)
            .execute(self.store.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}
