//! NATS JWTs without a server: the codec against JWTs written by Go's
//! `nats-io/jwt`, what the issuer writes from the aggregates, the verifier
//! and its typed errors, `.creds` files, the server configuration, and the
//! life cycle as events.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod nats_common;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, TimeZone, Utc};
use nats_common::*;
use secrecy::{ExposeSecret, SecretString};
use security_authn::{
    AccountNats, NATS_JWT_HEADER, NatsError, NatsJwtError, NatsServerConfig, NatsSigningKey,
    NatsTrust, UserCreds, UserJwtOptions, UserNats, UserSigner, decode_account_jwt, decode_jwt,
    decode_operator_jwt, decode_user_jwt, effective_user_permissions, nats_jti, verify_user_chain,
};
use security_core::{
    Account, AccountClaims, AccountLimits, Credential, DataRate, DomainError, IdempotencyKey,
    KeyOwner, KeyPurpose, KeyStatus, KeyStore, NewPolicy, Permissions, Policy, Repository, Request,
    ResourceLimits, ResponsePermission, StreamQuery, SubjectPermissions, User, UserScope,
};
use serde_json::{Value, json};

// ----- JWTs written by Go ---------------------------------------------------

/// A user JWT written by `nsc` (Go `nats-io/jwt` v2), signed by an account
/// signing key, with `issuer_account` (from redpanda-data/benthos tests).
const GO_USER_JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJZMzMzT0c1SlFOVzZXU01DNUlMQjY0Uk5UR0hSRExBM1RTNFJGQ1JaMkU3NElYTzVBTU5BIiwiaWF0IjoxNjYxNzkzMjIxLCJpc3MiOiJBQTRJS1VNN0xVTlZLMlNUQ1lWN0lJWlZTWFdBWEhVUEE1RUI1SjNQQ0Y0V1pOSVFUSk1aMlpWTiIsIm5hbWUiOiJ0ZXN0Iiwic3ViIjoiVUE0RkxNRFQySVZNWEQ2SVZVRjRPRFk3UTRTSVBSU0kzVFRLN1ZMR0hFVFNDVUI0SEczQlRYWUUiLCJuYXRzIjp7InB1YiI6e30sInN1YiI6e30sInN1YnMiOi0xLCJkYXRhIjotMSwicGF5bG9hZCI6LTEsImlzc3Vlcl9hY2NvdW50IjoiQURJQjZKNk40SUNTVlZWWDMzRlc3U1FERlZaSEtLQlhJM05YUkYzWk41WEs1UDI3NVYyWFVKUU4iLCJ0eXBlIjoidXNlciIsInZlcnNpb24iOjJ9fQ.o11HW6FXVDi8cTA2OcWzYZz3tfiFpDqRNlDEZM0nNg47klTfSBkDW9eTTUC_EsZfaEOpCcy1cafPmBo4vpw_AA";

/// The `.creds` file around it, as `nsc` writes it (no final newline).
const GO_USER_CREDS: &str = "-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJZMzMzT0c1SlFOVzZXU01DNUlMQjY0Uk5UR0hSRExBM1RTNFJGQ1JaMkU3NElYTzVBTU5BIiwiaWF0IjoxNjYxNzkzMjIxLCJpc3MiOiJBQTRJS1VNN0xVTlZLMlNUQ1lWN0lJWlZTWFdBWEhVUEE1RUI1SjNQQ0Y0V1pOSVFUSk1aMlpWTiIsIm5hbWUiOiJ0ZXN0Iiwic3ViIjoiVUE0RkxNRFQySVZNWEQ2SVZVRjRPRFk3UTRTSVBSU0kzVFRLN1ZMR0hFVFNDVUI0SEczQlRYWUUiLCJuYXRzIjp7InB1YiI6e30sInN1YiI6e30sInN1YnMiOi0xLCJkYXRhIjotMSwicGF5bG9hZCI6LTEsImlzc3Vlcl9hY2NvdW50IjoiQURJQjZKNk40SUNTVlZWWDMzRlc3U1FERlZaSEtLQlhJM05YUkYzWk41WEs1UDI3NVYyWFVKUU4iLCJ0eXBlIjoidXNlciIsInZlcnNpb24iOjJ9fQ.o11HW6FXVDi8cTA2OcWzYZz3tfiFpDqRNlDEZM0nNg47klTfSBkDW9eTTUC_EsZfaEOpCcy1cafPmBo4vpw_AA
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
SUABRFVRZW4YPTRCQOFZKF45ISHYBPRXPUV7NHHZJVF3D3M2HLZLDKIJ2U
------END USER NKEY SEED------

*************************************************************";

/// A user JWT written by `nsc` whose payload Go escaped HTML-safe
/// (`_INBOX.\u003e`), with reply rights.
const GO_USER_JWT_ESCAPED: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiI0N1dWSzdBUkpUV1c1NFhJSENIVDU1SlM3M1dWU1VUTUxUV1U0SUdPUlVJVUFHUVRLQkdRIiwiaWF0IjoxNzYxMzk3NjA4LCJpc3MiOiJBRE40R1VISEtNR01MMkQyQURFTFBVWUVGRjNRWU5JNERWTjZGNDNKUFA2R0k3VjRTVVlTSlRCNCIsIm5hbWUiOiJ0ZXN0LW1hY2hpbmUtMTIzNDUiLCJzdWIiOiJVQ043WTQ1VzVLTkE3V01ZTVdSQVVRSkRDSEVOQ1o3N1BSWVNCMkhYSENNUFRBNlBXRVZMVVRNTyIsIm5hdHMiOnsicHViIjp7ImFsbG93IjpbIl9JTkJPWC5cdTAwM2UiXX0sInN1YiI6eyJhbGxvdyI6WyJfSU5CT1guXHUwMDNlIiwic2FudGEtY2xpZW50cyIsInNhbnRhLioiLCJzYW50YS5ob3N0LioiLCJzYW50YS50YWcuKiIsIndvcmtzaG9wIl19LCJyZXNwIjp7Im1heCI6MSwidHRsIjowfSwic3VicyI6LTEsImRhdGEiOi0xLCJwYXlsb2FkIjotMSwidHlwZSI6InVzZXIiLCJ2ZXJzaW9uIjoyfX0.L2C1512oLT6KDkgRLN8Ggl5Pa9ZQ1_a_NCqL8YZyzp9ot4PwHLHkLsGNuIgodRYi7LWybYKKIPJN1eRTxs0CDw";

#[test]
fn go_written_jwts_decode_verify_and_have_the_jti_computed_here() {
    for jwt in [GO_USER_JWT, GO_USER_JWT_ESCAPED] {
        let decoded = decode_jwt::<UserNats>(jwt).unwrap();
        assert_eq!(nats_jti(decoded.claims()), decoded.claims().jti);
    }
    let claims = decode_user_jwt(GO_USER_JWT).unwrap();
    assert_eq!(
        claims.nats.issuer_account,
        "ADIB6J6N4ICSVVVX33FW7SQDFVZHKKBXI3NXRF3ZN5XK5P275V2XUJQN"
    );
    assert_eq!(claims.iat, 1_661_793_221);
    assert_eq!(
        (claims.nats.subs, claims.nats.data, claims.nats.payload),
        (-1, -1, -1)
    );
    let claims = decode_user_jwt(GO_USER_JWT_ESCAPED).unwrap();
    assert_eq!(claims.nats.publish.allow, vec!["_INBOX.>".to_owned()]);
    assert_eq!(claims.nats.resp.map(|r| (r.max, r.ttl)), Some((1, 0)));
}

#[test]
fn a_go_written_jwt_with_a_changed_byte_is_refused() {
    let (input, sig) = GO_USER_JWT.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 1;
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(decode_user_jwt(&forged), Err(NatsJwtError::Signature));
    // A payload changed under the same signature.
    let (header, rest) = GO_USER_JWT.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let widened = text.replace(r#""pub":{}"#, r#""pub":{"allow":["x"]}"#);
    let forged = format!(
        "{header}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(widened.as_bytes())
    );
    assert_eq!(decode_user_jwt(&forged), Err(NatsJwtError::Signature));
}

#[test]
fn go_written_creds_parse() {
    let creds = UserCreds::parse(GO_USER_CREDS).unwrap();
    assert_eq!(creds.jwt(), GO_USER_JWT);
    assert!(creds.seed().expose_secret().starts_with("SU"));
    // Written back, it is the same file with its final newline.
    assert_eq!(
        creds.to_file_text().expose_secret(),
        format!("{GO_USER_CREDS}\n")
    );
}

// ----- issuing ----------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

/// The JSON payload of a JWT, as written.
fn payload(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
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

#[tokio::test]
async fn the_operator_jwt_is_self_signed_with_its_signing_keys_and_system_account() {
    let fx = Fixture::at(t0()).await;
    let (_, _) = fx
        .nats
        .rotate_operator_key(&req(), fx.operator)
        .await
        .unwrap();
    let jwt = fx.nats.operator_jwt(fx.operator).await.unwrap();
    assert_eq!(header(&jwt), NATS_JWT_HEADER);
    let operator = fx.admin.operator(fx.operator).await.unwrap();
    let identity = &operator.signing_keys[0].public_key.encoded;
    let active = &operator.active_key().unwrap().public_key.encoded;
    let claims = decode_operator_jwt(&jwt).unwrap();
    assert_eq!(&claims.iss, identity);
    assert_eq!(&claims.sub, identity);
    assert_eq!(claims.name.as_deref(), Some("Test Operator"));
    assert_eq!(claims.iat, t0().timestamp());
    assert_eq!(claims.nats.signing_keys, vec![active.clone()]);
    let system = fx.admin.account(fx.system).await.unwrap();
    assert_eq!(
        claims.nats.system_account,
        system.public_key.unwrap().encoded
    );
    assert_eq!(claims.jti, nats_jti(&claims));
    let json = payload(&jwt);
    assert_eq!(json["nats"]["type"], "operator");
    assert_eq!(json["nats"]["version"], 2);
    NatsTrust::new(&jwt, t0()).unwrap();
}

#[tokio::test]
async fn an_account_jwt_writes_minus_one_for_every_limit_it_does_not_set() {
    let fx = Fixture::at(t0()).await;
    let jwt = fx.nats.account_jwt(fx.account).await.unwrap();
    let json = payload(&jwt);
    assert_eq!(
        json["nats"]["limits"],
        json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
               "wildcards": true, "conn": -1, "leaf": -1})
    );
    // Empty default permissions mean "nothing" in the domain: the server
    // must be told so explicitly.
    assert_eq!(
        json["nats"]["default_permissions"],
        json!({"pub": {"deny": [">"]}, "sub": {"deny": [">"]}})
    );
    assert_eq!(json["nats"]["type"], "account");
    let operator = fx.admin.operator(fx.operator).await.unwrap();
    let claims = decode_account_jwt(&jwt).unwrap();
    assert_eq!(
        claims.iss,
        operator.active_key().unwrap().public_key.encoded
    );
    assert_eq!(claims.sub, account_key(&fx).await);
    assert_eq!(claims.name.as_deref(), Some("Orders"));
    assert_eq!(claims.jti, nats_jti(&claims));

    let limits = AccountLimits {
        max_connections: Some(10),
        max_subscriptions: Some(5),
        max_payload_size: Some(1024),
        max_data_rate: Some(DataRate {
            bytes_per_second: 1,
        }),
        ..AccountLimits::default()
    };
    fx.admin
        .update_account_limits(&req(), fx.account, limits)
        .await
        .unwrap();
    let json = payload(&fx.nats.account_jwt(fx.account).await.unwrap());
    assert_eq!(
        json["nats"]["limits"],
        json!({"subs": 5, "data": -1, "payload": 1024, "imports": -1, "exports": -1,
               "wildcards": true, "conn": 10, "leaf": -1})
    );
}

#[tokio::test]
async fn an_account_jwt_lists_plain_and_scoped_signing_keys() {
    let fx = Fixture::at(t0()).await;
    let (_, _) = fx
        .nats
        .add_account_signing_key(&req(), fx.account, None)
        .await
        .unwrap();
    let scope = UserScope {
        role: "device".into(),
        permissions: Permissions {
            publish: SubjectPermissions::from_patterns(["telemetry.>"], Vec::<String>::new())
                .unwrap(),
            ..Permissions::default()
        },
        limits: ResourceLimits {
            max_payload_size: Some(512),
            ..ResourceLimits::default()
        },
        description: "devices only".into(),
    };
    let (_, jwt) = fx
        .nats
        .add_account_signing_key(&req(), fx.account, Some(scope))
        .await
        .unwrap();
    let account = fx.admin.account(fx.account).await.unwrap();
    let json = payload(&jwt);
    let keys = json["nats"]["signing_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], json!(account.signing_keys[0].public_key.encoded));
    assert_eq!(
        keys[1],
        json!({
            "kind": "user_scope",
            "key": account.signing_keys[1].public_key.encoded,
            "role": "device",
            "template": {
                "pub": {"allow": ["telemetry.>"]},
                "sub": {"deny": [">"]},
                "subs": -1, "data": -1, "payload": 512
            },
            "description": "devices only"
        })
    );
    let claims = decode_account_jwt(&jwt).unwrap();
    assert!(matches!(
        claims.nats.signing_keys[1],
        NatsSigningKey::Scoped(_)
    ));
}

#[tokio::test]
async fn a_user_jwt_carries_the_union_of_its_policies_and_the_account_defaults() {
    let fx = Fixture::at(t0()).await;
    let defaults = Permissions {
        subscribe: SubjectPermissions::from_patterns(["_INBOX.>"], Vec::<String>::new()).unwrap(),
        ..Permissions::default()
    };
    fx.admin
        .update_default_permissions(&req(), fx.account, defaults)
        .await
        .unwrap();
    let billing = fx
        .admin
        .create_policy(
            &req(),
            fx.account.tenant(),
            NewPolicy::new("billing")
                .permissions(Permissions {
                    publish: SubjectPermissions::from_patterns(["billing.>"], ["billing.secret"])
                        .unwrap(),
                    subscribe: SubjectPermissions::from_patterns(
                        ["billing.*"],
                        Vec::<String>::new(),
                    )
                    .unwrap(),
                    allow_responses: Some(ResponsePermission {
                        max_messages: 3,
                        ttl_ms: 5_000,
                    }),
                })
                .limits(ResourceLimits {
                    max_subscriptions: Some(10),
                    max_payload_size: Some(2048),
                    expires_at: Some(t0() + Duration::hours(5)),
                    ..ResourceLimits::default()
                }),
        )
        .await
        .unwrap();
    let expiring = fx
        .admin
        .create_policy(
            &req(),
            fx.account.tenant(),
            NewPolicy::new("short")
                .permissions(Permissions {
                    publish: SubjectPermissions::from_patterns(["short.>"], Vec::<String>::new())
                        .unwrap(),
                    ..Permissions::default()
                })
                .limits(ResourceLimits {
                    max_subscriptions: Some(1),
                    expires_at: Some(t0() + Duration::minutes(30)),
                    ..ResourceLimits::default()
                }),
        )
        .await
        .unwrap();
    let alice = fx
        .user("alice", &[fx.orders_policy, billing, expiring])
        .await;
    // An hour on, the short policy no longer grants anything.
    fx.advance(3600);
    let now = t0() + Duration::hours(1);
    let options = UserJwtOptions {
        lifetime: None,
        ..UserJwtOptions::default()
    };
    let issued = fx
        .nats
        .user_jwt(fx.account, alice, UserSigner::Default, &options)
        .await
        .unwrap();
    let json = payload(&issued.jwt);
    assert_eq!(
        json["nats"]["pub"],
        json!({"allow": ["orders.>", "billing.>"], "deny": ["orders.delete", "billing.secret"]})
    );
    assert_eq!(
        json["nats"]["sub"],
        json!({"allow": ["_INBOX.>", "orders.>", "billing.*"]})
    );
    // The more generous reply rights; ttl in nanoseconds.
    assert_eq!(
        json["nats"]["resp"],
        json!({"max": 3, "ttl": 120_000_000_000_i64})
    );
    // The tightest limits of the policies in force; no data-rate limit in NATS.
    assert_eq!(json["nats"]["subs"], 10);
    assert_eq!(json["nats"]["payload"], 2048);
    assert_eq!(json["nats"]["data"], -1);
    // Expires with the first policy that does.
    assert_eq!(json["exp"], (t0() + Duration::hours(5)).timestamp());
    assert_eq!(issued.expires_at, Some(t0() + Duration::hours(5)));
    assert_eq!(json["iat"], now.timestamp());
    assert_eq!(json["name"], "alice");
    assert_eq!(json["nats"]["type"], "user");
    assert_eq!(json["nats"]["version"], 2);
    // Signed by the account itself: no issuer_account.
    assert!(json["nats"].get("issuer_account").is_none());
    assert_eq!(json["iss"], account_key(&fx).await);

    // The same union, in process.
    let account = fx.admin.account(fx.account).await.unwrap();
    let user = fx.admin.user(fx.account.tenant(), alice).await.unwrap();
    let mut policies = Vec::new();
    for id in &user.policies {
        policies.push(fx.admin.policy(fx.account.tenant(), *id).await.unwrap());
    }
    let effective = effective_user_permissions(&account, &policies, now);
    assert!(effective.permissions.can_publish("billing.paid"));
    assert!(!effective.permissions.can_publish("billing.secret"));
    assert!(!effective.permissions.can_publish("short.x"));
    assert!(effective.permissions.can_subscribe("_INBOX.abc", None));
}

#[tokio::test]
async fn a_user_jwt_signed_by_a_signing_key_names_its_account() {
    let fx = Fixture::at(t0()).await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let (key, _) = fx
        .nats
        .add_account_signing_key(&req(), fx.account, None)
        .await
        .unwrap();
    let issued = fx
        .nats
        .user_jwt(
            fx.account,
            alice,
            UserSigner::Default,
            &UserJwtOptions::default(),
        )
        .await
        .unwrap();
    let account = fx.admin.account(fx.account).await.unwrap();
    let claims = decode_user_jwt(&issued.jwt).unwrap();
    assert_eq!(claims.iss, account.signing_keys[0].public_key.encoded);
    assert_eq!(claims.nats.issuer_account, account_key(&fx).await);
    assert_eq!(claims.exp, Some((t0() + Duration::hours(24)).timestamp()));
    let by_identity = fx
        .nats
        .user_jwt(
            fx.account,
            alice,
            UserSigner::Identity,
            &UserJwtOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        decode_user_jwt(&by_identity.jwt)
            .unwrap()
            .nats
            .issuer_account
            .is_empty()
    );
    let by_key = fx
        .nats
        .user_jwt(
            fx.account,
            alice,
            UserSigner::SigningKey(key),
            &UserJwtOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(by_key.signer_key, claims.iss);
}

#[tokio::test]
async fn user_jwts_are_refused_to_those_who_may_not_have_one() {
    let fx = Fixture::at(t0()).await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let options = UserJwtOptions::default();

    // A user without an nkey.
    let plain = fx
        .admin
        .create_user(
            &req(),
            fx.account,
            security_core::NewUser {
                username: "plain".into(),
                credential: Credential::Token {
                    token_hash: "hash".into(),
                    expires_at: None,
                },
                metadata: BTreeMap::new(),
                must_change_password: false,
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        fx.nats
            .user_jwt(fx.account, plain, UserSigner::Default, &options)
            .await,
        Err(NatsError::MissingKey("user"))
    ));

    // A revoked signing key signs nothing.
    let (key, _) = fx
        .nats
        .add_account_signing_key(&req(), fx.account, None)
        .await
        .unwrap();
    fx.nats
        .revoke_account_signing_key(&req(), fx.account, key)
        .await
        .unwrap();
    assert!(matches!(
        fx.nats
            .user_jwt(fx.account, alice, UserSigner::SigningKey(key), &options)
            .await,
        Err(NatsError::SigningKey(k)) if k == key
    ));

    // Policies that are not the user's.
    let account = fx.admin.account(fx.account).await.unwrap();
    let user = fx.admin.user(fx.account.tenant(), alice).await.unwrap();
    let signer = fx
        .nats
        .issuer()
        .account_signer(&account, UserSigner::Default)
        .await
        .unwrap();
    let none: Vec<Policy> = Vec::new();
    assert!(matches!(
        fx.nats.issuer().user_jwt(&account, &user, &none, &signer, &options).await,
        Err(NatsError::PolicyMismatch(p)) if p == fx.orders_policy
    ));

    // A locked user.
    fx.admin
        .lock_user(&req(), fx.account.tenant(), alice, "investigation")
        .await
        .unwrap();
    assert!(matches!(
        fx.nats
            .user_jwt(fx.account, alice, UserSigner::Default, &options)
            .await,
        Err(NatsError::Domain(DomainError::UserLocked))
    ));

    // A suspended account's users.
    let bob = fx.user("bob", &[]).await;
    fx.nats
        .suspend_account(&req(), fx.account, "fraud")
        .await
        .unwrap();
    assert!(matches!(
        fx.nats
            .user_jwt(fx.account, bob, UserSigner::Default, &options)
            .await,
        Err(NatsError::Domain(DomainError::AccountSuspended))
    ));
}

#[tokio::test]
async fn the_operator_identity_cannot_be_revoked_and_a_revoked_identity_signs_nothing() {
    let fx = Fixture::at(t0()).await;
    let operator = fx.admin.operator(fx.operator).await.unwrap();
    let identity = operator.identity_key_id.unwrap();
    assert!(matches!(
        fx.nats
            .revoke_operator_key(&req(), fx.operator, identity, "no")
            .await,
        Err(NatsError::OperatorIdentityRevoked)
    ));
    // Revoked below NatsAdmin, the operator can no longer sign its JWT.
    fx.admin
        .revoke_operator_key(&req(), fx.operator, identity, "compromised")
        .await
        .unwrap();
    assert!(matches!(
        fx.nats.operator_jwt(fx.operator).await,
        Err(NatsError::OperatorIdentityRevoked)
    ));
}

// ----- verifying ---------------------------------------------------------------

/// An issued chain: operator, Orders account, and alice's user JWT.
async fn chain(fx: &Fixture, alice: security_core::UserId) -> (String, String, String) {
    let operator = fx.nats.operator_jwt(fx.operator).await.unwrap();
    let account = fx.nats.account_jwt(fx.account).await.unwrap();
    let user = fx
        .nats
        .user_jwt(
            fx.account,
            alice,
            UserSigner::Default,
            &UserJwtOptions::default(),
        )
        .await
        .unwrap()
        .jwt;
    (operator, account, user)
}

#[tokio::test]
async fn the_trust_verifies_an_issued_chain() {
    let fx = Fixture::at(t0()).await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let (operator, account, user) = chain(&fx, alice).await;
    let mut trust = NatsTrust::new(&operator, t0()).unwrap();
    trust.add_account(&account).unwrap();
    let verified = trust.verify_user(&user, t0()).unwrap();
    assert_eq!(verified.account, account_key(&fx).await);
    assert_eq!(verified.signer, verified.account);
    assert!(!verified.scoped);
    assert_eq!(
        verified.permissions.publish.allow,
        vec!["orders.>".to_owned()]
    );
    assert_eq!(
        verify_user_chain(&operator, &account, &user, t0()).unwrap(),
        verified
    );

    // Time: expired a day later, not valid before its nbf.
    assert_eq!(
        trust
            .verify_user(&user, t0() + Duration::hours(24) + Duration::seconds(1))
            .unwrap_err(),
        NatsJwtError::Expired
    );
    let later = fx
        .nats
        .user_jwt(
            fx.account,
            alice,
            UserSigner::Default,
            &UserJwtOptions {
                not_before: Some(t0() + Duration::hours(1)),
                ..UserJwtOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        trust.verify_user(&later.jwt, t0()).unwrap_err(),
        NatsJwtError::NotYetValid
    );
    trust
        .verify_user(&later.jwt, t0() + Duration::hours(1))
        .unwrap();

    // Wrong types, unknown accounts.
    assert_eq!(
        trust.verify_user(&account, t0()).unwrap_err(),
        NatsJwtError::ClaimType {
            expected: "user",
            found: "account"
        }
    );
    let empty = NatsTrust::new(&operator, t0()).unwrap();
    assert_eq!(
        empty.verify_user(&user, t0()).unwrap_err(),
        NatsJwtError::UnknownAccount
    );
}

#[tokio::test]
async fn the_trust_refuses_revoked_users_suspended_accounts_and_revoked_keys() {
    let fx = Fixture::at(t0()).await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let bob = fx.user("bob", &[fx.orders_policy]).await;
    let (key, _) = fx
        .nats
        .add_account_signing_key(&req(), fx.account, None)
        .await
        .unwrap();
    let (operator, _, alice_jwt) = chain(&fx, alice).await;
    let (_, _, bob_jwt) = chain(&fx, bob).await;
    let mut trust = NatsTrust::new(&operator, t0()).unwrap();

    fx.advance(1);
    let account = fx
        .nats
        .revoke_user(&req(), fx.account, alice, "left the company")
        .await
        .unwrap();
    trust.add_account(&account).unwrap();
    assert_eq!(
        trust.verify_user(&alice_jwt, t0()).unwrap_err(),
        NatsJwtError::Revoked
    );
    trust.verify_user(&bob_jwt, t0()).unwrap();
    fx.advance(1);
    let (_, _, reissued) = chain(&fx, alice).await;
    trust.verify_user(&reissued, t0()).unwrap();

    fx.advance(1);
    let account = fx
        .nats
        .revoke_account_signing_key(&req(), fx.account, key)
        .await
        .unwrap();
    trust.add_account(&account).unwrap();
    assert_eq!(
        trust.verify_user(&bob_jwt, t0()).unwrap_err(),
        NatsJwtError::UntrustedIssuer
    );

    fx.advance(1);
    let (_, _, bob_by_identity) = chain(&fx, bob).await;
    trust.verify_user(&bob_by_identity, t0()).unwrap();
    let account = fx
        .nats
        .suspend_account(&req(), fx.account, "audit")
        .await
        .unwrap();
    trust.add_account(&account).unwrap();
    assert_eq!(
        trust.verify_user(&bob_by_identity, t0()).unwrap_err(),
        NatsJwtError::Revoked
    );
    assert_eq!(
        trust
            .account(&account_key(&fx).await)
            .unwrap()
            .nats
            .limits
            .conn,
        0
    );
}

#[tokio::test]
async fn an_account_of_another_operator_is_not_trusted() {
    let ours = Fixture::at(t0()).await;
    let theirs = Fixture::at(t0()).await;
    let mut trust =
        NatsTrust::new(&ours.nats.operator_jwt(ours.operator).await.unwrap(), t0()).unwrap();
    let foreign = theirs.nats.account_jwt(theirs.account).await.unwrap();
    assert_eq!(
        trust.add_account(&foreign).unwrap_err(),
        NatsJwtError::UntrustedIssuer
    );
}

// Hand-made chains, for what the issuer never writes.

struct Keys {
    operator: nkeys::KeyPair,
    account: nkeys::KeyPair,
    scoped: nkeys::KeyPair,
    user: nkeys::KeyPair,
}

fn keys() -> Keys {
    Keys {
        operator: nkeys::KeyPair::new_operator(),
        account: nkeys::KeyPair::new_account(),
        scoped: nkeys::KeyPair::new_account(),
        user: nkeys::KeyPair::new_user(),
    }
}

fn sign(signer: &nkeys::KeyPair, header: &str, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let sig = signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn forge(signer: &nkeys::KeyPair, claims: &Value) -> String {
    sign(signer, NATS_JWT_HEADER, claims)
}

fn operator_claims(k: &Keys, nats: Value) -> Value {
    let mut nats = nats;
    nats["type"] = json!("operator");
    nats["version"] = json!(2);
    json!({"iat": t0().timestamp(), "iss": k.operator.public_key(),
           "sub": k.operator.public_key(), "nats": nats})
}

fn account_claims(k: &Keys, extra: Value) -> Value {
    let mut claims = json!({"iat": t0().timestamp(), "iss": k.operator.public_key(),
        "sub": k.account.public_key(),
        "nats": {"limits": {"conn": -1, "subs": -1, "data": -1, "payload": -1},
                 "signing_keys": [{"kind": "user_scope", "key": k.scoped.public_key(),
                                   "role": "r", "template": {"pub": {"allow": ["a.>"]},
                                   "subs": -1, "data": -1, "payload": -1}}],
                 "type": "account", "version": 2}});
    merge(&mut claims, extra);
    claims
}

fn user_claims(k: &Keys, issuer: &nkeys::KeyPair, extra: Value) -> Value {
    let mut claims = json!({"iat": t0().timestamp(), "iss": issuer.public_key(),
        "sub": k.user.public_key(),
        "nats": {"pub": {}, "sub": {}, "type": "user", "version": 2}});
    merge(&mut claims, extra);
    claims
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        for (k, v) in extra {
            match (into.get_mut(&k), v) {
                (Some(existing @ Value::Object(_)), v @ Value::Object(_)) => merge(existing, v),
                (_, v) => {
                    into.insert(k, v);
                }
            }
        }
    }
}

fn trust(k: &Keys, operator_nats: Value, account_extra: Value) -> NatsTrust {
    let operator = forge(&k.operator, &operator_claims(k, operator_nats));
    let mut trust = NatsTrust::new(&operator, t0()).unwrap();
    trust
        .add_account(&forge(&k.operator, &account_claims(k, account_extra)))
        .unwrap();
    trust
}

#[test]
fn hand_made_chains_are_checked_like_the_server_does() {
    let k = keys();
    let trusted = trust(&k, json!({}), json!({}));
    let user = forge(&k.account, &user_claims(&k, &k.account, json!({})));
    trusted.verify_user(&user, t0()).unwrap();

    // A scoped signer: the template applies; own permissions are refused.
    let scoped_user = forge(
        &k.scoped,
        &json!({"iat": t0().timestamp(), "iss": k.scoped.public_key(),
                "sub": k.user.public_key(),
                "nats": {"issuer_account": k.account.public_key(), "type": "user", "version": 2}}),
    );
    let verified = trusted.verify_user(&scoped_user, t0()).unwrap();
    assert!(verified.scoped);
    assert_eq!(verified.permissions.publish.allow, vec!["a.>".to_owned()]);
    let with_own = forge(
        &k.scoped,
        &user_claims(
            &k,
            &k.scoped,
            json!({"nats": {"issuer_account": k.account.public_key(), "subs": -1}}),
        ),
    );
    assert_eq!(
        trusted.verify_user(&with_own, t0()).unwrap_err(),
        NatsJwtError::ScopedUserHasPermissions
    );

    // A signing key used without issuer_account, and the identity with it.
    let no_issuer_account = forge(&k.scoped, &user_claims(&k, &k.scoped, json!({})));
    assert_eq!(
        trusted.verify_user(&no_issuer_account, t0()).unwrap_err(),
        NatsJwtError::UnknownAccount
    );
    let identity_with = forge(
        &k.account,
        &user_claims(
            &k,
            &k.account,
            json!({"nats": {"issuer_account": k.account.public_key()}}),
        ),
    );
    assert_eq!(
        trusted.verify_user(&identity_with, t0()).unwrap_err(),
        NatsJwtError::UntrustedIssuer
    );

    // An expired account refuses its users.
    let expired_account = trust(&k, json!({}), json!({"exp": t0().timestamp() - 1}));
    assert_eq!(
        expired_account.verify_user(&user, t0()).unwrap_err(),
        NatsJwtError::AccountExpired
    );
    // Revocation of all users up to a time.
    let revoked = trust(
        &k,
        json!({}),
        json!({"nats": {"revocations": {"*": t0().timestamp()}}}),
    );
    assert_eq!(
        revoked.verify_user(&user, t0()).unwrap_err(),
        NatsJwtError::Revoked
    );
    let newer = forge(
        &k.account,
        &user_claims(&k, &k.account, json!({"iat": t0().timestamp() + 1})),
    );
    revoked.verify_user(&newer, t0()).unwrap();
}

#[test]
fn malformed_and_foreign_jwts_get_typed_errors() {
    let k = keys();
    // Not self-signed.
    let mut claims = operator_claims(&k, json!({}));
    let other = nkeys::KeyPair::new_operator();
    claims["iss"] = json!(other.public_key());
    assert_eq!(
        NatsTrust::new(&forge(&other, &claims), t0()).unwrap_err(),
        NatsJwtError::NotSelfSigned
    );
    // Strict signing-key usage: the identity may not sign accounts.
    let operator = forge(
        &k.operator,
        &operator_claims(&k, json!({"strict_signing_key_usage": true})),
    );
    let mut strict = NatsTrust::new(&operator, t0()).unwrap();
    assert_eq!(
        strict
            .add_account(&forge(&k.operator, &account_claims(&k, json!({}))))
            .unwrap_err(),
        NatsJwtError::UntrustedIssuer
    );
    // Headers: another order is fine; another algorithm is not.
    let user = user_claims(&k, &k.account, json!({}));
    decode_user_jwt(&sign(
        &k.account,
        r#"{"alg":"ed25519-nkey","typ":"jwt"}"#,
        &user,
    ))
    .unwrap();
    assert_eq!(
        decode_user_jwt(&sign(&k.account, r#"{"typ":"JWT","alg":"ed25519"}"#, &user)),
        Err(NatsJwtError::Header)
    );
    // Version 1, a user key as issuer, a bad subject.
    let mut v1 = user.clone();
    v1["nats"]["version"] = json!(1);
    assert_eq!(
        decode_user_jwt(&forge(&k.account, &v1)),
        Err(NatsJwtError::Version)
    );
    let mut by_user = user.clone();
    by_user["iss"] = json!(k.user.public_key());
    assert_eq!(
        decode_user_jwt(&forge(&k.user, &by_user)),
        Err(NatsJwtError::Key {
            field: "iss",
            expected: "account"
        })
    );
    let mut bad_sub = user.clone();
    bad_sub["sub"] = json!(k.account.public_key());
    assert!(matches!(
        decode_user_jwt(&forge(&k.account, &bad_sub)),
        Err(NatsJwtError::Key { field: "sub", .. })
    ));
    // Shapes.
    for bad in ["", "abc", "a.b", "a.b.c", "..", "e30.e30.AAAA"] {
        assert!(
            matches!(
                decode_user_jwt(bad),
                Err(NatsJwtError::Malformed | NatsJwtError::Header)
            ),
            "{bad:?}"
        );
    }
    let huge = "a".repeat(security_authn::NATS_MAX_JWT_LEN + 1);
    assert_eq!(decode_user_jwt(&huge), Err(NatsJwtError::TooLarge));
    // An account JWT where a user JWT is expected.
    assert!(matches!(
        decode_jwt::<AccountNats>(&forge(&k.account, &user)),
        Err(NatsJwtError::ClaimType { .. })
    ));
}

#[test]
fn a_user_jwt_that_names_a_member_twice_is_refused() {
    // Go's decoder keeps the last copy of a repeated member; another parser
    // may keep the first. A properly signed token whose `sub` or whose
    // permissions appear twice is refused, whichever copy would win.
    let k = keys();
    let trusted = trust(&k, json!({}), json!({}));
    let other_user = nkeys::KeyPair::new_user();
    let signed = |payload: &str| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(NATS_JWT_HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = k.account.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    let iat = t0().timestamp();
    let (iss, sub, victim) = (
        k.account.public_key(),
        k.user.public_key(),
        other_user.public_key(),
    );
    let nats = r#"{"pub":{"allow":["a.>"]},"sub":{},"type":"user","version":2}"#;
    let single = format!(r#"{{"iat":{iat},"iss":"{iss}","sub":"{sub}","nats":{nats}}}"#);
    trusted.verify_user(&signed(&single), t0()).unwrap();

    let twice_sub =
        format!(r#"{{"iat":{iat},"iss":"{iss}","sub":"{sub}","nats":{nats},"sub":"{victim}"}}"#);
    let escaped_sub = format!(
        r#"{{"iat":{iat},"iss":"{iss}","sub":"{sub}","nats":{nats},"\u0073ub":"{victim}"}}"#
    );
    let twice_pub = format!(
        r#"{{"iat":{iat},"iss":"{iss}","sub":"{sub}","nats":{{"pub":{{"allow":["a.>"]}},"sub":{{}},"type":"user","version":2,"pub":{{"allow":[">"]}}}}}}"#
    );
    for payload in [twice_sub, escaped_sub, twice_pub] {
        let token = signed(&payload);
        assert_eq!(
            decode_user_jwt(&token),
            Err(NatsJwtError::Malformed),
            "{payload}"
        );
        assert!(trusted.verify_user(&token, t0()).is_err(), "{payload}");
    }
    // A header with a repeated member is refused too.
    let header = r#"{"typ":"JWT","alg":"ed25519-nkey","alg":"none"}"#;
    assert_eq!(
        decode_user_jwt(&sign(
            &k.account,
            header,
            &user_claims(&k, &k.account, json!({}))
        )),
        Err(NatsJwtError::Header)
    );
}

// ----- .creds and the server configuration --------------------------------------

#[tokio::test]
async fn creds_files_have_the_exact_nats_layout_and_hide_the_seed() {
    let fx = Fixture::at(t0()).await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let creds = fx.creds(alice).await;
    let seed = creds.seed().expose_secret().to_owned();
    assert!(seed.starts_with("SU") && seed.len() == 58);
    let expected = format!(
        "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        creds.jwt()
    );
    assert_eq!(creds.to_file_text().expose_secret(), expected);
    let parsed = UserCreds::parse(&expected).unwrap();
    assert_eq!(parsed.jwt(), creds.jwt());
    assert_eq!(parsed.seed().expose_secret(), seed);
    assert!(!format!("{creds:?}").contains(&seed));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.creds");
    creds.write_file(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Malformed: no END marker, a seed of another user, an account seed.
    let cut = expected.replace("------END USER NKEY SEED------", "");
    assert!(matches!(
        UserCreds::parse(&cut),
        Err(NatsError::MalformedCreds)
    ));
    let other = nkeys::KeyPair::new_user().seed().unwrap();
    let error = UserCreds::new(creds.jwt(), SecretString::from(other.clone())).unwrap_err();
    assert!(matches!(error, NatsError::MalformedCreds));
    assert!(!error.to_string().contains(&other));
    let account_seed = nkeys::KeyPair::new_account().seed().unwrap();
    assert!(UserCreds::new(creds.jwt(), SecretString::from(account_seed)).is_err());
}

#[tokio::test]
async fn the_server_configuration_preloads_the_system_account() {
    let fx = Fixture::at(t0()).await;
    let config = fx.config().await.listen("127.0.0.1:4333");
    let operator = fx.nats.operator_jwt(fx.operator).await.unwrap();
    let system = fx
        .admin
        .account(fx.system)
        .await
        .unwrap()
        .public_key
        .unwrap()
        .encoded;
    let orders = account_key(&fx).await;
    let text = config.render().unwrap();
    let mut preload: Vec<String> = vec![
        format!("  \"{system}\": \"{}\"", config.accounts[&system]),
        format!("  \"{orders}\": \"{}\"", config.accounts[&orders]),
    ];
    preload.sort();
    assert_eq!(
        text,
        format!(
            "# NATS decentralized auth (operator mode), written by security-authn.\n\
             listen: 127.0.0.1:4333\n\
             operator: \"{operator}\"\n\
             system_account: \"{system}\"\n\
             resolver: MEMORY\n\
             resolver_preload: {{\n{}\n}}\n",
            preload.join("\n")
        )
    );

    let without_system =
        NatsServerConfig::new(&operator, [config.accounts[&orders].as_str()]).unwrap_err();
    assert!(matches!(without_system, NatsError::MissingSystemAccount));
    assert!(matches!(
        config
            .clone()
            .listen("0.0.0.0:1\"\nauthorization {")
            .render(),
        Err(NatsError::ConfigValue("listen address"))
    ));
    assert!(matches!(
        config.clone().operator_path("op.jwt\"\ninclude x").render(),
        Err(NatsError::ConfigValue("operator path"))
    ));
    assert!(
        config
            .operator_path("/etc/nats/operator.jwt")
            .render()
            .unwrap()
            .contains("operator: \"/etc/nats/operator.jwt\"\n")
    );
}

// ----- the life cycle -------------------------------------------------------------

async fn event_types<A: security_core::Aggregate>(
    fx: &Fixture,
    tenant: security_core::TenantId,
    id: impl Into<uuid::Uuid>,
) -> Vec<String> {
    fx.admin
        .repository()
        .store()
        .read_stream(&Repository::stream_id::<A>(tenant, id), StreamQuery::all())
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_type.to_string())
        .collect()
}

#[tokio::test]
async fn each_life_cycle_change_is_an_event() {
    let fx = Fixture::at(t0()).await;
    let tenant = fx.account.tenant();
    let alice = fx.user("alice", &[fx.orders_policy]).await;

    let (old, _) = fx
        .nats
        .rotate_operator_key(&req(), fx.operator)
        .await
        .unwrap();
    fx.nats
        .rotate_operator_key(&req(), fx.operator)
        .await
        .unwrap();
    fx.nats
        .revoke_operator_key(&req(), fx.operator, old, "retired")
        .await
        .unwrap();
    let operator_events =
        event_types::<security_core::Operator>(&fx, security_core::TenantId::SYSTEM, fx.operator)
            .await;
    assert_eq!(
        operator_events[operator_events.len() - 3..],
        [
            "SigningKeyRotated",
            "SigningKeyRotated",
            "SigningKeyRevoked"
        ]
    );

    let (key, _) = fx
        .nats
        .rotate_account_signing_key(&req(), fx.account)
        .await
        .unwrap();
    fx.nats
        .revoke_account_signing_key(&req(), fx.account, key)
        .await
        .unwrap();
    fx.nats
        .suspend_account(&req(), fx.account, "audit")
        .await
        .unwrap();
    fx.nats
        .reactivate_account(&req(), fx.account)
        .await
        .unwrap();
    let account_events = event_types::<Account>(&fx, tenant, fx.account).await;
    assert_eq!(
        account_events[account_events.len() - 4..],
        [
            "AccountSigningKeyAdded",
            "AccountSigningKeyRevoked",
            "AccountSuspended",
            "AccountReactivated"
        ]
    );
    assert!(matches!(
        fx.keys.key(key).await.unwrap().status,
        KeyStatus::Revoked { .. }
    ));

    fx.nats
        .revoke_user(&req(), fx.account, alice, "device lost")
        .await
        .unwrap();
    fx.nats
        .provision_user_nkey(&req(), fx.account, alice)
        .await
        .unwrap();
    let user_events = event_types::<User>(&fx, tenant, alice).await;
    assert_eq!(
        user_events,
        [
            "UserCreated",
            "PolicyAssigned",
            "SessionsRevoked",
            "CredentialsUpdated"
        ]
    );

    let reissued = fx
        .nats
        .update_policy_permissions(&req(), fx.account, fx.orders_policy, Permissions::default())
        .await
        .unwrap();
    assert_eq!(reissued.len(), 1);
    let policy_events = event_types::<security_core::Policy>(&fx, tenant, fx.orders_policy).await;
    assert_eq!(policy_events, ["PolicyCreated", "PermissionsUpdated"]);
    // The reissued JWT reflects the change: the policy now grants nothing.
    let claims = decode_user_jwt(&reissued[0].jwt.jwt).unwrap();
    assert_eq!(claims.nats.publish.deny, vec![">".to_owned()]);
}

#[tokio::test]
async fn a_replaced_user_nkey_is_revoked_in_the_account_jwt() {
    let fx = Fixture::at(t0()).await;
    let alice = fx.user("alice", &[fx.orders_policy]).await;
    let old = fx.admin.user(fx.account.tenant(), alice).await.unwrap();
    let old_key = security_authn::user_nkey(&old).unwrap().to_owned();
    fx.advance(5);
    let new_key = fx
        .nats
        .provision_user_nkey(&req(), fx.account, alice)
        .await
        .unwrap();
    assert_ne!(new_key.encoded, old_key);
    let claims = decode_account_jwt(&fx.nats.account_jwt(fx.account).await.unwrap()).unwrap();
    assert_eq!(
        claims.nats.revocations.get(&old_key),
        Some(&(t0().timestamp() + 5))
    );
    assert!(!claims.nats.revocations.contains_key(&new_key.encoded));
    let keys = fx
        .keys
        .list_keys(KeyOwner::new(fx.account.tenant(), alice))
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.purpose == KeyPurpose::UserIdentity && k.exportable)
    );
}

#[tokio::test]
async fn creating_a_user_twice_with_one_idempotency_key_creates_it_once() {
    let fx = Fixture::at(t0()).await;
    let request = Request::default().idempotent(IdempotencyKey::new("create-carol").unwrap());
    let first = fx
        .nats
        .create_user(&request, fx.account, "carol", BTreeMap::new())
        .await
        .unwrap();
    let second = fx
        .nats
        .create_user(&request, fx.account, "carol", BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(first, second);
    let keys = fx
        .keys
        .list_keys(KeyOwner::new(fx.account.tenant(), first.0))
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    // A taken username creates no user and leaves no usable key.
    let clash = fx
        .nats
        .create_user(&req(), fx.account, "Carol", BTreeMap::new())
        .await;
    assert!(matches!(
        clash,
        Err(NatsError::Admin(ref e)) if e.rejection() == Some(&DomainError::UsernameTaken)
    ));
}

#[tokio::test]
async fn an_account_that_expires_caps_its_users_jwts() {
    let fx = Fixture::at(t0()).await;
    let account = fx
        .admin
        .create_account(
            &req(),
            fx.operator,
            "Temporary",
            AccountClaims {
                expires_at: Some(t0() + Duration::hours(2)),
                ..AccountClaims::default()
            },
        )
        .await
        .unwrap();
    let (user, _) = fx
        .nats
        .create_user(&req(), account, "tmp", BTreeMap::new())
        .await
        .unwrap();
    let issued = fx
        .nats
        .user_jwt(
            account,
            user,
            UserSigner::Default,
            &UserJwtOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(issued.expires_at, Some(t0() + Duration::hours(2)));
    let claims = decode_account_jwt(&fx.nats.account_jwt(account).await.unwrap()).unwrap();
    assert_eq!(claims.exp, Some((t0() + Duration::hours(2)).timestamp()));
}
