use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use security::authn::{AuthnConfig, AuthnError, LoginOutcome, RateLimit, TotpSecret};
use security::core::{
    AccountClaims, Clock, KeyOwner, KeyPurpose, KeyStatus, ManualClock, Request, RoleName,
    TokenError, TokenValidator,
};

use crate::common::{Fleet, PASSWORD, Time, client, open_config, percentile, secret, t0};

/// How an answer looks to the client: the message and the wait it names.
fn looks(result: &Result<LoginOutcome, AuthnError>) -> (String, Option<Duration>) {
    match result {
        Ok(LoginOutcome::Authenticated(_)) => ("authenticated".into(), None),
        Ok(other) => (format!("{other:?}"), None),
        Err(e) => (e.to_string(), e.retry_after()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_guesses_over_three_replicas_costs_at_most_the_limit() {
    let fleet = Fleet::new(open_config(), Time::Real).await;
    bursts(&fleet).await;
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lockout_is_exact_and_unknown_names_alike_without_redis() {
    let fleet = Fleet::postgres_only(open_config(), Time::Real).await;
    bursts(&fleet).await;
    fleet.cleanup().await;
    let clock = Arc::new(ManualClock::new(t0()));
    let fleet = Fleet::postgres_only(open_config(), Time::Manual(clock)).await;
    alike(&fleet).await;
    fleet.cleanup().await;
    let clock = Arc::new(ManualClock::new(t0()));
    let config = AuthnConfig {
        login_rate: RateLimit::per_minute(5),
        ..open_config()
    };
    let fleet = Fleet::postgres_only(config, Time::Manual(clock)).await;
    global_throttle(&fleet).await;
    fleet.cleanup().await;
}

async fn bursts(fleet: &Fleet) {
    let mut right_answered = [0_usize; 3];
    for round in 0..100_u32 {
        let name = format!("target-{round}");
        let user = fleet.user(&name).await;
        let before = fleet.hasher.verifies();
        // 15 simultaneous guesses spread over 3 replicas; in every other
        // round one of them is right.
        let right_at = if round % 2 == 0 {
            (round as usize * 7) % 15
        } else {
            usize::MAX
        };
        let mut tasks = Vec::new();
        for i in 0..15_usize {
            let authn = fleet.replica(i).clone();
            let tenant = fleet.tenant();
            let name = name.clone();
            let password = if i == right_at {
                PASSWORD
            } else {
                "Wrong-Guess-123!"
            };
            tasks.push(tokio::spawn(async move {
                let result = authn
                    .authenticate(
                        tenant,
                        &name,
                        &secret(password),
                        &client(round * 100 + u32::try_from(i).unwrap()),
                    )
                    .await;
                (
                    i,
                    looks(&result),
                    matches!(result, Err(AuthnError::Conflict)),
                )
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            let (i, look, conflict) = task.await.unwrap();
            assert!(!conflict, "round {round}: a guess was lost as a conflict");
            answers.push((i, look));
        }
        let verifications = fleet.hasher.verifies() - before;
        let logged_in = answers.iter().any(|(_, l)| l.0 == "authenticated");
        // Before the lock at most 5 verifications; a right password that
        // got in starts the budget again (at most 5 more).
        let limit = if logged_in { 10 } else { 5 };
        assert!(
            verifications <= limit,
            "round {round}: {verifications} password verifications (limit {limit})"
        );
        // The right password is answered like a wrong one, or logs in.
        let Some((_, right)) = answers.iter().find(|(i, _)| *i == right_at).cloned() else {
            assert!(verifications <= 5);
            continue_checks(fleet, user, &answers, round).await;
            continue;
        };
        if right.0 == "authenticated" {
            right_answered[0] += 1;
        } else {
            let like_a_wrong_one = answers
                .iter()
                .filter(|(i, _)| *i != right_at)
                .any(|(_, look)| *look == right);
            assert!(
                like_a_wrong_one,
                "round {round}: {right:?} stands out in {answers:?}"
            );
            right_answered[if right.0 == "user is locked" { 1 } else { 2 }] += 1;
        }
        continue_checks(fleet, user, &answers, round).await;
    }
    eprintln!(
        "right password: {} logged in, {} answered locked, {} answered invalid",
        right_answered[0], right_answered[1], right_answered[2]
    );
}

/// Every failure of a burst is in the user's stream.
async fn continue_checks(
    fleet: &Fleet,
    user: security::core::UserId,
    answers: &[(usize, (String, Option<Duration>))],
    round: u32,
) {
    {
        let failed = answers
            .iter()
            .filter(|(_, l)| l.0 != "authenticated")
            .count();
        let recorded = fleet
            .replica(0)
            .admin()
            .user(fleet.tenant(), user)
            .await
            .unwrap();
        let events = security::core::EventStore::read_stream(
            &fleet.stores[0],
            &security::core::StreamId::new(fleet.tenant(), "user", user.as_uuid()),
            security::core::StreamQuery::all(),
        )
        .await
        .unwrap();
        let failures = events
            .iter()
            .filter(|e| &*e.event_type == "AuthenticationFailed")
            .count();
        assert_eq!(failures, failed, "round {round}: failures recorded");
        assert!(recorded.id.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_logins_of_one_user_all_succeed() {
    let fleet = Fleet::new(open_config(), Time::Real).await;
    fleet.user("service-account").await;
    for round in 0..2_u32 {
        let mut tasks = Vec::new();
        for i in 0..100_u32 {
            let authn = fleet.replica(i as usize).clone();
            let tenant = fleet.tenant();
            tasks.push(tokio::spawn(async move {
                authn
                    .authenticate(tenant, "service-account", &secret(PASSWORD), &client(i))
                    .await
            }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(LoginOutcome::Authenticated(_)) => ok += 1,
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(ok, 100);
    }
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn challenges_made_on_one_replica_complete_on_the_others() {
    let clock = Arc::new(ManualClock::new(t0()));
    let fleet = Fleet::new(open_config(), Time::Manual(clock.clone())).await;
    let tenant = fleet.tenant();
    // MFA.
    let mfa_user = fleet.user("mfa-user").await;
    let a = fleet.replica(0);
    let enrollment = a.start_totp_enrollment(tenant, mfa_user).await.unwrap();
    let totp = TotpSecret::from_base32(enrollment.secret_base32.expose_secret()).unwrap();
    let config = a.config().totp.clone();
    a.confirm_totp_enrollment(
        tenant,
        mfa_user,
        &config.code_at(&totp, clock.now()).unwrap(),
    )
    .await
    .unwrap();
    let mut completed = 0;
    for i in 0..100_usize {
        fleet.advance(31);
        let LoginOutcome::MfaRequired(challenge) = fleet
            .replica(i)
            .authenticate(tenant, "mfa-user", &secret(PASSWORD), &client(1))
            .await
            .unwrap()
        else {
            panic!("expected an MFA challenge")
        };
        let code = config.code_at(&totp, clock.now()).unwrap();
        let outcome = fleet
            .replica(i + 1 + i % 2)
            .verify_mfa(&challenge.challenge, &code, &client(1))
            .await
            .unwrap();
        assert!(matches!(outcome, LoginOutcome::Authenticated(_)));
        completed += 1;
    }
    assert_eq!(completed, 100);
    // Password-change tickets.
    let pwc = fleet.user("pwc-user").await;
    let mut changed = 0;
    for i in 0..100_usize {
        fleet.advance(31);
        let temporary = fleet
            .replica(i)
            .reset_password(&Request::default(), tenant, pwc)
            .await
            .unwrap();
        let LoginOutcome::PasswordChangeRequired(ticket) = fleet
            .replica(i)
            .authenticate(tenant, "pwc-user", &temporary, &client(2))
            .await
            .unwrap()
        else {
            panic!("expected a password-change ticket")
        };
        fleet
            .replica(i + 1 + i % 2)
            .complete_password_change(
                &ticket.ticket,
                &secret(&format!("New-Password-{i}-ok!")),
                &client(2),
            )
            .await
            .unwrap();
        changed += 1;
    }
    assert_eq!(changed, 100);
    // Public-key nonces.
    let device = fleet.user("device").await;
    let pair = security::crypto::NkeyPair::generate(security::crypto::NkeyKind::User).unwrap();
    a.set_public_key(
        tenant,
        device,
        security::core::PublicKey::ed25519(pair.public_key()),
    )
    .await
    .unwrap();
    let mut signed_in = 0;
    for i in 0..100_usize {
        fleet.advance(13);
        let challenge = fleet
            .replica(i)
            .start_public_key_login(tenant, "device", &client(3))
            .await
            .unwrap();
        fleet
            .replica(i + 1 + i % 2)
            .complete_public_key_login(
                &challenge.challenge,
                &pair.sign(&challenge.message),
                &client(3),
            )
            .await
            .unwrap();
        signed_in += 1;
        // Exactly once: the third replica cannot use it again.
        assert!(
            fleet
                .replica(i + 2 - i % 2)
                .complete_public_key_login(
                    &challenge.challenge,
                    &pair.sign(&challenge.message),
                    &client(3)
                )
                .await
                .is_err()
        );
    }
    assert_eq!(signed_in, 100);
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttling_is_global() {
    let clock = Arc::new(ManualClock::new(t0()));
    let config = AuthnConfig {
        login_rate: RateLimit::per_minute(5),
        ..open_config()
    };
    let fleet = Fleet::new(config, Time::Manual(clock)).await;
    global_throttle(&fleet).await;
    fleet.cleanup().await;
}

async fn global_throttle(fleet: &Fleet) {
    for round in 0..100_u32 {
        // Five attempts from one address on A, the sixth on B or C.
        for i in 0..5 {
            let r = fleet
                .replica(0)
                .authenticate(
                    fleet.tenant(),
                    &format!("nobody-{round}-{i}"),
                    &secret("x-Wrong-1234!"),
                    &client(round),
                )
                .await;
            assert!(matches!(r, Err(AuthnError::InvalidCredentials)), "{r:?}");
        }
        let r = fleet
            .replica(1 + round as usize % 2)
            .authenticate(
                fleet.tenant(),
                "nobody-else",
                &secret("x-Wrong-1234!"),
                &client(round),
            )
            .await;
        assert!(
            matches!(r, Err(AuthnError::Throttled { .. })),
            "round {round}: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_and_unknown_usernames_answer_alike_across_replicas() {
    let clock = Arc::new(ManualClock::new(t0()));
    let fleet = Fleet::new(open_config(), Time::Manual(clock)).await;
    alike(&fleet).await;
    fleet.cleanup().await;
}

async fn alike(fleet: &Fleet) {
    for round in 0..100_u32 {
        let real = format!("real-{round}");
        fleet.user(&real).await;
        let ghost = format!("ghost-{round}");
        let mut answers = [Vec::new(), Vec::new()];
        for attempt in 0..8_usize {
            for (which, name) in [&real, &ghost].into_iter().enumerate() {
                let r = fleet
                    .replica(attempt + which)
                    .authenticate(
                        fleet.tenant(),
                        name,
                        &secret("Wrong-Guess-123!"),
                        &client(round),
                    )
                    .await;
                answers[which].push(looks(&r));
            }
            fleet.advance(1);
        }
        assert_eq!(answers[0], answers[1], "round {round}");
        assert_eq!(answers[0][5].0, "user is locked", "round {round}");
        fleet.advance(3600);
    }
}

/// Waits until `check` holds, and says how long that took.
async fn seen_within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "not seen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_reach_every_replica_within_a_second() {
    let fleet = Fleet::new(open_config(), Time::Real).await;
    let tenant = fleet.tenant();
    let mut delays = Vec::new();
    for kind in ["logout", "lock", "token", "role"] {
        for i in 0..100_usize {
            let name = format!("{kind}-{i}");
            let user = fleet.user(&name).await;
            let tokens = fleet
                .replica(i)
                .authenticate(tenant, &name, &secret(PASSWORD), &client(5))
                .await
                .unwrap()
                .into_tokens()
                .unwrap();
            let token = tokens.access_token.expose_secret().to_owned();
            let actor = fleet.replica(i);
            match kind {
                "logout" => actor.logout(&tokens.refresh_token).await.unwrap(),
                "lock" => {
                    actor
                        .admin()
                        .lock_user(&Request::default(), tenant, user, "review")
                        .await
                        .unwrap();
                }
                "token" => {
                    let claims = actor.validate_access_token(&token).await.unwrap();
                    actor.revoke_access_token(&claims).await.unwrap();
                }
                _ => {
                    actor
                        .admin()
                        .assign_role(
                            &Request::default(),
                            tenant,
                            user,
                            RoleName::new("auditor").unwrap(),
                        )
                        .await
                        .unwrap();
                }
            }
            for other in 1..3 {
                let validator = fleet.replica(i + other).validator();
                let token = token.clone();
                delays.push(
                    seen_within(Duration::from_secs(5), async move || {
                        validator.validate_async(&token).await == Err(TokenError::Revoked)
                    })
                    .await,
                );
            }
        }
    }
    let p99 = percentile(delays.clone(), 99);
    eprintln!(
        "revocation seen on the other replicas: p50 {:?}, p99 {p99:?}, max {:?}",
        percentile(delays.clone(), 50),
        percentile(delays, 100)
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_active_key_per_purpose_after_simultaneous_first_uses() {
    let fleet = Fleet::new(open_config(), Time::Real).await;
    let admin = fleet.replica(0).admin();
    let operator = admin
        .create_operator(&Request::default(), "ops-2")
        .await
        .unwrap();
    for round in 0..100_u32 {
        let account = admin
            .create_account(
                &Request::default(),
                operator,
                &format!("tenant-{round}"),
                AccountClaims::default(),
            )
            .await
            .unwrap();
        let mut users = Vec::new();
        for who in 0..3 {
            users.push(fleet.user_in(account, &format!("user-{who}")).await);
        }
        // The first logins create the signing key; the first API keys the
        // lookup-hashing key: each on three replicas at once.
        let mut tasks = Vec::new();
        for who in 0..3_usize {
            let authn = fleet.replica(who).clone();
            tasks.push(tokio::spawn(async move {
                authn
                    .authenticate(
                        account.tenant(),
                        &format!("user-{who}"),
                        &secret(PASSWORD),
                        &client(u32::try_from(who).unwrap()),
                    )
                    .await
            }));
        }
        for task in tasks {
            assert!(matches!(
                task.await.unwrap(),
                Ok(LoginOutcome::Authenticated(_))
            ));
        }
        let mut tasks = Vec::new();
        for (who, user) in users.iter().copied().enumerate() {
            let authn = fleet.replica(who).clone();
            tasks.push(tokio::spawn(async move {
                authn.issue_api_key(account.tenant(), user, None).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let owner = KeyOwner::new(account.tenant(), account.tenant().as_uuid());
        let keys = fleet.keys[0].list_keys(owner).await.unwrap();
        for purpose in [KeyPurpose::TokenSigning, KeyPurpose::LookupHashing] {
            let active = keys
                .iter()
                .filter(|k| k.purpose == purpose && k.status == KeyStatus::Active)
                .count();
            assert_eq!(active, 1, "round {round}: {purpose:?}");
        }
    }
    fleet.cleanup().await;
}
