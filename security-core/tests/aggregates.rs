//! Given/when/then tests for every command of every aggregate: the
//! accepted path and each rejected path.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use security_core::testing::AggregateTest;
use security_core::*;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::from_uuid(Uuid::from_u128(0xA))
}

fn ctx() -> CommandContext {
    CommandContext::new(tenant(), t0())
}

fn ctx_at(secs: i64) -> CommandContext {
    CommandContext::new(tenant(), t0() + Duration::seconds(secs))
}

fn key(n: u128, letter: char) -> NewSigningKey {
    NewSigningKey {
        key_id: KeyId::from_uuid(Uuid::from_u128(n)),
        public_key: PublicKey::ed25519(format!("{letter}{n:055}")),
        expires_at: None,
    }
}

fn sealed(n: u128) -> SealedSecret {
    SealedSecret::new(
        KeyId::from_uuid(Uuid::from_u128(n)),
        format!("ciphertext-{n}"),
    )
}

// ----- operator -----------------------------------------------------------

const OP: OperatorId = OperatorId::from_uuid(Uuid::from_u128(0x0B));

fn operator_created() -> OperatorEvent {
    OperatorEvent::OperatorCreated {
        operator_id: OP,
        name: "Root".into(),
        initial_key_id: key(1, 'O').key_id,
        public_key: key(1, 'O').public_key,
        key_expires_at: None,
        created_at: t0(),
    }
}

#[test]
fn create_operator() {
    let state = AggregateTest::<Operator>::new(ctx())
        .when(OperatorCommand::CreateOperator {
            operator_id: OP,
            name: "Root".into(),
            initial_key: key(1, 'O'),
        })
        .then_expect_events(vec![operator_created()]);
    assert_eq!(state.active_key_id, Some(key(1, 'O').key_id));
    assert_eq!(state.identity_key_id, Some(key(1, 'O').key_id));
    assert!(state.is_key_trusted(key(1, 'O').key_id, t0()));
}

#[test]
fn create_operator_twice_or_unnamed_is_refused() {
    AggregateTest::<Operator>::new(ctx())
        .given([operator_created()])
        .when(OperatorCommand::CreateOperator {
            operator_id: OP,
            name: "Root".into(),
            initial_key: key(1, 'O'),
        })
        .then_expect_error(&DomainError::AlreadyExists { kind: "operator" });
    AggregateTest::<Operator>::new(ctx())
        .when(OperatorCommand::CreateOperator {
            operator_id: OP,
            name: " ".into(),
            initial_key: key(1, 'O'),
        })
        .then_expect_error(&DomainError::Invalid {
            field: "name",
            reason: "must not be empty",
        });
}

#[test]
fn rotate_signing_key_keeps_the_old_one_valid() {
    let state = AggregateTest::<Operator>::new(ctx_at(10))
        .given([operator_created()])
        .when(OperatorCommand::RotateSigningKey {
            new_key: key(2, 'O'),
        })
        .then_expect_events(vec![OperatorEvent::SigningKeyRotated {
            operator_id: OP,
            old_key_id: key(1, 'O').key_id,
            new_key_id: key(2, 'O').key_id,
            new_public_key: key(2, 'O').public_key,
            expires_at: None,
            rotated_at: t0() + Duration::seconds(10),
        }]);
    assert_eq!(state.active_key_id, Some(key(2, 'O').key_id));
    assert!(
        state.is_key_trusted(key(1, 'O').key_id, t0() + Duration::seconds(20)),
        "rotated out, not revoked"
    );
}

#[test]
fn rotate_is_refused_for_a_known_key_or_a_missing_operator() {
    AggregateTest::<Operator>::new(ctx())
        .given([operator_created()])
        .when(OperatorCommand::RotateSigningKey {
            new_key: key(1, 'O'),
        })
        .then_expect_error(&DomainError::DuplicateKey(key(1, 'O').key_id));
    AggregateTest::<Operator>::new(ctx())
        .when(OperatorCommand::RotateSigningKey {
            new_key: key(2, 'O'),
        })
        .then_expect_error(&DomainError::NotFound { kind: "operator" });
}

fn rotated_to_2() -> OperatorEvent {
    OperatorEvent::SigningKeyRotated {
        operator_id: OP,
        old_key_id: key(1, 'O').key_id,
        new_key_id: key(2, 'O').key_id,
        new_public_key: key(2, 'O').public_key,
        expires_at: None,
        rotated_at: t0(),
    }
}

#[test]
fn revoke_an_inactive_key() {
    let state = AggregateTest::<Operator>::new(ctx_at(5))
        .given([operator_created(), rotated_to_2()])
        .when(OperatorCommand::RevokeSigningKey {
            key_id: key(1, 'O').key_id,
            reason: "leaked".into(),
            successor: None,
        })
        .then_expect_events(vec![OperatorEvent::SigningKeyRevoked {
            operator_id: OP,
            key_id: key(1, 'O').key_id,
            reason: "leaked".into(),
            revoked_at: t0() + Duration::seconds(5),
        }]);
    assert!(!state.is_key_trusted(key(1, 'O').key_id, t0() + Duration::seconds(6)));
    assert!(
        state.is_key_trusted(key(1, 'O').key_id, t0() + Duration::seconds(4)),
        "signatures made before revocation"
    );
}

#[test]
fn the_active_key_needs_a_successor() {
    AggregateTest::<Operator>::new(ctx())
        .given([operator_created()])
        .when(OperatorCommand::RevokeSigningKey {
            key_id: key(1, 'O').key_id,
            reason: "leaked".into(),
            successor: None,
        })
        .then_expect_error(&DomainError::ActiveKeyNeedsSuccessor);
    let state = AggregateTest::<Operator>::new(ctx())
        .given([operator_created()])
        .when(OperatorCommand::RevokeSigningKey {
            key_id: key(1, 'O').key_id,
            reason: "leaked".into(),
            successor: Some(key(2, 'O')),
        })
        .then_expect_events(vec![
            rotated_to_2(),
            OperatorEvent::SigningKeyRevoked {
                operator_id: OP,
                key_id: key(1, 'O').key_id,
                reason: "leaked".into(),
                revoked_at: t0(),
            },
        ]);
    assert_eq!(state.active_key_id, Some(key(2, 'O').key_id));
}

#[test]
fn a_successor_only_comes_with_the_active_key() {
    AggregateTest::<Operator>::new(ctx())
        .given([operator_created(), rotated_to_2()])
        .when(OperatorCommand::RevokeSigningKey {
            key_id: key(1, 'O').key_id,
            reason: "x".into(),
            successor: Some(key(3, 'O')),
        })
        .then_expect_error(&DomainError::UnexpectedSuccessor);
}

#[test]
fn a_revoked_key_is_never_active_again() {
    let revoked = OperatorEvent::SigningKeyRevoked {
        operator_id: OP,
        key_id: key(1, 'O').key_id,
        reason: "leaked".into(),
        revoked_at: t0(),
    };
    let given = [operator_created(), rotated_to_2(), revoked];
    AggregateTest::<Operator>::new(ctx())
        .given(given.clone())
        .when(OperatorCommand::RotateSigningKey {
            new_key: key(1, 'O'),
        })
        .then_expect_error(&DomainError::KeyRevoked(key(1, 'O').key_id));
    AggregateTest::<Operator>::new(ctx())
        .given(given.clone())
        .when(OperatorCommand::RevokeSigningKey {
            key_id: key(2, 'O').key_id,
            reason: "again".into(),
            successor: Some(key(1, 'O')),
        })
        .then_expect_error(&DomainError::KeyRevoked(key(1, 'O').key_id));
    AggregateTest::<Operator>::new(ctx())
        .given(given)
        .when(OperatorCommand::RevokeSigningKey {
            key_id: key(1, 'O').key_id,
            reason: "again".into(),
            successor: None,
        })
        .then_expect_error(&DomainError::KeyRevoked(key(1, 'O').key_id));
    AggregateTest::<Operator>::new(ctx())
        .given([operator_created()])
        .when(OperatorCommand::RevokeSigningKey {
            key_id: key(9, 'O').key_id,
            reason: "x".into(),
            successor: None,
        })
        .then_expect_error(&DomainError::KeyNotFound(key(9, 'O').key_id));
}

#[test]
fn set_system_account_once() {
    let account_id = AccountId::from_uuid(Uuid::from_u128(0x5));
    let state = AggregateTest::<Operator>::new(ctx())
        .given([operator_created()])
        .when(OperatorCommand::SetSystemAccount { account_id })
        .then_expect_events(vec![OperatorEvent::SystemAccountSet {
            operator_id: OP,
            account_id,
        }]);
    assert_eq!(state.system_account_id, Some(account_id));
    AggregateTest::<Operator>::new(ctx())
        .given([
            operator_created(),
            OperatorEvent::SystemAccountSet {
                operator_id: OP,
                account_id,
            },
        ])
        .when(OperatorCommand::SetSystemAccount { account_id })
        .then_expect_events(vec![]);
}

// ----- account ------------------------------------------------------------

fn acct() -> AccountId {
    AccountId::from(tenant())
}

fn claims(max_users: Option<u32>) -> AccountClaims {
    AccountClaims {
        public_key: Some(PublicKey::ed25519("A".repeat(56))),
        limits: AccountLimits {
            max_users,
            ..AccountLimits::default()
        },
        ..AccountClaims::default()
    }
}

fn account_created(max_users: Option<u32>) -> AccountEvent {
    AccountEvent::AccountCreated {
        account_id: acct(),
        name: "Acme".into(),
        operator_id: OP,
        jwt_claims: claims(max_users),
        created_at: t0(),
    }
}

fn user_added(n: u128, name: &str) -> AccountEvent {
    AccountEvent::UserAdded {
        account_id: acct(),
        user_id: UserId::from_uuid(Uuid::from_u128(n)),
        username: name.into(),
        added_at: t0(),
    }
}

#[test]
fn create_account() {
    let state = AggregateTest::<Account>::new(ctx())
        .when(AccountCommand::CreateAccount {
            account_id: acct(),
            name: "Acme".into(),
            operator_id: OP,
            claims: claims(Some(2)),
        })
        .then_expect_events(vec![account_created(Some(2))]);
    assert_eq!(state.status, AccountStatus::Active);
    assert_eq!(state.limits.max_users, Some(2));
    assert!(state.check_active(t0()).is_ok());
}

#[test]
fn create_account_refusals() {
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None)])
        .when(AccountCommand::CreateAccount {
            account_id: acct(),
            name: "Acme".into(),
            operator_id: OP,
            claims: claims(None),
        })
        .then_expect_error(&DomainError::AlreadyExists { kind: "account" });
    let past = AccountClaims {
        expires_at: Some(t0()),
        ..claims(None)
    };
    AggregateTest::<Account>::new(ctx())
        .when(AccountCommand::CreateAccount {
            account_id: acct(),
            name: "Acme".into(),
            operator_id: OP,
            claims: past,
        })
        .then_expect_error(&DomainError::Invalid {
            field: "expires_at",
            reason: "must be in the future",
        });
    AggregateTest::<Account>::new(ctx())
        .when(AccountCommand::SuspendAccount { reason: "x".into() })
        .then_expect_error(&DomainError::NotFound { kind: "account" });
}

#[test]
fn update_account_limits() {
    let new_limits = AccountLimits {
        max_users: Some(10),
        max_payload_size: Some(1024),
        ..AccountLimits::default()
    };
    let state = AggregateTest::<Account>::new(ctx())
        .given([account_created(Some(2))])
        .when(AccountCommand::UpdateAccountLimits {
            new_limits: new_limits.clone(),
        })
        .then_expect_events(vec![AccountEvent::AccountLimitsUpdated {
            account_id: acct(),
            old_limits: claims(Some(2)).limits,
            new_limits: new_limits.clone(),
        }]);
    assert_eq!(state.limits, new_limits);
    AggregateTest::<Account>::new(ctx())
        .given([account_created(Some(2))])
        .when(AccountCommand::UpdateAccountLimits {
            new_limits: claims(Some(2)).limits,
        })
        .then_expect_events(vec![]);
}

fn suspended() -> AccountEvent {
    AccountEvent::AccountSuspended {
        account_id: acct(),
        reason: "unpaid".into(),
        suspended_at: t0(),
    }
}

#[test]
fn suspend_and_reactivate_account() {
    let state = AggregateTest::<Account>::new(ctx())
        .given([account_created(None)])
        .when(AccountCommand::SuspendAccount {
            reason: "unpaid".into(),
        })
        .then_expect_events(vec![suspended()]);
    assert_eq!(state.check_active(t0()), Err(DomainError::AccountSuspended));
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), suspended()])
        .when(AccountCommand::SuspendAccount {
            reason: "again".into(),
        })
        .then_expect_error(&DomainError::AccountSuspended);
    let state = AggregateTest::<Account>::new(ctx_at(60))
        .given([account_created(None), suspended()])
        .when(AccountCommand::ReactivateAccount)
        .then_expect_events(vec![AccountEvent::AccountReactivated {
            account_id: acct(),
            reactivated_at: t0() + Duration::seconds(60),
        }]);
    assert!(state.check_active(t0()).is_ok());
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None)])
        .when(AccountCommand::ReactivateAccount)
        .then_expect_error(&DomainError::AccountNotSuspended);
}

#[test]
fn expired_accounts() {
    let expired = AccountEvent::AccountExpired {
        account_id: acct(),
        expired_at: t0(),
    };
    let state = AggregateTest::<Account>::new(ctx())
        .given([account_created(None)])
        .when(AccountCommand::ExpireAccount)
        .then_expect_events(vec![expired.clone()]);
    assert_eq!(state.check_active(t0()), Err(DomainError::AccountExpired));
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), expired.clone()])
        .when(AccountCommand::ReactivateAccount)
        .then_expect_error(&DomainError::AccountExpired);
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), expired.clone()])
        .when(AccountCommand::SuspendAccount { reason: "x".into() })
        .then_expect_error(&DomainError::AccountExpired);
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), expired])
        .when(AccountCommand::ExpireAccount)
        .then_expect_events(vec![]);
    // An account past its expires_at is expired even without the event.
    let dated = AccountEvent::AccountCreated {
        account_id: acct(),
        name: "Acme".into(),
        operator_id: OP,
        jwt_claims: AccountClaims {
            expires_at: Some(t0() + Duration::days(1)),
            ..claims(None)
        },
        created_at: t0(),
    };
    AggregateTest::<Account>::new(ctx_at(86_400))
        .given([dated])
        .when(AccountCommand::AddUser {
            user_id: UserId::from_uuid(Uuid::from_u128(1)),
            username: "late".into(),
        })
        .then_expect_error(&DomainError::AccountExpired);
}

#[test]
fn add_users_until_max_users() {
    let state = AggregateTest::<Account>::new(ctx())
        .given([account_created(Some(2)), user_added(1, "alice")])
        .when(AccountCommand::AddUser {
            user_id: UserId::from_uuid(Uuid::from_u128(2)),
            username: "bob".into(),
        })
        .then_expect_events(vec![user_added(2, "bob")]);
    assert_eq!(state.user_count(), 2);
    assert_eq!(
        state.user_by_name("BOB"),
        Some(UserId::from_uuid(Uuid::from_u128(2)))
    );
    AggregateTest::<Account>::new(ctx())
        .given([
            account_created(Some(2)),
            user_added(1, "alice"),
            user_added(2, "bob"),
        ])
        .when(AccountCommand::AddUser {
            user_id: UserId::from_uuid(Uuid::from_u128(3)),
            username: "carol".into(),
        })
        .then_expect_error(&DomainError::MaxUsersReached { limit: 2 });
}

#[test]
fn no_user_joins_a_suspended_account_or_takes_a_taken_name() {
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), suspended()])
        .when(AccountCommand::AddUser {
            user_id: UserId::from_uuid(Uuid::from_u128(1)),
            username: "alice".into(),
        })
        .then_expect_error(&DomainError::AccountSuspended);
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), user_added(1, "alice")])
        .when(AccountCommand::AddUser {
            user_id: UserId::from_uuid(Uuid::from_u128(2)),
            username: "ALICE".into(),
        })
        .then_expect_error(&DomainError::UsernameTaken);
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), user_added(1, "alice")])
        .when(AccountCommand::AddUser {
            user_id: UserId::from_uuid(Uuid::from_u128(1)),
            username: "other".into(),
        })
        .then_expect_error(&DomainError::AlreadyExists { kind: "user" });
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None)])
        .when(AccountCommand::AddUser {
            user_id: UserId::from_uuid(Uuid::from_u128(1)),
            username: "a\u{7}".into(),
        })
        .then_expect_error(&DomainError::Invalid {
            field: "username",
            reason: "must not hold control characters",
        });
}

#[test]
fn a_look_alike_of_a_taken_username_is_taken_or_refused() {
    // Each of these created a second user who looks like "alice" or
    // "straße": now the roster sees the same name, or the name is refused
    // with the rule it breaks.
    let taken = |existing: &str, candidate: &str| {
        AggregateTest::<Account>::new(ctx())
            .given([account_created(None), user_added(1, existing)])
            .when(AccountCommand::AddUser {
                user_id: UserId::from_uuid(Uuid::from_u128(2)),
                username: candidate.into(),
            })
            .then_expect_error(&DomainError::UsernameTaken);
    };
    taken("alice", "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}"); // fullwidth
    taken("coco", "\u{441}\u{43e}\u{441}\u{43e}"); // all Cyrillic: one script, same skeleton
    taken("stra\u{df}e", "STRASSE");
    taken("STRASSE", "stra\u{df}e");
    taken("jos\u{e9}", "jose\u{301}"); // NFD against NFC
    taken("jose\u{301}", "JOS\u{c9}");
    let refused = |candidate: &str, reason: &'static str| {
        AggregateTest::<Account>::new(ctx())
            .given([account_created(None), user_added(1, "alice")])
            .when(AccountCommand::AddUser {
                user_id: UserId::from_uuid(Uuid::from_u128(2)),
                username: candidate.into(),
            })
            .then_expect_error(&DomainError::Invalid {
                field: "username",
                reason,
            });
    };
    refused("alice\u{200b}", "must not hold invisible characters");
    refused("al\u{200d}ice", "must not hold invisible characters");
    refused(
        "\u{202e}ecila",
        "must not hold bidirectional control characters",
    );
    refused(
        "al\u{2066}ice",
        "must not hold bidirectional control characters",
    );
    refused(
        "\u{430}lice", // Cyrillic a among Latin letters
        "must not mix scripts or use characters not recommended in identifiers",
    );
}

#[test]
fn default_permissions_and_signing_keys() {
    let permissions = Permissions {
        subscribe: SubjectPermissions::from_patterns(["_INBOX.>"], Vec::<String>::new()).unwrap(),
        ..Permissions::default()
    };
    let state = AggregateTest::<Account>::new(ctx())
        .given([account_created(None)])
        .when(AccountCommand::UpdateDefaultPermissions {
            permissions: permissions.clone(),
        })
        .then_expect_events(vec![AccountEvent::DefaultPermissionsUpdated {
            account_id: acct(),
            old_permissions: Permissions::default(),
            new_permissions: permissions.clone(),
            updated_at: Some(t0()),
        }]);
    assert_eq!(state.default_permissions, permissions);
    assert_eq!(state.defaults_narrowed_at, None, "a widening");
    let narrowed = AggregateTest::<Account>::new(ctx_at(60))
        .given([
            account_created(None),
            AccountEvent::DefaultPermissionsUpdated {
                account_id: acct(),
                old_permissions: Permissions::default(),
                new_permissions: permissions.clone(),
                updated_at: Some(t0()),
            },
        ])
        .when(AccountCommand::UpdateDefaultPermissions {
            permissions: Permissions::default(),
        })
        .then_expect_events(vec![AccountEvent::DefaultPermissionsUpdated {
            account_id: acct(),
            old_permissions: permissions.clone(),
            new_permissions: Permissions::default(),
            updated_at: Some(t0() + Duration::seconds(60)),
        }]);
    assert_eq!(
        narrowed.defaults_narrowed_at,
        Some(t0() + Duration::seconds(60))
    );

    let k = key(7, 'A');
    let scope = UserScope {
        role: "reader".into(),
        ..UserScope::default()
    };
    let added = AccountEvent::AccountSigningKeyAdded {
        account_id: acct(),
        key_id: k.key_id,
        public_key: k.public_key.clone(),
        scope: Some(scope.clone()),
        added_at: t0(),
    };
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None)])
        .when(AccountCommand::AddSigningKey {
            key_id: k.key_id,
            public_key: k.public_key.clone(),
            scope: Some(scope),
        })
        .then_expect_events(vec![added.clone()]);
    let revoked = AccountEvent::AccountSigningKeyRevoked {
        account_id: acct(),
        key_id: k.key_id,
        revoked_at: t0(),
    };
    let state = AggregateTest::<Account>::new(ctx())
        .given([account_created(None), added.clone()])
        .when(AccountCommand::RevokeSigningKey { key_id: k.key_id })
        .then_expect_events(vec![revoked.clone()]);
    assert!(state.signing_keys[0].revoked_at.is_some());
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), added.clone(), revoked.clone()])
        .when(AccountCommand::AddSigningKey {
            key_id: k.key_id,
            public_key: k.public_key.clone(),
            scope: None,
        })
        .then_expect_error(&DomainError::KeyRevoked(k.key_id));
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), added.clone()])
        .when(AccountCommand::AddSigningKey {
            key_id: k.key_id,
            public_key: k.public_key.clone(),
            scope: None,
        })
        .then_expect_error(&DomainError::DuplicateKey(k.key_id));
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None), added, revoked])
        .when(AccountCommand::RevokeSigningKey { key_id: k.key_id })
        .then_expect_error(&DomainError::KeyRevoked(k.key_id));
    AggregateTest::<Account>::new(ctx())
        .given([account_created(None)])
        .when(AccountCommand::RevokeSigningKey { key_id: k.key_id })
        .then_expect_error(&DomainError::KeyNotFound(k.key_id));
}

// ----- policy ---------------------------------------------------------------

const POLICY: PolicyId = PolicyId::from_uuid(Uuid::from_u128(0x70));

fn perms(allow: &str) -> Permissions {
    Permissions {
        publish: SubjectPermissions::from_patterns([allow], ["orders.delete"]).unwrap(),
        subscribe: SubjectPermissions::from_patterns([allow], Vec::<String>::new()).unwrap(),
        allow_responses: Some(ResponsePermission::default()),
    }
}

fn policy_created() -> PolicyEvent {
    PolicyEvent::PolicyCreated {
        policy_id: POLICY,
        name: "orders".into(),
        description: "order service".into(),
        permissions: perms("orders.>"),
        limits: ResourceLimits::default(),
        created_at: t0(),
    }
}

#[test]
fn create_policy() {
    let state = AggregateTest::<Policy>::new(ctx())
        .when(PolicyCommand::CreatePolicy {
            policy_id: POLICY,
            name: "orders".into(),
            description: "order service".into(),
            permissions: perms("orders.>"),
            limits: ResourceLimits::default(),
        })
        .then_expect_events(vec![policy_created()]);
    assert_eq!(state.version, 1);
    assert!(state.is_in_force(t0()));
    AggregateTest::<Policy>::new(ctx())
        .given([policy_created()])
        .when(PolicyCommand::CreatePolicy {
            policy_id: POLICY,
            name: "orders".into(),
            description: String::new(),
            permissions: Permissions::default(),
            limits: ResourceLimits::default(),
        })
        .then_expect_error(&DomainError::AlreadyExists { kind: "policy" });
}

#[test]
fn patterns_are_validated_on_the_way_in() {
    // An invalid pattern cannot even be built, nor deserialized into a command.
    assert_eq!(
        SubjectPattern::new("orders.>.x"),
        Err(SubjectError::FullWildcardNotLast)
    );
    assert!(SubjectPermissions::from_patterns(["orders..x"], Vec::<String>::new()).is_err());
    let raw = serde_json::json!({"publish": {"allow": [{"pattern": "a b"}]}});
    assert!(serde_json::from_value::<Permissions>(raw).is_err());
}

#[test]
fn every_policy_update_increments_the_version() {
    let state = AggregateTest::<Policy>::new(ctx_at(1))
        .given([policy_created()])
        .when(PolicyCommand::UpdatePermissions {
            new_permissions: perms("billing.>"),
        })
        .then_expect_events(vec![PolicyEvent::PermissionsUpdated {
            policy_id: POLICY,
            old_permissions: perms("orders.>"),
            new_permissions: perms("billing.>"),
            version: 2,
            updated_at: t0() + Duration::seconds(1),
        }]);
    assert_eq!(state.version, 2);
    let limits = ResourceLimits {
        max_payload_size: Some(4096),
        max_subscriptions: Some(10),
        ..ResourceLimits::default()
    };
    let permissions_updated = PolicyEvent::PermissionsUpdated {
        policy_id: POLICY,
        old_permissions: perms("orders.>"),
        new_permissions: perms("billing.>"),
        version: 2,
        updated_at: t0(),
    };
    let state = AggregateTest::<Policy>::new(ctx())
        .given([policy_created(), permissions_updated])
        .when(PolicyCommand::UpdateLimits {
            new_limits: limits.clone(),
        })
        .then_expect_events(vec![PolicyEvent::LimitsUpdated {
            policy_id: POLICY,
            old_limits: ResourceLimits::default(),
            new_limits: limits,
            version: 3,
            updated_at: t0(),
        }]);
    assert_eq!(state.version, 3);
    AggregateTest::<Policy>::new(ctx())
        .given([policy_created()])
        .when(PolicyCommand::UpdatePermissions {
            new_permissions: perms("orders.>"),
        })
        .then_expect_events(vec![]);
    AggregateTest::<Policy>::new(ctx())
        .when(PolicyCommand::UpdateLimits {
            new_limits: ResourceLimits::default(),
        })
        .then_expect_error(&DomainError::NotFound { kind: "policy" });
}

#[test]
fn an_expired_policy_grants_nothing() {
    let limits = ResourceLimits {
        expires_at: Some(t0() + Duration::hours(1)),
        ..ResourceLimits::default()
    };
    let state = AggregateTest::<Policy>::new(ctx())
        .given([policy_created()])
        .when(PolicyCommand::UpdateLimits { new_limits: limits })
        .then_expect_events(vec![PolicyEvent::LimitsUpdated {
            policy_id: POLICY,
            old_limits: ResourceLimits::default(),
            new_limits: ResourceLimits {
                expires_at: Some(t0() + Duration::hours(1)),
                ..ResourceLimits::default()
            },
            version: 2,
            updated_at: t0(),
        }]);
    assert!(state.is_in_force(t0()));
    assert!(!state.is_in_force(t0() + Duration::hours(1)));
}

// ----- role -----------------------------------------------------------------

fn role_name() -> RoleName {
    RoleName::new("teller").unwrap()
}

fn grants(list: &[&str]) -> BTreeSet<Permission> {
    list.iter().map(|p| Permission::parse(p).unwrap()).collect()
}

fn role_defined() -> RoleEvent {
    RoleEvent::RoleDefined {
        role_id: RoleId::for_name(tenant(), &role_name()),
        name: role_name(),
        description: "front desk".into(),
        permissions: grants(&["transaction:create", "transaction:read"]),
        defined_at: t0(),
    }
}

#[test]
fn define_update_and_retire_a_role() {
    let define = RoleCommand::DefineRole {
        name: role_name(),
        description: "front desk".into(),
        permissions: grants(&["transaction:create", "transaction:read"]),
    };
    let state = AggregateTest::<Role>::new(ctx())
        .when(define.clone())
        .then_expect_events(vec![role_defined()]);
    assert!(state.is_defined());
    AggregateTest::<Role>::new(ctx())
        .given([role_defined()])
        .when(define.clone())
        .then_expect_error(&DomainError::AlreadyExists { kind: "role" });
    let id = RoleId::for_name(tenant(), &role_name());
    let state = AggregateTest::<Role>::new(ctx())
        .given([role_defined()])
        .when(RoleCommand::UpdateRolePermissions {
            permissions: grants(&["transaction:read"]),
        })
        .then_expect_events(vec![RoleEvent::RolePermissionsUpdated {
            role_id: id,
            old_permissions: grants(&["transaction:create", "transaction:read"]),
            new_permissions: grants(&["transaction:read"]),
            version: 2,
            updated_at: t0(),
        }]);
    assert_eq!(state.version, 2);
    let retired = RoleEvent::RoleRetired {
        role_id: id,
        retired_at: t0(),
    };
    let state = AggregateTest::<Role>::new(ctx())
        .given([role_defined()])
        .when(RoleCommand::RetireRole)
        .then_expect_events(vec![retired.clone()]);
    assert!(!state.is_defined());
    AggregateTest::<Role>::new(ctx())
        .given([role_defined(), retired.clone()])
        .when(RoleCommand::RetireRole)
        .then_expect_error(&DomainError::NotFound { kind: "role" });
    AggregateTest::<Role>::new(ctx())
        .given([role_defined(), retired.clone()])
        .when(RoleCommand::UpdateRolePermissions {
            permissions: BTreeSet::new(),
        })
        .then_expect_error(&DomainError::NotFound { kind: "role" });
    // A retired name can be defined again.
    let state = AggregateTest::<Role>::new(ctx())
        .given([role_defined(), retired])
        .when(define)
        .then_expect_events(vec![role_defined()]);
    assert!(state.is_defined());
}

#[test]
fn built_in_role_names_are_reserved() {
    AggregateTest::<Role>::new(ctx())
        .when(RoleCommand::DefineRole {
            name: RoleName::new("admin").unwrap(),
            description: String::new(),
            permissions: BTreeSet::new(),
        })
        .then_expect_error(&DomainError::RoleNameReserved("admin".into()));
}

// ----- user -----------------------------------------------------------------

const USER: UserId = UserId::from_uuid(Uuid::from_u128(0x33));

fn password(n: u128) -> Credential {
    Credential::Password { hash: sealed(n) }
}

fn user_created() -> UserEvent {
    UserEvent::UserCreated {
        user_id: USER,
        account_id: acct(),
        username: "alice".into(),
        credential_type: CredentialType::Password,
        credential: password(1),
        metadata: BTreeMap::new(),
        must_change_password: false,
        created_at: t0(),
    }
}

fn revoked(reason: &str, secs: i64) -> UserEvent {
    UserEvent::SessionsRevoked {
        user_id: USER,
        reason: reason.into(),
        revoked_at: t0() + Duration::seconds(secs),
        credential: None,
        passkey: None,
    }
}

#[test]
fn create_user() {
    let state = AggregateTest::<User>::new(ctx())
        .when(UserCommand::CreateUser {
            user_id: USER,
            account_id: acct(),
            username: "alice".into(),
            credentials: password(1),
            metadata: BTreeMap::new(),
            must_change_password: false,
        })
        .then_expect_events(vec![user_created()]);
    assert_eq!(state.password_hash(), Some(&sealed(1)));
    assert!(state.check_can_authenticate(t0()).is_ok());
}

#[test]
fn create_user_refusals() {
    let create = |username: &str, account_id| UserCommand::CreateUser {
        user_id: USER,
        account_id,
        username: username.into(),
        credentials: password(1),
        metadata: BTreeMap::new(),
        must_change_password: false,
    };
    AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(create("alice", acct()))
        .then_expect_error(&DomainError::AlreadyExists { kind: "user" });
    AggregateTest::<User>::new(ctx())
        .when(create("", acct()))
        .then_expect_error(&DomainError::Invalid {
            field: "username",
            reason: "must not be empty",
        });
    let other = AccountId::from_uuid(Uuid::from_u128(0xB));
    AggregateTest::<User>::new(ctx())
        .when(create("alice", other))
        .then_expect_error(&DomainError::WrongAccount);
    AggregateTest::<User>::new(ctx())
        .when(UserCommand::UnlockUser)
        .then_expect_error(&DomainError::NotFound { kind: "user" });
}

#[test]
fn assign_and_remove_policies_without_duplicates() {
    let assigned = UserEvent::PolicyAssigned {
        user_id: USER,
        policy_id: POLICY,
        assigned_at: t0(),
    };
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::AssignPolicy { policy_id: POLICY })
        .then_expect_events(vec![assigned.clone()]);
    assert_eq!(state.policies, vec![POLICY]);
    AggregateTest::<User>::new(ctx())
        .given([user_created(), assigned.clone()])
        .when(UserCommand::AssignPolicy { policy_id: POLICY })
        .then_expect_error(&DomainError::PolicyAlreadyAssigned(POLICY));
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created(), assigned])
        .when(UserCommand::RemovePolicy { policy_id: POLICY })
        .then_expect_events(vec![UserEvent::PolicyRemoved {
            user_id: USER,
            policy_id: POLICY,
            removed_at: t0(),
        }]);
    assert!(state.policies.is_empty());
    AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::RemovePolicy { policy_id: POLICY })
        .then_expect_error(&DomainError::PolicyNotAssigned(POLICY));
}

#[test]
fn update_credentials_keeps_history_and_revokes_sessions() {
    let state = AggregateTest::<User>::new(ctx_at(9))
        .given([user_created()])
        .when(UserCommand::UpdateCredentials {
            new_credentials: password(2),
            must_change: true,
        })
        .then_expect_events(vec![
            UserEvent::CredentialsUpdated {
                user_id: USER,
                credential_type: CredentialType::Password,
                credential: password(2),
                must_change: true,
                updated_at: t0() + Duration::seconds(9),
            },
            revoked("password changed", 9),
        ]);
    assert_eq!(state.password_hash(), Some(&sealed(2)));
    assert_eq!(state.password_history, vec![sealed(1)]);
    assert!(state.password_must_change);
    assert!(state.is_session_revoked(t0()));
    // A token credential sits beside the password and revokes nothing.
    let token = Credential::Token {
        token_hash: "abc".into(),
        expires_at: Some(t0() + Duration::days(30)),
    };
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::UpdateCredentials {
            new_credentials: token.clone(),
            must_change: false,
        })
        .then_expect_events(vec![UserEvent::CredentialsUpdated {
            user_id: USER,
            credential_type: CredentialType::Token,
            credential: token,
            must_change: false,
            updated_at: t0(),
        }]);
    assert_eq!(state.credentials.len(), 2);
    assert!(state.password_history.is_empty());
}

#[test]
fn replacing_an_api_key_or_login_key_revokes_the_sessions_it_opened() {
    // A first API key or login key revokes nothing; replacing (or
    // revoking) one revokes the sessions opened with that kind of
    // credential before then, and no other session.
    for (first, second) in [
        (
            Credential::Token {
                token_hash: "k1".into(),
                expires_at: None,
            },
            Credential::Token {
                token_hash: "revoked".into(),
                expires_at: Some(t0()),
            },
        ),
        (
            Credential::PublicKey {
                key: PublicKey::ed25519("key-one"),
            },
            Credential::PublicKey {
                key: PublicKey::ed25519("key-two"),
            },
        ),
    ] {
        let kind = first.credential_type();
        let with_first = UserEvent::CredentialsUpdated {
            user_id: USER,
            credential_type: kind,
            credential: first,
            must_change: false,
            updated_at: t0(),
        };
        let state = AggregateTest::<User>::new(ctx_at(60))
            .given([user_created(), with_first])
            .when(UserCommand::UpdateCredentials {
                new_credentials: second.clone(),
                must_change: false,
            })
            .then_expect_events(vec![
                UserEvent::CredentialsUpdated {
                    user_id: USER,
                    credential_type: kind,
                    credential: second,
                    must_change: false,
                    updated_at: t0() + Duration::seconds(60),
                },
                UserEvent::SessionsRevoked {
                    user_id: USER,
                    reason: "credential replaced".into(),
                    revoked_at: t0() + Duration::seconds(60),
                    credential: Some(kind),
                    passkey: None,
                },
            ]);
        let opened = t0() + Duration::seconds(30);
        assert!(state.is_session_revoked_for(opened, Some(kind)), "{kind:?}");
        assert!(!state.is_session_revoked_for(opened, Some(CredentialType::Password)));
        assert!(!state.is_session_revoked(opened), "not every session");
        let later = t0() + Duration::seconds(61);
        assert!(!state.is_session_revoked_for(later, Some(kind)));
        assert_eq!(
            state.last_session_revocation(),
            Some(t0() + Duration::seconds(60))
        );
    }
}

fn locked(until: Option<i64>) -> UserEvent {
    UserEvent::UserLocked {
        user_id: USER,
        reason: "fraud review".into(),
        locked_at: t0(),
        until: until.map(|s| t0() + Duration::seconds(s)),
        escalation: None,
    }
}

#[test]
fn lock_and_unlock_user() {
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::LockUser {
            reason: "fraud review".into(),
            until: None,
        })
        .then_expect_events(vec![locked(None), revoked("user locked", 0)]);
    assert_eq!(
        state.check_can_authenticate(t0() + Duration::days(365)),
        Err(DomainError::UserLocked)
    );
    AggregateTest::<User>::new(ctx())
        .given([user_created(), locked(None)])
        .when(UserCommand::LockUser {
            reason: "again".into(),
            until: None,
        })
        .then_expect_error(&DomainError::UserLocked);
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created(), locked(None)])
        .when(UserCommand::UnlockUser)
        .then_expect_events(vec![UserEvent::UserUnlocked {
            user_id: USER,
            unlocked_at: t0(),
        }]);
    assert!(state.check_can_authenticate(t0()).is_ok());
    AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::UnlockUser)
        .then_expect_error(&DomainError::UserNotLocked);
    AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::LockUser {
            reason: "x".into(),
            until: Some(t0()),
        })
        .then_expect_error(&DomainError::Invalid {
            field: "until",
            reason: "must be in the future",
        });
}

#[test]
fn a_timed_lock_lifts_by_itself() {
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::LockUser {
            reason: "fraud review".into(),
            until: Some(t0() + Duration::seconds(60)),
        })
        .then_expect_events(vec![locked(Some(60)), revoked("user locked", 0)]);
    assert_eq!(
        state.check_can_authenticate(t0() + Duration::seconds(59)),
        Err(DomainError::UserLocked)
    );
    assert!(
        state
            .check_can_authenticate(t0() + Duration::seconds(60))
            .is_ok()
    );
}

#[test]
fn expire_user() {
    let expired = UserEvent::UserExpired {
        user_id: USER,
        expired_at: t0(),
    };
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::ExpireUser)
        .then_expect_events(vec![expired.clone(), revoked("user expired", 0)]);
    assert_eq!(
        state.check_can_authenticate(t0()),
        Err(DomainError::UserExpired)
    );
    AggregateTest::<User>::new(ctx())
        .given([user_created(), expired.clone()])
        .when(UserCommand::ExpireUser)
        .then_expect_events(vec![]);
    AggregateTest::<User>::new(ctx())
        .given([user_created(), expired.clone()])
        .when(UserCommand::UpdateCredentials {
            new_credentials: password(2),
            must_change: false,
        })
        .then_expect_error(&DomainError::UserExpired);
    AggregateTest::<User>::new(ctx())
        .given([user_created(), expired])
        .when(UserCommand::LockUser {
            reason: "x".into(),
            until: None,
        })
        .then_expect_error(&DomainError::UserExpired);
}

#[test]
fn roles_are_assigned_once_and_changes_revoke_sessions() {
    let admin = RoleName::new("admin").unwrap();
    let assigned = UserEvent::RoleAssigned {
        user_id: USER,
        role: admin.clone(),
        assigned_at: t0(),
    };
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::AssignRole {
            role: admin.clone(),
        })
        .then_expect_events(vec![assigned.clone(), revoked("roles changed", 0)]);
    assert!(state.roles.contains(&admin));
    AggregateTest::<User>::new(ctx())
        .given([user_created(), assigned.clone()])
        .when(UserCommand::AssignRole {
            role: admin.clone(),
        })
        .then_expect_error(&DomainError::RoleAlreadyAssigned("admin".into()));
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created(), assigned])
        .when(UserCommand::RemoveRole {
            role: admin.clone(),
        })
        .then_expect_events(vec![
            UserEvent::RoleRemoved {
                user_id: USER,
                role: admin.clone(),
                removed_at: t0(),
            },
            revoked("roles changed", 0),
        ]);
    assert!(state.roles.is_empty());
    AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::RemoveRole { role: admin })
        .then_expect_error(&DomainError::RoleNotAssigned("admin".into()));
}

fn mfa_on() -> Vec<UserEvent> {
    vec![
        user_created(),
        UserEvent::MfaEnrollmentStarted {
            user_id: USER,
            secret: sealed(50),
            started_at: t0(),
        },
        UserEvent::MfaEnrollmentConfirmed {
            user_id: USER,
            step: 100,
            confirmed_at: t0(),
        },
    ]
}

#[test]
fn mfa_enrolment_is_enabled_only_after_confirmation() {
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::StartMfaEnrollment { secret: sealed(50) })
        .then_expect_events(vec![UserEvent::MfaEnrollmentStarted {
            user_id: USER,
            secret: sealed(50),
            started_at: t0(),
        }]);
    assert!(!state.mfa.enabled);
    AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::ConfirmMfaEnrollment { step: 100 })
        .then_expect_error(&DomainError::InvalidState("no MFA enrolment was started"));
    let state = AggregateTest::<User>::new(ctx())
        .given(mfa_on()[..2].to_vec())
        .when(UserCommand::ConfirmMfaEnrollment { step: 100 })
        .then_expect_events(vec![UserEvent::MfaEnrollmentConfirmed {
            user_id: USER,
            step: 100,
            confirmed_at: t0(),
        }]);
    assert!(state.mfa.enabled);
    assert_eq!(state.mfa.secret, Some(sealed(50)));
    assert_eq!(
        state.mfa.last_step,
        Some(100),
        "the confirming code is used up"
    );
    AggregateTest::<User>::new(ctx())
        .given(mfa_on())
        .when(UserCommand::StartMfaEnrollment { secret: sealed(51) })
        .then_expect_error(&DomainError::InvalidState(
            "MFA is already enabled; disable it to enrol again",
        ));
    AggregateTest::<User>::new(ctx())
        .given(mfa_on())
        .when(UserCommand::ConfirmMfaEnrollment { step: 101 })
        .then_expect_error(&DomainError::InvalidState("MFA is already enabled"));
}

#[test]
fn disable_and_re_enrol() {
    let mut given = mfa_on();
    let state = AggregateTest::<User>::new(ctx())
        .given(given.clone())
        .when(UserCommand::DisableMfa)
        .then_expect_events(vec![UserEvent::MfaDisabled {
            user_id: USER,
            disabled_at: t0(),
        }]);
    assert_eq!(state.mfa, MfaState::default());
    given.push(UserEvent::MfaDisabled {
        user_id: USER,
        disabled_at: t0(),
    });
    AggregateTest::<User>::new(ctx())
        .given(given.clone())
        .when(UserCommand::StartMfaEnrollment { secret: sealed(52) })
        .then_expect_events(vec![UserEvent::MfaEnrollmentStarted {
            user_id: USER,
            secret: sealed(52),
            started_at: t0(),
        }]);
    AggregateTest::<User>::new(ctx())
        .given(given)
        .when(UserCommand::DisableMfa)
        .then_expect_error(&DomainError::InvalidState("MFA is not enabled"));
}

#[test]
fn a_totp_step_is_accepted_once() {
    let client = ClientInfo::new(Some("10.0.0.1".parse().unwrap()), Some("test"));
    let state = AggregateTest::<User>::new(ctx())
        .given(mfa_on())
        .when(UserCommand::RecordMfaSuccess {
            proof: MfaProof::Totp { step: 101 },
            client: client.clone(),
        })
        .then_expect_events(vec![UserEvent::MfaVerified {
            user_id: USER,
            proof: MfaProof::Totp { step: 101 },
            client: client.clone(),
            verified_at: t0(),
        }]);
    assert_eq!(state.mfa.last_step, Some(101));
    for step in [100, 101, 99] {
        let mut given = mfa_on();
        given.push(UserEvent::MfaVerified {
            user_id: USER,
            proof: MfaProof::Totp { step: 101 },
            client: client.clone(),
            verified_at: t0(),
        });
        AggregateTest::<User>::new(ctx())
            .given(given)
            .when(UserCommand::RecordMfaSuccess {
                proof: MfaProof::Totp { step },
                client: client.clone(),
            })
            .then_expect_error(&DomainError::InvalidState(
                "this TOTP code was already used",
            ));
    }
    AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::RecordMfaSuccess {
            proof: MfaProof::Totp { step: 5 },
            client,
        })
        .then_expect_error(&DomainError::InvalidState("MFA is not enabled"));
}

#[test]
fn backup_codes_are_single_use_and_regenerated() {
    let client = ClientInfo::default();
    let mut given = mfa_on();
    let generated = UserEvent::BackupCodesGenerated {
        user_id: USER,
        codes: sealed(60),
        count: 10,
        generated_at: t0(),
    };
    let state = AggregateTest::<User>::new(ctx())
        .given(given.clone())
        .when(UserCommand::RegenerateBackupCodes {
            codes: sealed(60),
            count: 10,
        })
        .then_expect_events(vec![generated.clone()]);
    assert_eq!(state.mfa.backup_codes_remaining(), 10);
    given.push(generated.clone());
    let state = AggregateTest::<User>::new(ctx())
        .given(given.clone())
        .when(UserCommand::RecordMfaSuccess {
            proof: MfaProof::BackupCode { index: 3 },
            client: client.clone(),
        })
        .then_expect_events(vec![
            UserEvent::MfaVerified {
                user_id: USER,
                proof: MfaProof::BackupCode { index: 3 },
                client: client.clone(),
                verified_at: t0(),
            },
            UserEvent::BackupCodeUsed {
                user_id: USER,
                index: 3,
                remaining: 9,
                used_at: t0(),
            },
        ]);
    assert_eq!(state.mfa.backup_codes_remaining(), 9);
    given.push(UserEvent::BackupCodeUsed {
        user_id: USER,
        index: 3,
        remaining: 9,
        used_at: t0(),
    });
    AggregateTest::<User>::new(ctx())
        .given(given.clone())
        .when(UserCommand::RecordMfaSuccess {
            proof: MfaProof::BackupCode { index: 3 },
            client: client.clone(),
        })
        .then_expect_error(&DomainError::InvalidState(
            "this backup code was already used",
        ));
    AggregateTest::<User>::new(ctx())
        .given(given.clone())
        .when(UserCommand::RecordMfaSuccess {
            proof: MfaProof::BackupCode { index: 10 },
            client,
        })
        .then_expect_error(&DomainError::Invalid {
            field: "index",
            reason: "no such backup code",
        });
    // Regenerating resets the used set.
    let state = AggregateTest::<User>::new(ctx())
        .given(given)
        .when(UserCommand::RegenerateBackupCodes {
            codes: sealed(61),
            count: 10,
        })
        .then_expect_events(vec![UserEvent::BackupCodesGenerated {
            user_id: USER,
            codes: sealed(61),
            count: 10,
            generated_at: t0(),
        }]);
    assert_eq!(state.mfa.backup_codes_remaining(), 10);
    AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::RegenerateBackupCodes {
            codes: sealed(61),
            count: 0,
        })
        .then_expect_error(&DomainError::Invalid {
            field: "count",
            reason: "must be at least 1",
        });
}

const LOCKOUT: LockoutPolicy = LockoutPolicy {
    max_failures: 3,
    base_lock_secs: 60,
    max_lock_secs: 3600,
    escalation_reset_secs: 86_400,
};

fn failed(n: u32) -> UserEvent {
    UserEvent::AuthenticationFailed {
        user_id: USER,
        reason: FailureReason::BadPassword,
        client: ClientInfo::default(),
        consecutive_failures: n,
        failed_at: t0(),
    }
}

fn failure_lock(at: i64, secs: i64, level: u32) -> UserEvent {
    UserEvent::UserLocked {
        user_id: USER,
        reason: "too many failed attempts".into(),
        locked_at: t0() + Duration::seconds(at),
        until: Some(t0() + Duration::seconds(at + secs)),
        escalation: Some(level),
    }
}

fn failed_at(n: u32, at: i64) -> UserEvent {
    UserEvent::AuthenticationFailed {
        user_id: USER,
        reason: FailureReason::BadPassword,
        client: ClientInfo::default(),
        consecutive_failures: n,
        failed_at: t0() + Duration::seconds(at),
    }
}

#[test]
fn consecutive_failures_lock_for_a_growing_time() {
    let fail = UserCommand::RecordAuthenticationFailure {
        reason: FailureReason::BadPassword,
        client: ClientInfo::default(),
        lockout: Some(LOCKOUT),
    };
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created(), failed(1)])
        .when(fail.clone())
        .then_expect_events(vec![failed(2)]);
    assert_eq!(state.consecutive_failures, 2);
    // The lock caused by failures revokes no session: a stranger who types
    // wrong passwords cannot log the user out.
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created(), failed(1), failed(2)])
        .when(fail.clone())
        .then_expect_events(vec![failed(3), failure_lock(0, 60, 0)]);
    assert_eq!(state.lockouts, 1);
    assert_eq!(state.consecutive_failures, 0);
    assert_eq!(state.sessions_revoked_at, None);
    // After the first lock lifts, the second lockout lasts twice as long.
    AggregateTest::<User>::new(ctx_at(120))
        .given([
            user_created(),
            failed(1),
            failed(2),
            failed(3),
            failure_lock(0, 60, 0),
            failed(1),
            failed(2),
        ])
        .when(fail)
        .then_expect_events(vec![failed_at(3, 120), failure_lock(120, 120, 1)]);
    assert_eq!(LOCKOUT.lock_duration(10), Duration::seconds(3600), "capped");
}

#[test]
fn lock_escalation_decays_after_a_success_and_over_time() {
    let fail = UserCommand::RecordAuthenticationFailure {
        reason: FailureReason::BadPassword,
        client: ClientInfo::default(),
        lockout: Some(LOCKOUT),
    };
    let escalated = [
        user_created(),
        failure_lock(0, 60, 0),
        failure_lock(100, 120, 1),
        failure_lock(300, 240, 2),
    ];
    // Still escalating: the fourth lock is 8 times the first.
    let mut given = escalated.to_vec();
    given.extend([failed_at(1, 600), failed_at(2, 600)]);
    AggregateTest::<User>::new(ctx_at(600))
        .given(given)
        .when(fail.clone())
        .then_expect_events(vec![failed_at(3, 600), failure_lock(600, 480, 3)]);
    // A successful login in between starts again from the first length.
    let mut given = escalated.to_vec();
    given.push(UserEvent::UserAuthenticated {
        user_id: USER,
        method: AuthMethod::Password,
        client: ClientInfo::default(),
        authenticated_at: t0() + Duration::seconds(550),
    });
    given.extend([failed_at(1, 600), failed_at(2, 600)]);
    let state = AggregateTest::<User>::new(ctx_at(600))
        .given(given)
        .when(fail.clone())
        .then_expect_events(vec![failed_at(3, 600), failure_lock(600, 60, 0)]);
    assert_eq!(state.lockouts, 1);
    // So does a quiet day after the last lock ended.
    let quiet = 540 + 86_400;
    let mut given = escalated.to_vec();
    given.extend([failed_at(1, quiet), failed_at(2, quiet)]);
    AggregateTest::<User>::new(ctx_at(quiet))
        .given(given)
        .when(fail)
        .then_expect_events(vec![failed_at(3, quiet), failure_lock(quiet, 60, 0)]);
}

#[test]
fn mfa_failures_count_too_and_success_resets() {
    let client = ClientInfo::default();
    let mfa_failed = |n| UserEvent::MfaFailed {
        user_id: USER,
        client: ClientInfo::default(),
        consecutive_failures: n,
        failed_at: t0(),
    };
    let mut given = mfa_on();
    given.push(failed(1));
    let state = AggregateTest::<User>::new(ctx())
        .given(given.clone())
        .when(UserCommand::RecordMfaFailure {
            client: client.clone(),
            lockout: Some(LOCKOUT),
        })
        .then_expect_events(vec![mfa_failed(2)]);
    assert_eq!(state.consecutive_failures, 2);
    let state = AggregateTest::<User>::new(ctx())
        .given(given)
        .when(UserCommand::RecordAuthentication {
            method: AuthMethod::PasswordTotp,
            client: client.clone(),
        })
        .then_expect_events(vec![UserEvent::UserAuthenticated {
            user_id: USER,
            method: AuthMethod::PasswordTotp,
            client,
            authenticated_at: t0(),
        }]);
    assert_eq!(state.consecutive_failures, 0);
    assert_eq!(state.last_active, Some(t0()));
}

#[test]
fn a_locked_user_cannot_authenticate() {
    AggregateTest::<User>::new(ctx())
        .given([user_created(), locked(None)])
        .when(UserCommand::RecordAuthentication {
            method: AuthMethod::Password,
            client: ClientInfo::default(),
        })
        .then_expect_error(&DomainError::UserLocked);
}

#[test]
fn expire_password() {
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::ExpirePassword)
        .then_expect_events(vec![UserEvent::PasswordExpired {
            user_id: USER,
            expired_at: t0(),
        }]);
    assert!(state.password_must_change);
    AggregateTest::<User>::new(ctx())
        .given([
            user_created(),
            UserEvent::PasswordExpired {
                user_id: USER,
                expired_at: t0(),
            },
        ])
        .when(UserCommand::ExpirePassword)
        .then_expect_events(vec![]);
    let keyed = UserEvent::UserCreated {
        user_id: USER,
        account_id: acct(),
        username: "svc".into(),
        credential_type: CredentialType::PublicKey,
        credential: Credential::PublicKey {
            key: PublicKey::ed25519("U".repeat(56)),
        },
        metadata: BTreeMap::new(),
        must_change_password: false,
        created_at: t0(),
    };
    AggregateTest::<User>::new(ctx())
        .given([keyed])
        .when(UserCommand::ExpirePassword)
        .then_expect_error(&DomainError::InvalidState("user has no password"));
}

#[test]
fn revoke_sessions() {
    let state = AggregateTest::<User>::new(ctx_at(30))
        .given([user_created()])
        .when(UserCommand::RevokeSessions {
            reason: "logout everywhere".into(),
        })
        .then_expect_events(vec![revoked("logout everywhere", 30)]);
    assert!(state.is_session_revoked(t0() + Duration::seconds(30)));
    assert!(!state.is_session_revoked(t0() + Duration::seconds(31)));
}

#[test]
fn rehash_password_replaces_the_hash_only() {
    let state = AggregateTest::<User>::new(ctx_at(5))
        .given([user_created()])
        .when(UserCommand::RehashPassword {
            new_hash: sealed(9),
        })
        .then_expect_events(vec![UserEvent::PasswordRehashed {
            user_id: USER,
            hash: sealed(9),
            rehashed_at: t0() + Duration::seconds(5),
        }]);
    assert_eq!(state.password_hash(), Some(&sealed(9)));
    assert!(state.password_history.is_empty());
    assert_eq!(state.sessions_revoked_at, None);
    assert_eq!(state.password_changed_at, Some(t0()));
    let keyed = UserEvent::UserCreated {
        user_id: USER,
        account_id: acct(),
        username: "svc".into(),
        credential_type: CredentialType::PublicKey,
        credential: Credential::PublicKey {
            key: PublicKey::ed25519("U".repeat(56)),
        },
        metadata: BTreeMap::new(),
        must_change_password: false,
        created_at: t0(),
    };
    AggregateTest::<User>::new(ctx())
        .given([keyed])
        .when(UserCommand::RehashPassword {
            new_hash: sealed(9),
        })
        .then_expect_error(&DomainError::InvalidState("user has no password"));
}

#[test]
fn client_info_is_bounded() {
    let long = "x".repeat(5000) + "\n";
    let c = ClientInfo::new(None, Some(&long));
    assert_eq!(
        c.user_agent.as_deref().map(str::len),
        Some(MAX_USER_AGENT_LEN)
    );
    let c = ClientInfo::new(None, Some("a\nb"));
    assert_eq!(c.user_agent.as_deref(), Some("a\u{fffd}b"));
}

#[test]
fn published_user_events_carry_no_sealed_secret() {
    let payload = user_created().encode().unwrap();
    assert!(contains_sealed(&payload));
    let stripped = strip_sealed(&payload);
    assert!(!stripped.to_string().contains("ciphertext-1"));
    assert_eq!(stripped["username"], "alice");
}

#[test]
fn failures_never_lock_an_expired_user_back_into_a_lifting_lock() {
    let fail = UserCommand::RecordAuthenticationFailure {
        reason: FailureReason::UserExpired,
        client: ClientInfo::default(),
        lockout: Some(LOCKOUT),
    };
    let expired = UserEvent::UserExpired {
        user_id: USER,
        expired_at: t0(),
    };
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created(), expired, failed(1), failed(2)])
        .when(fail)
        .then_expect_events(vec![UserEvent::AuthenticationFailed {
            user_id: USER,
            reason: FailureReason::UserExpired,
            client: ClientInfo::default(),
            consecutive_failures: 3,
            failed_at: t0(),
        }]);
    assert_eq!(state.status, UserStatus::Expired);
    assert_eq!(
        state.check_can_authenticate(t0() + Duration::days(1)),
        Err(DomainError::UserExpired)
    );
}

// ----- passkeys -----------------------------------------------------------

fn passkey(n: u8, name: &str) -> RegisteredPasskey {
    RegisteredPasskey {
        id: PasskeyId::from_bytes(&[n; 16]).unwrap(),
        name: name.into(),
        credential: serde_json::json!({ "cred": { "cred_id": n } }),
        sign_count: 1,
        transports: vec!["internal".into()],
        backup_eligible: true,
        backup_state: true,
        resident: Some(true),
        registered_at: t0(),
        last_used_at: None,
    }
}

fn passkey_registered(n: u8) -> UserEvent {
    UserEvent::PasskeyRegistered {
        user_id: USER,
        passkey: passkey(n, "Laptop"),
    }
}

#[test]
fn register_rename_remove_passkeys() {
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::RegisterPasskey {
            passkey: passkey(1, "Laptop"),
        })
        .then_expect_events(vec![passkey_registered(1)]);
    assert!(state.needs_second_factor());
    AggregateTest::<User>::new(ctx())
        .given([user_created(), passkey_registered(1)])
        .when(UserCommand::RegisterPasskey {
            passkey: passkey(1, "Again"),
        })
        .then_expect_error(&DomainError::AlreadyExists { kind: "passkey" });
    let full: Vec<UserEvent> = std::iter::once(user_created())
        .chain((0..32).map(passkey_registered))
        .collect();
    assert!(matches!(
        AggregateTest::<User>::new(ctx())
            .given(full)
            .when(UserCommand::RegisterPasskey {
                passkey: passkey(200, "One more"),
            })
            .result(),
        Err(DomainError::LimitExceeded(_))
    ));
    let mut big = passkey(2, "Big");
    big.credential = serde_json::json!({ "x": "y".repeat(MAX_PASSKEY_CREDENTIAL_BYTES) });
    assert!(matches!(
        AggregateTest::<User>::new(ctx())
            .given([user_created()])
            .when(UserCommand::RegisterPasskey { passkey: big })
            .result(),
        Err(DomainError::LimitExceeded(_))
    ));
    let id = passkey(1, "").id;
    let state = AggregateTest::<User>::new(ctx_at(5))
        .given([user_created(), passkey_registered(1)])
        .when(UserCommand::RenamePasskey {
            id: id.clone(),
            name: "Phone".into(),
        })
        .then_expect_events(vec![UserEvent::PasskeyRenamed {
            user_id: USER,
            passkey_id: id.clone(),
            name: "Phone".into(),
            renamed_at: t0() + Duration::seconds(5),
        }]);
    assert_eq!(state.passkeys[0].name, "Phone");
    let at = t0() + Duration::seconds(9);
    let state = AggregateTest::<User>::new(ctx_at(9))
        .given([user_created(), passkey_registered(1), passkey_registered(2)])
        .when(UserCommand::RemovePasskey { id: id.clone() })
        .then_expect_events(vec![
            UserEvent::PasskeyRemoved {
                user_id: USER,
                passkey_id: id.clone(),
                removed_at: at,
            },
            UserEvent::SessionsRevoked {
                user_id: USER,
                reason: "passkey removed".into(),
                revoked_at: at,
                credential: Some(CredentialType::Passkey),
                passkey: Some(id.clone()),
            },
        ]);
    // Only that passkey's sessions end.
    let other = passkey(2, "").id;
    assert!(state.is_passkey_session_revoked(t0() + Duration::seconds(1), &id));
    assert!(!state.is_passkey_session_revoked(t0() + Duration::seconds(1), &other));
    assert!(
        !state.is_session_revoked_for(t0() + Duration::seconds(1), Some(CredentialType::Passkey))
    );
    AggregateTest::<User>::new(ctx())
        .given([user_created()])
        .when(UserCommand::RemovePasskey { id })
        .then_expect_error(&DomainError::NotFound { kind: "passkey" });
}

#[test]
fn a_passkey_counter_must_grow() {
    let id = passkey(1, "").id;
    let used = |count| UserCommand::RecordPasskeyUse {
        id: id.clone(),
        sign_count: count,
        backup_state: true,
        client: ClientInfo::default(),
    };
    let state = AggregateTest::<User>::new(ctx())
        .given([user_created(), passkey_registered(1)])
        .when(used(2))
        .then_expect_events(vec![UserEvent::PasskeyUsed {
            user_id: USER,
            passkey_id: id.clone(),
            sign_count: 2,
            backup_state: true,
            client: ClientInfo::default(),
            used_at: t0(),
        }]);
    assert_eq!(state.passkeys[0].sign_count, 2);
    for stale in [0, 1] {
        AggregateTest::<User>::new(ctx())
            .given([user_created(), passkey_registered(1)])
            .when(used(stale))
            .then_expect_error(&DomainError::InvalidState(
                "the passkey's signature counter did not grow",
            ));
    }
}
