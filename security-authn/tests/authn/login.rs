//! Password logins: tokens, refusals, temporary and expired passwords,
//! password changes, rehash, API keys, public keys.

use base64::Engine as _;
use secrecy::ExposeSecret;
use security_authn::{AuthnError, LoginOutcome, PasswordRule};
use security_core::{
    AuthMethod, DomainEvent, KeyStore as _, PublicKey, Request, RoleName, TokenError,
    TokenValidator as _, User, UserEvent,
};

use crate::common::{Fixture, PASSWORD, client, secret};

// On a multi-threaded runtime, hashing runs in place (`block_in_place`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_login_issues_tokens_that_validate() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    f.authn
        .admin()
        .assign_role(
            &Request::default(),
            f.tenant(),
            alice,
            RoleName::new("officer").unwrap(),
        )
        .await
        .unwrap();
    // A role change revokes the user's sessions; log in a second later.
    f.advance(1);
    let tokens = f.tokens("Alice").await;
    assert_eq!(tokens.user_id, alice);
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_at, f.now() + chrono::Duration::minutes(30));
    assert_eq!(
        tokens.refresh_expires_at,
        f.now() + chrono::Duration::days(7)
    );
    let claims = f.validate(&tokens).await.unwrap();
    assert_eq!(claims.user_id, alice);
    assert_eq!(claims.sub, alice.to_string());
    assert_eq!(claims.tenant_id, f.tenant());
    assert_eq!(claims.session_id, Some(tokens.session_id));
    assert_eq!(claims.iss, "security");
    assert!(claims.aud.contains("security"));
    assert!(claims.has_role("officer"));
    assert_eq!(claims.exp - claims.iat, 1800);
    // The sync validator (what authz takes) agrees.
    assert_eq!(
        f.authn
            .validator()
            .validate(tokens.access_token.expose_secret())
            .unwrap(),
        claims
    );
    // The header: EdDSA, at+jwt, kid = the tenant's signing key.
    let header = tokens
        .access_token
        .expose_secret()
        .split('.')
        .next()
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let kid: security_core::KeyId = header["kid"].as_str().unwrap().parse().unwrap();
    let key = f.keys.key(kid).await.unwrap();
    assert_eq!(key.purpose, security_core::KeyPurpose::TokenSigning);
    assert_eq!(key.owner.tenant_id, f.tenant());
    // Events: the login in the user's stream, the session in its own.
    let types = f.event_types("user", alice).await;
    assert_eq!(types.last().unwrap(), "UserAuthenticated");
    let session = f.event_types("session", tokens.session_id).await;
    assert_eq!(session, ["SessionStarted"]);
    let events = f.stream("user", alice).await;
    let UserEvent::UserAuthenticated { method, client, .. } =
        events.last().unwrap().decode().unwrap()
    else {
        panic!()
    };
    assert_eq!(method, AuthMethod::Password);
    assert_eq!(client.ip, Some("198.51.100.1".parse().unwrap()));
}

#[tokio::test]
async fn an_unknown_username_costs_the_same_and_gets_the_same_error() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let before = f.hasher.work();
    let known = f.login("alice", "Wrong-Password-1").await.unwrap_err();
    let known_work = f.hasher.work() - before;
    let before = f.hasher.work();
    let unknown = f.login("mallory", "Wrong-Password-1").await.unwrap_err();
    let unknown_work = f.hasher.work() - before;
    assert!(matches!(known, AuthnError::InvalidCredentials), "{known:?}");
    assert!(
        matches!(unknown, AuthnError::InvalidCredentials),
        "{unknown:?}"
    );
    assert_eq!(known.to_string(), unknown.to_string());
    assert_eq!((known_work, unknown_work), (1, 1));
    assert_eq!(
        f.hasher.dummies.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // A right password costs the same one verification.
    let before = f.hasher.work();
    f.tokens("alice").await;
    assert_eq!(f.hasher.work() - before, 1);
    // Each attempt is recorded: the known one in the user's stream (with
    // its reason), the unknown one in the tenant's auth-audit stream.
    let events = f.stream("user", alice).await;
    assert!(events.iter().any(|e| {
        matches!(
            e.decode::<UserEvent>().unwrap(),
            UserEvent::AuthenticationFailed {
                reason: security_core::FailureReason::BadPassword,
                ..
            }
        )
    }));
    let audit = f.audit().await;
    assert_eq!(audit.len(), 1);
    let security_authn::AuthAuditEvent::AuthenticationAttemptFailed {
        user_id,
        username,
        reason,
        ..
    } = &audit[0]
    else {
        panic!("{audit:?}")
    };
    assert_eq!(*user_id, None);
    assert!(username.is_some(), "the username is kept, sealed");
    assert_eq!(*reason, security_core::FailureReason::BadPassword);
}

#[tokio::test]
async fn a_lockout_looks_the_same_for_unknown_usernames() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    // Alice is logged in somewhere when a stranger starts guessing.
    let session = f.tokens("alice").await;
    f.advance(60);
    let attempt = |name: &'static str, password: &'static str, ip: String| {
        let f = &f;
        async move {
            f.authn
                .authenticate(f.tenant(), name, &secret(password), &client(&ip))
                .await
                .unwrap_err()
        }
    };
    // Five failures each, from different addresses (only the lockout acts).
    for i in 0..5 {
        for name in ["alice", "ghost"] {
            let err = attempt(name, "nope-Nope-1!", format!("203.0.113.{i}")).await;
            assert!(
                matches!(err, AuthnError::InvalidCredentials),
                "{name} #{i}: {err:?}"
            );
        }
    }
    // Locked: the right password is refused too, and both answers match.
    f.advance(61);
    let answers: Vec<_> = [
        attempt("alice", PASSWORD, "203.0.113.99".into()).await,
        attempt("ghost", PASSWORD, "203.0.113.98".into()).await,
    ]
    .iter()
    .map(|e| (e.to_string(), e.retry_after()))
    .collect();
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, "user is locked");
    assert_eq!(answers[0].1, Some(std::time::Duration::from_secs(300 - 61)));
    let types = f.event_types("user", alice).await;
    assert!(types.contains(&"UserLocked".to_owned()), "{types:?}");
    // The stranger's failures did not log Alice out.
    assert!(!types.contains(&"SessionsRevoked".to_owned()), "{types:?}");
    assert!(f.validate(&session).await.is_ok());
    assert!(
        f.authn
            .refresh(&session.refresh_token, &client("198.51.100.9"))
            .await
            .is_ok()
    );
    // After the lock, failures lock again, twice as long, for both.
    // (The refused attempts during the lock did not count.)
    f.advance(300);
    for i in 0..5 {
        for name in ["alice", "ghost"] {
            // The failure that locks still answers "invalid credentials".
            let err = attempt(name, "nope-Nope-1!", format!("203.0.113.{}", 50 + i)).await;
            assert!(
                matches!(err, AuthnError::InvalidCredentials),
                "{name} #{i}: {err:?}"
            );
        }
        f.advance(13);
    }
    let answers: Vec<_> = [
        attempt("alice", PASSWORD, "203.0.113.97".into()).await,
        attempt("ghost", PASSWORD, "203.0.113.96".into()).await,
    ]
    .iter()
    .map(|e| (e.to_string(), e.retry_after()))
    .collect();
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].1, Some(std::time::Duration::from_secs(600 - 13)));
    // Once the lock has passed, the right password works.
    f.advance(600);
    f.tokens("alice").await;
}

#[tokio::test]
async fn inactive_accounts_and_expired_users_are_refused_with_typed_errors() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    f.authn
        .admin()
        .suspend_account(&Request::default(), f.account, "unpaid")
        .await
        .unwrap();
    assert!(matches!(
        f.login("alice", PASSWORD).await,
        Err(AuthnError::AccountSuspended)
    ));
    assert!(matches!(
        f.login("ghost", PASSWORD).await,
        Err(AuthnError::AccountSuspended)
    ));
    f.authn
        .admin()
        .reactivate_account(&Request::default(), f.account)
        .await
        .unwrap();
    f.tokens("alice").await;
    f.authn
        .admin()
        .user_command(
            &Request::default(),
            f.tenant(),
            alice,
            security_core::UserCommand::ExpireUser,
        )
        .await
        .unwrap();
    assert!(matches!(
        f.login("alice", PASSWORD).await,
        Err(AuthnError::UserExpired)
    ));
    // A wrong password does not reveal the expiry, and never locks (a lock
    // would replace the expired status).
    for _ in 0..6 {
        f.advance(30);
        assert!(matches!(
            f.login("alice", "x-Wrong-Pass-1").await,
            Err(AuthnError::InvalidCredentials)
        ));
    }
    let user: User = f.authn.admin().user(f.tenant(), alice).await.unwrap();
    assert_eq!(user.status, security_core::UserStatus::Expired);
    f.authn
        .admin()
        .expire_account(&Request::default(), f.account)
        .await
        .unwrap();
    assert!(matches!(
        f.login("alice", PASSWORD).await,
        Err(AuthnError::AccountExpired)
    ));
    let audit = f.audit().await;
    assert!(audit.iter().any(|e| matches!(
        e,
        security_authn::AuthAuditEvent::AuthenticationAttemptFailed {
            reason: security_core::FailureReason::AccountInactive,
            ..
        }
    )));
}

#[tokio::test]
async fn a_temporary_password_must_be_changed_at_the_next_login() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let before = f.tokens("alice").await;
    let temporary = f
        .authn
        .reset_password(&Request::default(), f.tenant(), alice)
        .await
        .unwrap();
    assert_eq!(f.authn.config().password_policy.check(&temporary), Ok(()));
    // The reset revoked every session.
    assert_eq!(f.validate(&before).await.unwrap_err(), TokenError::Revoked);
    assert!(matches!(
        f.authn
            .refresh(&before.refresh_token, &client("198.51.100.1"))
            .await,
        Err(AuthnError::SessionRevoked)
    ));
    let LoginOutcome::PasswordChangeRequired(ticket) =
        f.login("alice", temporary.expose_secret()).await.unwrap()
    else {
        panic!("expected a password change")
    };
    let c = client("198.51.100.1");
    // Every rule broken is listed, and the ticket survives a violation.
    let Err(AuthnError::PasswordPolicy(violation)) = f
        .authn
        .complete_password_change(&ticket.ticket, &secret("short"), &c)
        .await
    else {
        panic!("expected a policy violation")
    };
    assert_eq!(
        violation.rules,
        vec![
            PasswordRule::TooShort { min_length: 12 },
            PasswordRule::MissingUppercase,
            PasswordRule::MissingDigit,
            PasswordRule::MissingSpecial,
        ]
    );
    let Err(AuthnError::PasswordPolicy(violation)) = f
        .authn
        .complete_password_change(&ticket.ticket, &temporary, &c)
        .await
    else {
        panic!("expected a policy violation")
    };
    assert_eq!(
        violation.rules,
        vec![PasswordRule::RecentlyUsed { history: 5 }]
    );
    let tokens = f
        .authn
        .complete_password_change(&ticket.ticket, &secret("Brand-New-Secret-42"), &c)
        .await
        .unwrap();
    // Same instant as the change: the new session is not caught by the
    // revocation the change made.
    f.validate(&tokens).await.unwrap();
    f.authn.refresh(&tokens.refresh_token, &c).await.unwrap();
    // The ticket was single-use.
    assert!(matches!(
        f.authn
            .complete_password_change(&ticket.ticket, &secret("Another-Secret-43"), &c)
            .await,
        Err(AuthnError::InvalidChallenge)
    ));
    f.tokens_with("alice", "Brand-New-Secret-42").await;
    let audit = f.audit().await;
    assert!(audit.iter().any(|e| matches!(
        e,
        security_authn::AuthAuditEvent::PasswordChangeRequired { .. }
    )));
}

#[tokio::test]
async fn a_password_older_than_the_maximum_age_must_be_changed() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    f.advance(89 * 86_400);
    f.tokens("alice").await;
    f.advance(86_400);
    let outcome = f.login("alice", PASSWORD).await.unwrap();
    assert!(
        matches!(outcome, LoginOutcome::PasswordChangeRequired(_)),
        "{outcome:?}"
    );
    let types = f.event_types("user", alice).await;
    assert!(types.contains(&"PasswordExpired".to_owned()));
}

#[tokio::test]
async fn changing_a_password_needs_the_old_one_and_respects_the_history() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let c = client("198.51.100.1");
    let tokens = f.tokens("alice").await;
    assert!(matches!(
        f.authn
            .change_password(
                f.tenant(),
                alice,
                &secret("Not-The-Password-1"),
                &secret("Brand-New-Secret-1"),
                &c
            )
            .await,
        Err(AuthnError::InvalidCredentials)
    ));
    let passwords: Vec<String> = (1..=5).map(|i| format!("Brand-New-Secret-{i}")).collect();
    let mut current = PASSWORD.to_owned();
    for next in &passwords {
        f.advance(61);
        f.authn
            .change_password(f.tenant(), alice, &secret(&current), &secret(next), &c)
            .await
            .unwrap();
        current.clone_from(next);
    }
    // The change revoked the sessions of before.
    assert_eq!(f.validate(&tokens).await.unwrap_err(), TokenError::Revoked);
    f.advance(61);
    // The last five (the current one included) are refused; the sixth back is fine.
    for old in [&passwords[4], &passwords[3], &passwords[0]] {
        let err = f
            .authn
            .change_password(f.tenant(), alice, &secret(&current), &secret(old), &c)
            .await
            .unwrap_err();
        let AuthnError::PasswordPolicy(v) = err else {
            panic!("{err:?}")
        };
        assert_eq!(v.rules, vec![PasswordRule::RecentlyUsed { history: 5 }]);
    }
    f.authn
        .change_password(f.tenant(), alice, &secret(&current), &secret(PASSWORD), &c)
        .await
        .unwrap();
    f.advance(1);
    f.tokens("alice").await;
}

#[tokio::test]
async fn a_weak_hash_is_replaced_at_login_without_ending_sessions() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let first = f.tokens("alice").await;
    let old = f
        .authn
        .admin()
        .user(f.tenant(), alice)
        .await
        .unwrap()
        .password_hash()
        .cloned();
    f.hasher
        .force_rehash
        .store(true, std::sync::atomic::Ordering::SeqCst);
    f.tokens("alice").await;
    let user = f.authn.admin().user(f.tenant(), alice).await.unwrap();
    assert_ne!(user.password_hash().cloned(), old);
    assert!(user.password_history.is_empty());
    let types = f.event_types("user", alice).await;
    assert!(types.contains(&"PasswordRehashed".to_owned()));
    assert!(!types.contains(&"SessionsRevoked".to_owned()));
    f.validate(&first).await.unwrap();
    f.tokens("alice").await;
}

#[tokio::test]
async fn api_keys_authenticate_alone_until_they_expire_or_are_revoked() {
    let f = Fixture::new().await;
    let svc = f.user("svc").await;
    let c = client("198.51.100.7");
    let key = f
        .authn
        .issue_api_key(f.tenant(), svc, Some(f.now() + chrono::Duration::days(30)))
        .await
        .unwrap();
    assert!(key.expose_secret().starts_with("sec_ak_"));
    let tokens = f.authn.authenticate_api_key(&key, &c).await.unwrap();
    assert_eq!(f.validate(&tokens).await.unwrap().user_id, svc);
    // Only a keyed hash is stored.
    let stored = format!("{:?}", f.stream("user", svc).await);
    assert!(!stored.contains(key.expose_secret()));
    // A forged key with the same ids, a junk key: the same refusal.
    let mut forged = key.expose_secret().to_owned();
    forged.replace_range(forged.len() - 4.., "AAAA");
    for bad in [forged.as_str(), "sec_ak_nope", ""] {
        assert!(matches!(
            f.authn.authenticate_api_key(&secret(bad), &c).await,
            Err(AuthnError::InvalidCredentials)
        ));
    }
    let events = f.stream("user", svc).await;
    assert!(events.iter().any(|e| matches!(
        e.decode::<UserEvent>().unwrap(),
        UserEvent::AuthenticationFailed {
            reason: security_core::FailureReason::BadToken,
            ..
        }
    )));
    f.advance(31 * 86_400);
    assert!(matches!(
        f.authn.authenticate_api_key(&key, &c).await,
        Err(AuthnError::InvalidCredentials)
    ));
    let key = f.authn.issue_api_key(f.tenant(), svc, None).await.unwrap();
    f.authn.authenticate_api_key(&key, &c).await.unwrap();
    f.authn.revoke_api_key(f.tenant(), svc).await.unwrap();
    assert!(matches!(
        f.authn.authenticate_api_key(&key, &c).await,
        Err(AuthnError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn a_public_key_signs_a_nonce() {
    let f = Fixture::new().await;
    let device = f.user("device-7").await;
    let pair = security_crypto::NkeyPair::generate(security_crypto::NkeyKind::User).unwrap();
    f.authn
        .set_public_key(f.tenant(), device, PublicKey::ed25519(pair.public_key()))
        .await
        .unwrap();
    let c = client("198.51.100.8");
    let challenge = f
        .authn
        .start_public_key_login(f.tenant(), "device-7", &c)
        .await
        .unwrap();
    // The attack: a NATS server the device connects to sends the login's
    // nonce as its own and gets the device's signature of it. That
    // signature opens nothing here.
    let nats_signature = pair.sign(challenge.nonce.as_bytes());
    assert!(matches!(
        f.authn
            .complete_public_key_login(&challenge.challenge, &nats_signature, &c)
            .await,
        Err(AuthnError::InvalidCredentials)
    ));
    assert!(!challenge.message.starts_with(challenge.nonce.as_bytes()));
    // The message binds the service and the tenant.
    let text = String::from_utf8(challenge.message.clone()).unwrap();
    assert!(
        text.starts_with("security-authn public-key login v1\n"),
        "{text}"
    );
    assert!(text.contains(&f.tenant().to_string()), "{text}");
    let challenge = f
        .authn
        .start_public_key_login(f.tenant(), "device-7", &c)
        .await
        .unwrap();
    let signature = pair.sign(&challenge.message);
    let tokens = f
        .authn
        .complete_public_key_login(&challenge.challenge, &signature, &c)
        .await
        .unwrap();
    assert_eq!(f.validate(&tokens).await.unwrap().user_id, device);
    // A challenge works once (a used one answers like a wrong signature).
    assert!(matches!(
        f.authn
            .complete_public_key_login(&challenge.challenge, &signature, &c)
            .await,
        Err(AuthnError::InvalidCredentials)
    ));
    // A signature of another challenge, or by another key, fails.
    let challenge = f
        .authn
        .start_public_key_login(f.tenant(), "device-7", &c)
        .await
        .unwrap();
    assert!(matches!(
        f.authn
            .complete_public_key_login(&challenge.challenge, &signature, &c)
            .await,
        Err(AuthnError::InvalidCredentials)
    ));
    let other = security_crypto::NkeyPair::generate(security_crypto::NkeyKind::User).unwrap();
    let challenge = f
        .authn
        .start_public_key_login(f.tenant(), "device-7", &c)
        .await
        .unwrap();
    assert!(matches!(
        f.authn
            .complete_public_key_login(&challenge.challenge, &other.sign(&challenge.message), &c)
            .await,
        Err(AuthnError::InvalidCredentials)
    ));
    // An unknown username gets a challenge like any other, which fails the same way.
    f.advance(60);
    let ghost = f
        .authn
        .start_public_key_login(f.tenant(), "ghost", &c)
        .await
        .unwrap();
    assert_eq!(ghost.nonce.len(), challenge.nonce.len());
    assert_eq!(
        ghost.challenge.expose_secret().len(),
        challenge.challenge.expose_secret().len()
    );
    assert!(matches!(
        f.authn
            .complete_public_key_login(&ghost.challenge, &other.sign(&ghost.message), &c)
            .await,
        Err(AuthnError::InvalidCredentials)
    ));
    // Expired, both answer the same way too.
    let real = f
        .authn
        .start_public_key_login(f.tenant(), "device-7", &c)
        .await
        .unwrap();
    let ghost = f
        .authn
        .start_public_key_login(f.tenant(), "ghost", &c)
        .await
        .unwrap();
    f.advance(301);
    for expired in [&real, &ghost] {
        assert!(matches!(
            f.authn
                .complete_public_key_login(&expired.challenge, &pair.sign(&expired.message), &c)
                .await,
            Err(AuthnError::InvalidChallenge)
        ));
    }
    let events = f.stream("user", device).await;
    let failures = events
        .iter()
        .filter(|e| {
            matches!(
                e.decode::<UserEvent>().unwrap(),
                UserEvent::AuthenticationFailed {
                    reason: security_core::FailureReason::BadSignature,
                    ..
                }
            )
        })
        .count();
    assert_eq!(failures, 3);
    assert!(
        events
            .last()
            .unwrap()
            .decode::<UserEvent>()
            .unwrap()
            .event_type()
            == "AuthenticationFailed"
    );
}

/// A store that counts the user events it hands out, and refuses appends
/// to session streams while `refuse_sessions` is set.
#[derive(Debug)]
struct CountingStore {
    inner: security_eventstore::MemoryEventStore,
    user_events_read: std::sync::atomic::AtomicUsize,
    refuse_sessions: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl security_core::EventStore for CountingStore {
    async fn append(
        &self,
        request: security_core::AppendRequest,
    ) -> Result<security_core::AppendResult, security_core::StoreError> {
        if &*request.stream_id.aggregate_type == "session"
            && self
                .refuse_sessions
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(security_core::StoreError::Unavailable(
                "session appends refused".into(),
            ));
        }
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream_id: &security_core::StreamId,
        query: security_core::StreamQuery,
    ) -> Result<Vec<security_core::StoredEvent>, security_core::StoreError> {
        let events = self.inner.read_stream(stream_id, query).await?;
        if &*stream_id.aggregate_type == "user" {
            self.user_events_read
                .fetch_add(events.len(), std::sync::atomic::Ordering::SeqCst);
        }
        Ok(events)
    }

    async fn read_global(
        &self,
        scope: security_core::Scope,
        query: security_core::GlobalQuery,
    ) -> Result<Vec<security_core::StoredEvent>, security_core::StoreError> {
        self.inner.read_global(scope, query).await
    }

    async fn stream_version(
        &self,
        stream_id: &security_core::StreamId,
    ) -> Result<u64, security_core::StoreError> {
        self.inner.stream_version(stream_id).await
    }

    async fn idempotent_result(
        &self,
        tenant_id: security_core::TenantId,
        key: &security_core::IdempotencyKey,
    ) -> Result<Option<security_core::AppendResult>, security_core::StoreError> {
        self.inner.idempotent_result(tenant_id, key).await
    }

    async fn read_chain(
        &self,
        tenant_id: security_core::TenantId,
        query: security_core::chain::ChainQuery,
    ) -> Result<Vec<security_core::chain::ChainRecord>, security_core::StoreError> {
        self.inner.read_chain(tenant_id, query).await
    }

    async fn chain_head(
        &self,
        tenant_id: security_core::TenantId,
    ) -> Result<Option<security_core::chain::ChainHead>, security_core::StoreError> {
        self.inner.chain_head(tenant_id).await
    }

    async fn chain_heads(
        &self,
    ) -> Result<
        Vec<(security_core::TenantId, security_core::chain::ChainHead)>,
        security_core::StoreError,
    > {
        self.inner.chain_heads().await
    }

    async fn head_position(&self) -> Result<u64, security_core::StoreError> {
        self.inner.head_position().await
    }

    fn subscribe(&self, scope: security_core::Scope, after: u64) -> security_core::EventStream {
        self.inner.subscribe(scope, after)
    }
}

/// A service over a [`CountingStore`], with Alice in its tenant.
async fn counting_service() -> (
    std::sync::Arc<CountingStore>,
    std::sync::Arc<security_core::ManualClock>,
    security_authn::AuthenticationService,
    security_core::AccountId,
) {
    use std::sync::Arc;
    let store = Arc::new(CountingStore {
        inner: security_eventstore::MemoryEventStore::new(),
        user_events_read: std::sync::atomic::AtomicUsize::new(0),
        refuse_sessions: std::sync::atomic::AtomicBool::new(false),
    });
    let clock = Arc::new(security_core::ManualClock::new(crate::common::t0()));
    let repo = security_core::Repository::new(
        store.clone(),
        Arc::new(security_core::SequentialIds::new()),
    );
    let authn = security_authn::AuthenticationService::builder(
        repo,
        Arc::new(security_crypto::MemoryKeyStore::new()),
        Arc::new(crate::common::CountingHasher::new()),
        clock.clone(),
    )
    .build()
    .unwrap();
    let operator = authn
        .admin()
        .create_operator(&Request::default(), "ops")
        .await
        .unwrap();
    let account = authn
        .admin()
        .create_account(
            &Request::default(),
            operator,
            "acme",
            security_core::AccountClaims::default(),
        )
        .await
        .unwrap();
    authn
        .create_user_with_password(
            &Request::default(),
            account,
            "alice",
            &secret(PASSWORD),
            std::collections::BTreeMap::default(),
            false,
        )
        .await
        .unwrap();
    (store, clock, authn, account)
}

#[tokio::test]
async fn a_login_reads_only_the_events_it_has_not_seen() {
    use std::sync::atomic::Ordering;
    let (store, clock, authn, account) = counting_service().await;
    let mut reads = Vec::new();
    for _ in 0..40 {
        clock.advance(chrono::Duration::seconds(20));
        let before = store.user_events_read.load(Ordering::SeqCst);
        authn
            .authenticate(
                account.tenant(),
                "alice",
                &secret(PASSWORD),
                &client("198.51.100.1"),
            )
            .await
            .unwrap();
        reads.push(store.user_events_read.load(Ordering::SeqCst) - before);
    }
    // However long the user's history, a login reads at most the event
    // the previous login appended (plus the first full load).
    assert!(reads[1..].iter().all(|n| *n <= 1), "{reads:?}");
}

#[tokio::test]
async fn oversized_inputs_are_refused_before_any_hashing() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let work = f.hasher.work();
    let huge = "a".repeat(10 * 1024 * 1024);
    let started = std::time::Instant::now();
    let err = f
        .authn
        .authenticate(
            f.tenant(),
            &huge,
            &secret(PASSWORD),
            &client("198.51.100.2"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::InvalidCredentials), "{err:?}");
    assert!(matches!(
        f.authn
            .start_public_key_login(f.tenant(), &huge, &client("198.51.100.2"))
            .await,
        Err(AuthnError::InvalidCredentials)
    ));
    // An over-long password of a real user is never hashed either.
    let err = f
        .authn
        .authenticate(f.tenant(), "alice", &secret(&huge), &client("198.51.100.2"))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthnError::InvalidCredentials), "{err:?}");
    // An over-long MFA code, challenge or refresh token likewise.
    let code = secret(&huge);
    assert!(
        f.authn
            .verify_mfa(&code, &code, &client("198.51.100.2"))
            .await
            .is_err()
    );
    assert!(
        f.authn
            .refresh(&code, &client("198.51.100.2"))
            .await
            .is_err()
    );
    assert_eq!(f.hasher.work(), work, "no argon2 run for oversized input");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// The session's seed is made while the password is verified and the
/// access token signed while the session's start is appended: neither
/// leaves anything behind when the login fails, and no token comes back
/// unless the session is stored.
#[tokio::test]
async fn a_login_returns_tokens_only_for_a_stored_session() {
    use security_core::EventStore as _;
    use std::sync::atomic::Ordering;
    let (store, _clock, authn, account) = counting_service().await;
    let tenant = account.tenant();
    let c = client("198.51.100.1");
    let sessions_started = || async {
        store
            .inner
            .read_global(
                security_core::Scope::All,
                security_core::GlobalQuery::after(0, usize::MAX),
            )
            .await
            .unwrap()
            .iter()
            .filter(|e| &*e.event_type == "SessionStarted")
            .count()
    };
    for _ in 0..3 {
        let refused = authn
            .authenticate(tenant, "alice", &secret("wrong-password-1"), &c)
            .await;
        assert!(matches!(refused, Err(AuthnError::InvalidCredentials)));
    }
    assert_eq!(sessions_started().await, 0);
    store.refuse_sessions.store(true, Ordering::SeqCst);
    let failed = authn
        .authenticate(tenant, "alice", &secret(PASSWORD), &c)
        .await;
    assert!(failed.is_err(), "tokens without a stored session");
    assert_eq!(sessions_started().await, 0);
    store.refuse_sessions.store(false, Ordering::SeqCst);
    let tokens = authn
        .authenticate(tenant, "alice", &secret(PASSWORD), &c)
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    assert_eq!(sessions_started().await, 1);
    let claims = authn
        .validate_access_token(tokens.access_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(claims.session_id, Some(tokens.session_id));
    // The refresh token belongs to the stored session (its seed was the
    // one made ahead).
    let next = authn.refresh(&tokens.refresh_token, &c).await.unwrap();
    assert_eq!(next.session_id, tokens.session_id);
}
