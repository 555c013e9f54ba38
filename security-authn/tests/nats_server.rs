//! NATS decentralized auth against a real `nats-server` (Debian's package,
//! v2.9) in operator mode, started by each test on a free loopback port:
//! the server must accept the JWTs this crate issues and enforce the
//! domain's policies. Clients are `async-nats`, connecting with the
//! `.creds` files this crate writes.
//!
//! These tests FAIL (never skip) when `nats-server` is missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod nats_common;

use std::time::Duration;

use futures::StreamExt as _;
use nats_common::*;
use security_authn::{UserJwtOptions, UserSigner, decode_user_jwt};
use security_core::{
    Permissions, ResourceLimits, ResponsePermission, SubjectPermissions, UserScope,
};

/// Receives the next message of a subscription, or panics after 5 s.
async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("no message within 5 s")
        .expect("subscription closed")
}

#[tokio::test]
async fn allowed_publish_is_received_and_denied_publish_is_a_permissions_violation() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let server = NatsServer::start(&fx.config().await);
    let mut c = connect(&server, "alice", &fx.creds(alice).await)
        .await
        .unwrap();

    let mut orders = c.client.subscribe("orders.>").await.unwrap();
    c.client.flush().await.unwrap();
    c.client
        .publish("orders.created", "order 1".into())
        .await
        .unwrap();
    let msg = next(&mut orders).await;
    assert_eq!(msg.subject.as_str(), "orders.created");
    assert_eq!(&msg.payload[..], b"order 1");

    // Denied by the policy's deny list: the server reports a permissions
    // violation on the connection and drops the message.
    c.client
        .publish("orders.delete", "order 1".into())
        .await
        .unwrap();
    c.client.flush().await.unwrap();
    let error = expect_server_error(&mut c, "permissions violation for publish").await;
    assert!(error.contains("orders.delete"), "{error}");

    // The connection stays open; the denied message was never delivered.
    c.client
        .publish("orders.updated", "order 1".into())
        .await
        .unwrap();
    let msg = next(&mut orders).await;
    assert_eq!(msg.subject.as_str(), "orders.updated");
}

#[tokio::test]
async fn subscription_outside_the_allow_list_receives_nothing() {
    let fx = Fixture::new().await;
    let billing = fx
        .policy(
            "billing",
            Permissions {
                publish: SubjectPermissions::from_patterns(
                    ["billing.>", "orders.>"],
                    Vec::<String>::new(),
                )
                .unwrap(),
                ..Permissions::default()
            },
        )
        .await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let bob = fx.user("bob", &[billing]).await;
    let server = NatsServer::start(&fx.config().await);
    let mut a = connect(&server, "alice", &fx.creds(alice).await)
        .await
        .unwrap();
    let b = connect(&server, "bob", &fx.creds(bob).await).await.unwrap();

    let mut denied = a.client.subscribe("billing.>").await.unwrap();
    let mut allowed = a.client.subscribe("orders.>").await.unwrap();
    a.client.flush().await.unwrap();
    let error = expect_server_error(&mut a, "permissions violation for subscription").await;
    assert!(error.contains("billing.>"), "{error}");

    b.client
        .publish("billing.created", "invoice".into())
        .await
        .unwrap();
    b.client
        .publish("orders.created", "order".into())
        .await
        .unwrap();
    b.client.flush().await.unwrap();
    // The allowed message arrives; the billing one, published first on the
    // same connection, would have arrived before it.
    assert_eq!(next(&mut allowed).await.subject.as_str(), "orders.created");
    let nothing = tokio::time::timeout(Duration::from_millis(300), denied.next()).await;
    assert!(
        !matches!(nothing, Ok(Some(_))),
        "a denied subscription received a message"
    );
}

#[tokio::test]
async fn a_user_without_permissions_may_do_nothing() {
    // Default deny: no policy and no account defaults means no right at
    // all, though NATS reads "no permissions" as "everything".
    let fx = Fixture::new().await;
    let nobody = fx.user("nobody", &[]).await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let jwt = fx
        .nats
        .user_jwt(
            fx.account,
            nobody,
            UserSigner::Default,
            &UserJwtOptions::default(),
        )
        .await
        .unwrap();
    let claims = decode_user_jwt(&jwt.jwt).unwrap();
    assert_eq!(claims.nats.publish.deny, vec![">".to_owned()]);
    assert_eq!(claims.nats.subscribe.deny, vec![">".to_owned()]);

    let server = NatsServer::start(&fx.config().await);
    let mut n = connect(&server, "nobody", &fx.creds(nobody).await)
        .await
        .unwrap();
    let a = connect(&server, "alice", &fx.creds(alice).await)
        .await
        .unwrap();
    let mut alice_orders = a.client.subscribe("orders.>").await.unwrap();
    a.client.flush().await.unwrap();

    n.client
        .publish("orders.created", "x".into())
        .await
        .unwrap();
    n.client.flush().await.unwrap();
    expect_server_error(&mut n, "permissions violation for publish").await;
    let _sub = n.client.subscribe("orders.>").await.unwrap();
    n.client.flush().await.unwrap();
    expect_server_error(&mut n, "permissions violation for subscription").await;

    a.client
        .publish("orders.created", "from alice".into())
        .await
        .unwrap();
    let msg = next(&mut alice_orders).await;
    assert_eq!(
        &msg.payload[..],
        b"from alice",
        "nobody's message got through"
    );
}

#[tokio::test]
async fn an_expired_user_jwt_is_refused_at_connect() {
    let fx = Fixture::at(real_now() - chrono::Duration::hours(2)).await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let options = UserJwtOptions {
        lifetime: Some(chrono::Duration::hours(1)),
        ..UserJwtOptions::default()
    };
    let expired = fx.creds_with(alice, UserSigner::Default, &options).await;
    fx.clock.set(real_now());
    let fresh = fx.creds(alice).await;
    let server = NatsServer::start(&fx.config().await);
    assert_refused(connect(&server, "expired", &expired).await);
    connect(&server, "fresh", &fresh).await.unwrap();
}

#[tokio::test]
async fn a_revoked_user_is_refused_at_connect() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let bob = fx.user("bob", &[fx.orders_policy]).await;
    let alice_creds = fx.creds(alice).await;
    let bob_creds = fx.creds(bob).await;
    {
        let server = NatsServer::start(&fx.config().await);
        connect(&server, "alice", &alice_creds).await.unwrap();
    }

    fx.advance(1);
    fx.nats
        .revoke_user(&req(), fx.account, alice, "laptop stolen")
        .await
        .unwrap();
    let server = NatsServer::start(&fx.config().await);
    assert_refused(connect(&server, "alice", &alice_creds).await);
    connect(&server, "bob", &bob_creds).await.unwrap();

    // A JWT issued after the revocation (from the next second) is valid.
    fx.advance(1);
    let reissued = fx.creds(alice).await;
    connect(&server, "alice-again", &reissued).await.unwrap();
}

#[tokio::test]
async fn users_of_a_suspended_account_are_refused_until_it_is_reactivated() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let creds = fx.creds(alice).await;

    fx.advance(1);
    fx.nats
        .suspend_account(&req(), fx.account, "unpaid invoices")
        .await
        .unwrap();
    {
        let server = NatsServer::start(&fx.config().await);
        assert_refused(connect(&server, "alice", &creds).await);
    }
    // No new JWT for a suspended account's users.
    assert!(
        fx.nats
            .user_jwt(
                fx.account,
                alice,
                UserSigner::Default,
                &UserJwtOptions::default()
            )
            .await
            .is_err()
    );

    fx.advance(1);
    fx.nats
        .reactivate_account(&req(), fx.account)
        .await
        .unwrap();
    let server = NatsServer::start(&fx.config().await);
    connect(&server, "alice", &creds).await.unwrap();
}

#[tokio::test]
async fn a_rotated_out_account_key_still_signs_until_revoked() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let bob = fx.user("bob", &[fx.orders_policy]).await;
    let (first, _) = fx
        .nats
        .add_account_signing_key(&req(), fx.account, None)
        .await
        .unwrap();
    let alice_creds = fx.creds(alice).await;
    let alice_claims = decode_user_jwt(alice_creds.jwt()).unwrap();
    assert_eq!(alice_claims.nats.issuer_account, account_key(&fx).await);

    fx.advance(1);
    let (second, _) = fx
        .nats
        .rotate_account_signing_key(&req(), fx.account)
        .await
        .unwrap();
    assert_ne!(first, second);
    let bob_creds = fx.creds(bob).await;
    assert_ne!(
        decode_user_jwt(bob_creds.jwt()).unwrap().iss,
        alice_claims.iss,
        "the new key signs new users"
    );
    {
        let server = NatsServer::start(&fx.config().await);
        connect(&server, "alice", &alice_creds).await.unwrap();
        connect(&server, "bob", &bob_creds).await.unwrap();
    }

    fx.advance(1);
    fx.nats
        .revoke_account_signing_key(&req(), fx.account, first)
        .await
        .unwrap();
    let server = NatsServer::start(&fx.config().await);
    assert_refused(connect(&server, "alice", &alice_creds).await);
    connect(&server, "bob", &bob_creds).await.unwrap();
}

#[tokio::test]
async fn a_rotated_out_operator_key_still_signs_accounts_until_revoked() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let creds = fx.creds(alice).await;
    let (old_key, _) = fx
        .nats
        .rotate_operator_key(&req(), fx.operator)
        .await
        .unwrap();
    // Rotate once more, so that the key to revoke is a rotated-out signing
    // key and not the identity.
    let account_by_old_key = fx.nats.account_jwt(fx.account).await.unwrap();
    fx.advance(1);
    fx.nats
        .rotate_operator_key(&req(), fx.operator)
        .await
        .unwrap();

    // The account JWT signed by the rotated-out key is still trusted.
    let mut config = fx.config().await;
    let account_key = account_key(&fx).await;
    config
        .accounts
        .insert(account_key.clone(), account_by_old_key.clone());
    {
        let server = NatsServer::start(&config);
        connect(&server, "alice", &creds).await.unwrap();
    }

    fx.advance(1);
    fx.nats
        .revoke_operator_key(&req(), fx.operator, old_key, "retired")
        .await
        .unwrap();
    let mut config = fx.config().await;
    config.accounts.insert(account_key, account_by_old_key);
    let server = NatsServer::start(&config);
    assert_refused(connect(&server, "alice", &creds).await);

    // Reissued by the active key, the account works again.
    let server = NatsServer::start(&fx.config().await);
    connect(&server, "alice", &creds).await.unwrap();
}

#[tokio::test]
async fn a_scoped_signing_key_applies_its_template() {
    let fx = Fixture::new().await;
    let scope = UserScope {
        role: "telemetry".into(),
        permissions: Permissions {
            publish: SubjectPermissions::from_patterns(["telemetry.>"], Vec::<String>::new())
                .unwrap(),
            subscribe: SubjectPermissions::from_patterns(["telemetry.>"], Vec::<String>::new())
                .unwrap(),
            allow_responses: None,
        },
        limits: ResourceLimits::default(),
        description: "devices".into(),
    };
    let (scoped, _) = fx
        .nats
        .add_account_signing_key(&req(), fx.account, Some(scope))
        .await
        .unwrap();
    // Carol holds the orders policy, but the scope decides.
    let carol = fx.user("carol", &[fx.orders_policy]).await;
    let creds = fx
        .creds_with(
            carol,
            UserSigner::SigningKey(scoped),
            &UserJwtOptions::default(),
        )
        .await;
    let claims = decode_user_jwt(creds.jwt()).unwrap();
    assert!(claims.nats.has_no_permissions_or_limits());
    assert!(!claims.nats.issuer_account.is_empty());

    let server = NatsServer::start(&fx.config().await);
    let mut c = connect(&server, "carol", &creds).await.unwrap();
    let mut telemetry = c.client.subscribe("telemetry.>").await.unwrap();
    c.client.flush().await.unwrap();
    c.client
        .publish("telemetry.cpu", "42".into())
        .await
        .unwrap();
    assert_eq!(next(&mut telemetry).await.subject.as_str(), "telemetry.cpu");
    c.client
        .publish("orders.created", "x".into())
        .await
        .unwrap();
    c.client.flush().await.unwrap();
    expect_server_error(&mut c, "permissions violation for publish").await;
}

#[tokio::test]
async fn a_policy_change_reissues_the_users_jwts() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let server = NatsServer::start(&fx.config().await);
    {
        let mut c = connect(&server, "alice", &fx.creds(alice).await)
            .await
            .unwrap();
        c.client
            .publish("billing.created", "x".into())
            .await
            .unwrap();
        c.client.flush().await.unwrap();
        expect_server_error(&mut c, "permissions violation for publish").await;
    }

    let mut widened = orders_permissions();
    widened
        .publish
        .allow
        .push(security_core::SubjectPattern::new("billing.>").unwrap());
    widened
        .subscribe
        .allow
        .push(security_core::SubjectPattern::new("billing.>").unwrap());
    widened.allow_responses = Some(ResponsePermission {
        max_messages: 1,
        ttl_ms: 60_000,
    });
    let reissued = fx
        .nats
        .update_policy_permissions(&req(), fx.account, fx.orders_policy, widened)
        .await
        .unwrap();
    assert_eq!(reissued.len(), 1);
    assert_eq!(reissued[0].user_id, alice);

    let seed = fx.creds(alice).await.seed().clone();
    let creds = security_authn::UserCreds::new(reissued[0].jwt.jwt.clone(), seed).unwrap();
    let mut c = connect(&server, "alice-reissued", &creds).await.unwrap();
    let mut billing = c.client.subscribe("billing.>").await.unwrap();
    c.client.flush().await.unwrap();
    c.client
        .publish("billing.created", "invoice".into())
        .await
        .unwrap();
    assert_eq!(next(&mut billing).await.subject.as_str(), "billing.created");
    c.client.publish("orders.delete", "x".into()).await.unwrap();
    c.client.flush().await.unwrap();
    expect_server_error(&mut c, "permissions violation for publish").await;
}

async fn account_key(fx: &Fixture) -> String {
    fx.admin
        .account(fx.account)
        .await
        .unwrap()
        .public_key
        .unwrap()
        .encoded
}

/// A NATS server under an attacker's control: it greets the device with
/// `nonce` and returns the signature of the device's `CONNECT`.
async fn malicious_server(nonce: String) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    use base64::Engine as _;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let info = serde_json::json!({
            "server_id": "NEVIL", "server_name": "evil", "version": "2.9.10",
            "proto": 1, "host": "127.0.0.1", "port": port, "headers": true,
            "max_payload": 1_048_576, "auth_required": true, "nonce": nonce,
        });
        write
            .write_all(format!("INFO {info}\r\n").as_bytes())
            .await
            .unwrap();
        let mut lines = BufReader::new(read).lines();
        let connect = loop {
            let line = lines.next_line().await.unwrap().expect("a CONNECT");
            if let Some(json) = line.strip_prefix("CONNECT ") {
                break serde_json::from_str::<serde_json::Value>(json).unwrap();
            }
        };
        let _ = write.write_all(b"-ERR 'Authorization Violation'\r\n").await;
        let sig = connect["sig"]
            .as_str()
            .expect("the device signed the nonce");
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap()
    });
    (format!("nats://127.0.0.1:{port}"), task)
}

#[tokio::test]
async fn a_nats_connect_signature_does_not_log_in_over_http() {
    // The attack: start a public-key login for the user, greet the user's
    // NATS client with the login's nonce, and replay the signature of its
    // CONNECT to complete the login. A NATS identity is no login
    // credential, so the replay gets nothing.
    use base64::Engine as _;
    use secrecy::ExposeSecret as _;
    use security_authn::{AuthenticationService, AuthnError};
    use security_core::{ClientInfo, Credential, CredentialType};

    let fx = Fixture::new().await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let hasher = security_crypto::Argon2PasswordHasher::new(security_crypto::Argon2Config {
        memory_kib: 64,
        iterations: 1,
        ..security_crypto::Argon2Config::OWASP
    })
    .unwrap();
    let authn = AuthenticationService::builder(
        fx.admin.repository().clone(),
        fx.keys.clone(),
        std::sync::Arc::new(hasher),
        fx.clock.clone(),
    )
    .build()
    .unwrap();
    let client = ClientInfo::new(Some("203.0.113.9".parse().unwrap()), Some("attacker"));
    let login = authn
        .start_public_key_login(fx.account.tenant(), "alice", &client)
        .await
        .unwrap();

    let (url, server) = malicious_server(login.nonce.clone()).await;
    let creds = fx.creds(alice).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.creds");
    creds.write_file(&path).unwrap();
    let connected = connect_file(&url, &path).await;
    assert!(connected.is_err(), "the fake server refuses everyone");
    let signature = server.await.unwrap();

    // The signature is genuine: the device's nkey over the login's nonce.
    let user = fx.admin.user(fx.account.tenant(), alice).await.unwrap();
    let Some(Credential::NatsIdentity { key }) = user.credential(CredentialType::NatsIdentity)
    else {
        panic!("a NATS user has a NATS identity")
    };
    let nkey = nkeys::KeyPair::from_public_key(&key.encoded).unwrap();
    nkey.verify(login.nonce.as_bytes(), &signature).unwrap();
    assert!(user.credential(CredentialType::PublicKey).is_none());

    let replay = authn
        .complete_public_key_login(&login.challenge, &signature, &client)
        .await;
    assert!(
        matches!(replay, Err(AuthnError::InvalidCredentials)),
        "{replay:?}"
    );

    // Nor can the nkey be registered as the login key afterwards, in either
    // encoding.
    let raw = security_crypto::Ed25519PublicKey::from_public_key(key)
        .unwrap()
        .to_bytes();
    for candidate in [
        key.clone(),
        security_core::PublicKey::ed25519(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        ),
    ] {
        let refused = authn
            .set_public_key(fx.account.tenant(), alice, candidate)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("NATS identity"), "{refused}");
    }
    // The seed still works for NATS itself.
    assert!(creds.seed().expose_secret().starts_with("SU"));
}

/// Subscribe permissions with queue-bound entries beside plain ones, and
/// the (subject, queue) cases to try with them. Each case's subject is
/// unique, so a server error names the case it is about.
/// Subscriptions to try: a subject and an optional queue group.
type Cases = Vec<(String, Option<&'static str>)>;

fn queue_permission_cases() -> Vec<(Permissions, Cases)> {
    let pattern = |p: &str| security_core::SubjectPattern::new(p).unwrap();
    let queued = |p: &str, q: &str| security_core::SubjectPattern::with_queue(p, q).unwrap();
    let everything = SubjectPermissions::from_patterns([">"], Vec::<String>::new()).unwrap();
    // A plain deny and a queue-bound deny of the same subjects, and a
    // queue-bound deny alone.
    let deny_side = Permissions {
        publish: everything.clone(),
        subscribe: SubjectPermissions {
            allow: vec![pattern(">")],
            deny: vec![
                pattern("secret.>"),
                queued("secret.>", "auditors"),
                queued("ops.>", "auditors"),
            ],
        },
        allow_responses: None,
    };
    // A queue-bound allow alone, and a plain allow beside a queue-bound one.
    let allow_side = Permissions {
        publish: everything,
        subscribe: SubjectPermissions {
            allow: vec![
                pattern("public.>"),
                queued("jobs.>", "workers"),
                pattern("mixed.>"),
                queued("mixed.>", "special"),
                pattern("_INBOX.>"),
            ],
            deny: Vec::new(),
        },
        allow_responses: None,
    };
    let cases = |list: &[(&str, Option<&'static str>)]| {
        list.iter()
            .enumerate()
            .map(|(i, (subject, queue))| (format!("{subject}.c{i}"), *queue))
            .collect::<Vec<_>>()
    };
    vec![
        (
            deny_side,
            cases(&[
                ("secret", None),
                ("secret", Some("workers")),
                ("secret", Some("auditors")),
                ("ops", None),
                ("ops", Some("workers")),
                ("ops", Some("auditors")),
                ("public", None),
                ("public", Some("auditors")),
            ]),
        ),
        (
            allow_side,
            cases(&[
                ("public", None),
                ("public", Some("workers")),
                ("jobs", None),
                ("jobs", Some("workers")),
                ("jobs", Some("other")),
                ("mixed", None),
                ("mixed", Some("other")),
                ("mixed", Some("special")),
                ("elsewhere", None),
                ("elsewhere", Some("workers")),
            ]),
        ),
    ]
}

#[tokio::test]
async fn nats_server_enforces_queue_permissions_exactly_as_the_in_process_check() {
    // Before, a queue-bound deny (`secret.> auditors`) made nats-server
    // forget the plain deny (`secret.>`) for every other queue, so
    // `SUB secret.x workers` was allowed; and a queue-bound allow hid the
    // plain allow of the same subjects from other queues. Every case is
    // now decided by the real server as the in-process check decides it.
    let fx = Fixture::new().await;
    let server_config_users = {
        let mut users = Vec::new();
        for (i, (permissions, cases)) in queue_permission_cases().into_iter().enumerate() {
            let policy = fx.policy(&format!("queues-{i}"), permissions.clone()).await;
            let user = fx.user(&format!("queues-{i}"), &[policy]).await;
            users.push((user, permissions, cases));
        }
        users
    };
    let server = NatsServer::start(&fx.config().await);
    let mut checked = 0;
    for (user, permissions, cases) in server_config_users {
        let in_process = security_authz::CompiledPermissions::compile(&permissions);
        let mut c = connect(&server, "queues", &fx.creds(user).await)
            .await
            .unwrap();
        let mut subscriptions = Vec::new();
        for (subject, queue) in &cases {
            let sub = match queue {
                Some(q) => c
                    .client
                    .queue_subscribe(subject.clone(), (*q).to_owned())
                    .await
                    .unwrap(),
                None => c.client.subscribe(subject.clone()).await.unwrap(),
            };
            subscriptions.push(sub);
        }
        c.client.flush().await.unwrap();
        // Collect the server's refusals.
        let mut refused = std::collections::BTreeSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, c.events.recv()).await {
            if let async_nats::Event::ServerError(error) = event {
                let text = error.to_string();
                for (i, (subject, _)) in cases.iter().enumerate() {
                    if text.contains(&format!("\"{subject}\"")) {
                        refused.insert(i);
                    }
                }
            }
        }
        // What the server lets through, it delivers.
        for (subject, _) in &cases {
            c.client.publish(subject.clone(), "m".into()).await.unwrap();
        }
        c.client.flush().await.unwrap();
        for (i, ((subject, queue), sub)) in cases.iter().zip(&mut subscriptions).enumerate() {
            let expected = in_process.can_subscribe(subject, *queue);
            assert_eq!(
                !refused.contains(&i),
                expected,
                "{subject} {queue:?}: nats-server and the in-process check disagree"
            );
            if expected {
                assert_eq!(next(sub).await.subject.as_str(), subject);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 18);
}

/// `orders.>` and `payments.>` (publish and subscribe) and the inboxes.
fn orders_and_payments() -> Permissions {
    Permissions {
        publish: SubjectPermissions::from_patterns(
            ["orders.>", "payments.>"],
            Vec::<String>::new(),
        )
        .unwrap(),
        subscribe: SubjectPermissions::from_patterns(
            ["orders.>", "payments.>", "_INBOX.>"],
            Vec::<String>::new(),
        )
        .unwrap(),
        allow_responses: None,
    }
}

/// Whether `c` may subscribe to `subject` on its server: it receives what
/// it publishes there, or the server reports a violation.
async fn may_subscribe(c: &mut Client, subject: &str) -> bool {
    let mut sub = c.client.subscribe(subject.to_owned()).await.unwrap();
    c.client.flush().await.unwrap();
    c.client
        .publish(subject.to_owned(), "x".into())
        .await
        .unwrap();
    c.client.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), sub.next())
        .await
        .is_ok_and(|m| m.is_some())
}

#[tokio::test]
async fn narrowing_a_policy_revokes_the_user_jwts_issued_before() {
    // Alice's JWT grants `payments.>`. The policy loses `payments.>`; a
    // nats-server running the new account JWT refuses her old JWT (which
    // would still subscribe to `payments.card-numbers` for 24 h) and
    // accepts the reissued one, which does not reach payments.
    let fx = Fixture::new().await;
    let policy = fx.policy("orders-payments", orders_and_payments()).await;
    let alice = fx.user("alice", &[policy]).await;
    let bob = fx.user("bob", &[policy]).await;
    let old_alice = fx.creds(alice).await;
    let old_bob = fx.creds(bob).await;
    {
        let server = NatsServer::start(&fx.config().await);
        let mut c = connect(&server, "alice-old", &old_alice).await.unwrap();
        assert!(may_subscribe(&mut c, "payments.card-numbers").await);
    }

    // A widening first: nothing is revoked.
    let mut wider = orders_and_payments();
    wider
        .subscribe
        .allow
        .push(security_core::SubjectPattern::new("billing.>").unwrap());
    fx.nats
        .update_policy_permissions(&req(), fx.account, policy, wider)
        .await
        .unwrap();
    {
        let server = NatsServer::start(&fx.config().await);
        connect(&server, "alice-old", &old_alice).await.unwrap();
    }

    // The narrowing, in the same second as the old JWTs were issued.
    let reissued = fx
        .nats
        .update_policy_permissions(&req(), fx.account, policy, orders_permissions())
        .await
        .unwrap();
    assert_eq!(reissued.len(), 2);
    let server = NatsServer::start(&fx.config().await);
    assert_refused(connect(&server, "alice-old", &old_alice).await);
    assert_refused(connect(&server, "bob-old", &old_bob).await);

    let new_alice = reissued.iter().find(|r| r.user_id == alice).unwrap();
    let creds = security_authn::UserCreds::new(new_alice.jwt.jwt.clone(), old_alice.seed().clone())
        .unwrap();
    let mut c = connect(&server, "alice-new", &creds).await.unwrap();
    assert!(may_subscribe(&mut c, "orders.created").await);
    let mut denied = c
        .client
        .subscribe("payments.card-numbers".to_owned())
        .await
        .unwrap();
    c.client.flush().await.unwrap();
    expect_server_error(&mut c, "permissions violation for subscription").await;
    let nothing = tokio::time::timeout(Duration::from_millis(300), denied.next()).await;
    assert!(!matches!(nothing, Ok(Some(_))));
}

#[tokio::test]
async fn removing_a_policy_or_narrowing_the_defaults_revokes_older_jwts() {
    let fx = Fixture::new().await;
    let payments = fx.policy("payments", orders_and_payments()).await;
    let alice = fx.user("alice", &[fx.orders_policy, payments]).await;
    let bob = fx.user("bob", &[fx.orders_policy]).await;
    let old_alice = fx.creds(alice).await;
    let old_bob = fx.creds(bob).await;

    // Taking a policy from Alice revokes her older JWTs, not Bob's.
    fx.admin
        .remove_policy(&req(), fx.account.tenant(), alice, payments)
        .await
        .unwrap();
    let server = NatsServer::start(&fx.config().await);
    assert_refused(connect(&server, "alice-old", &old_alice).await);
    let mut b = connect(&server, "bob-old", &old_bob).await.unwrap();
    assert!(may_subscribe(&mut b, "orders.created").await);
    let mut a = connect(&server, "alice-new", &fx.creds(alice).await)
        .await
        .unwrap();
    assert!(may_subscribe(&mut a, "orders.created").await);
    drop((a, b, server));

    // Account defaults that lose something revoke every older user JWT.
    let defaults = Permissions {
        subscribe: SubjectPermissions::from_patterns(["telemetry.>"], Vec::<String>::new())
            .unwrap(),
        ..Permissions::default()
    };
    fx.nats
        .update_default_permissions(&req(), fx.account, defaults)
        .await
        .unwrap();
    let before_narrowing = fx.creds(bob).await;
    fx.nats
        .update_default_permissions(&req(), fx.account, Permissions::default())
        .await
        .unwrap();
    let server = NatsServer::start(&fx.config().await);
    assert_refused(connect(&server, "bob-before", &before_narrowing).await);
    connect(&server, "bob-after", &fx.creds(bob).await)
        .await
        .unwrap();
}
