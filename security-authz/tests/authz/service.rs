//! The authorization service over the live read model.

use std::sync::Arc;

use chrono::Duration;
use security_authz::*;
use security_core::*;

use crate::common::{World, perm, publish_perms, role};

#[tokio::test]
async fn custom_roles_are_defined_updated_and_retired_by_events() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let tenant = bank.tenant();
    w.define_role(tenant, "teller", &["transaction:create", "vault:open"])
        .await;
    let teller = w.user(bank, "teller", &["teller"]).await;
    w.sync().await;
    let p = World::principal(bank, teller);
    let here = Resource::in_tenant(tenant);
    let teller_rule = Rule::Role {
        role: Arc::new(role("teller")),
    };
    assert_eq!(
        w.authz.decide(&p, &perm("vault:open"), &here).rule(),
        Some(&teller_rule)
    );
    assert_eq!(
        w.authz
            .decide(&p, &perm("transaction:create"), &here)
            .rule(),
        Some(&teller_rule)
    );
    assert_eq!(
        w.authz
            .decide(&p, &perm("loan:approve"), &here)
            .deny_reason(),
        Some(&DenyReason::NotGranted)
    );

    let new: std::collections::BTreeSet<_> = [perm("loan:approve")].into();
    w.role_command(
        tenant,
        "teller",
        RoleCommand::UpdateRolePermissions { permissions: new },
    )
    .await;
    w.sync().await;
    assert!(!w.authz.decide(&p, &perm("vault:open"), &here).is_allowed());
    assert!(
        w.authz
            .decide(&p, &perm("loan:approve"), &here)
            .is_allowed()
    );

    w.role_command(tenant, "teller", RoleCommand::RetireRole)
        .await;
    w.sync().await;
    assert_eq!(
        w.authz
            .decide(&p, &perm("loan:approve"), &here)
            .deny_reason(),
        Some(&DenyReason::NotGranted)
    );

    // A role of the same name in another tenant grants nothing here.
    let other = w.account("other").await;
    w.define_role(other.tenant(), "clerk", &["vault:open"])
        .await;
    let clerk = w.user(bank, "clerk", &[]).await;
    w.user_command(
        tenant,
        clerk,
        UserCommand::AssignRole {
            role: role("clerk"),
        },
    )
    .await;
    w.sync().await;
    assert!(
        !w.authz
            .decide(&World::principal(bank, clerk), &perm("vault:open"), &here)
            .is_allowed()
    );
    // ...until the role is defined in this tenant (assigned first, defined later).
    w.define_role(tenant, "clerk", &["vault:open"]).await;
    w.sync().await;
    assert!(
        w.authz
            .decide(&World::principal(bank, clerk), &perm("vault:open"), &here)
            .is_allowed()
    );
}

#[tokio::test]
async fn role_assignment_and_removal_take_effect_without_a_new_token() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let user = w.user(bank, "u", &["manager"]).await;
    w.sync().await;
    let p = World::principal(bank, user);
    let here = Resource::in_tenant(bank.tenant());
    assert!(
        w.authz
            .decide(&p, &perm("loan:approve"), &here)
            .is_allowed()
    );
    w.user_command(
        bank.tenant(),
        user,
        UserCommand::RemoveRole {
            role: role("manager"),
        },
    )
    .await;
    w.sync().await;
    assert_eq!(
        w.authz
            .decide(&p, &perm("loan:approve"), &here)
            .deny_reason(),
        Some(&DenyReason::NotGranted)
    );
}

#[tokio::test]
async fn principals_are_checked_against_the_read_model() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let other = w.account("other").await;
    let user = w.user(bank, "u", &["admin"]).await;
    w.sync().await;
    let here = Resource::in_tenant(bank.tenant());
    let unknown = Principal::new(
        bank.tenant(),
        UserId::from_uuid(uuid::Uuid::from_u128(999_999)),
    );
    assert_eq!(
        w.authz
            .decide(&unknown, &perm("user:read"), &here)
            .deny_reason(),
        Some(&DenyReason::UnknownPrincipal)
    );
    // A token naming the wrong tenant for the user: users are known by
    // tenant and id, so there is nobody with that id in that tenant.
    let forged = Principal::new(other.tenant(), user);
    let there = Resource::in_tenant(other.tenant());
    assert_eq!(
        w.authz
            .decide(&forged, &perm("user:read"), &there)
            .deny_reason(),
        Some(&DenyReason::UnknownPrincipal)
    );
}

#[tokio::test]
async fn locked_expired_users_and_inactive_accounts_are_denied() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let tenant = bank.tenant();
    let user = w.user(bank, "u", &["admin"]).await;
    w.sync().await;
    let p = World::principal(bank, user);
    let here = Resource::in_tenant(tenant);
    let read = perm("user:read");

    let until = w.clock.now() + Duration::minutes(10);
    w.user_command(
        tenant,
        user,
        UserCommand::LockUser {
            reason: "too many failures".into(),
            until: Some(until),
        },
    )
    .await;
    w.sync().await;
    assert_eq!(
        w.authz.decide(&p, &read, &here).deny_reason(),
        Some(&DenyReason::PrincipalInactive)
    );
    w.advance(Duration::minutes(11));
    assert!(
        w.authz.decide(&p, &read, &here).is_allowed(),
        "a timed lock lifts by itself"
    );

    w.user_command(
        tenant,
        user,
        UserCommand::LockUser {
            reason: "admin".into(),
            until: None,
        },
    )
    .await;
    w.sync().await;
    assert_eq!(
        w.authz.decide(&p, &read, &here).deny_reason(),
        Some(&DenyReason::PrincipalInactive)
    );
    w.user_command(tenant, user, UserCommand::UnlockUser).await;
    w.sync().await;
    assert!(w.authz.decide(&p, &read, &here).is_allowed());

    w.account_command(
        bank,
        AccountCommand::SuspendAccount {
            reason: "fraud".into(),
        },
    )
    .await;
    w.sync().await;
    assert_eq!(
        w.authz.decide(&p, &read, &here).deny_reason(),
        Some(&DenyReason::AccountInactive)
    );
    w.account_command(bank, AccountCommand::ReactivateAccount)
        .await;
    w.sync().await;
    assert!(w.authz.decide(&p, &read, &here).is_allowed());

    w.user_command(tenant, user, UserCommand::ExpireUser).await;
    w.sync().await;
    assert_eq!(
        w.authz.decide(&p, &read, &here).deny_reason(),
        Some(&DenyReason::PrincipalInactive)
    );
}

#[tokio::test]
async fn accounts_expire_at_their_time() {
    let mut w = World::new().await;
    let expires_at = w.clock.now() + Duration::days(1);
    let bank = w
        .account_with(
            "bank",
            AccountClaims {
                expires_at: Some(expires_at),
                ..AccountClaims::default()
            },
        )
        .await;
    let user = w.user(bank, "u", &["admin"]).await;
    w.sync().await;
    let p = World::principal(bank, user);
    let here = Resource::in_tenant(bank.tenant());
    assert!(w.authz.decide(&p, &perm("user:read"), &here).is_allowed());
    w.advance(Duration::days(2));
    assert_eq!(
        w.authz.decide(&p, &perm("user:read"), &here).deny_reason(),
        Some(&DenyReason::AccountInactive)
    );
}

#[tokio::test]
async fn applications_register_conditional_grants_and_guards() {
    let approve = perm("transaction:approve");
    let within_limit = FnCondition::new(|req: &AccessRequest<'_>| {
        let amount = req
            .resource
            .attributes
            .get("amount")
            .and_then(serde_json::Value::as_u64);
        let limit = req
            .principal
            .attributes
            .get("approval_limit")
            .and_then(serde_json::Value::as_u64);
        match (amount, limit) {
            (Some(a), Some(l)) => Ok(a <= l),
            _ => Err(ConditionError::new("amount or approval_limit missing")),
        }
    });
    let same_branch = FnCondition::new(|req: &AccessRequest<'_>| {
        Ok(req.principal.attributes.contains_key("branch")
            && req.principal.attributes.get("branch") == req.resource.attributes.get("branch"))
    });
    let mut w = World::with(|b| {
        b.require(&approve, "within_approval_limit", within_limit)
            .grant_when(
                role("customer_service"),
                &approve,
                "same_branch",
                same_branch,
            )
    })
    .await;
    let bank = w.account("bank").await;
    let officer = w.user(bank, "officer", &["officer"]).await;
    let cs = w.user(bank, "cs", &["customer_service"]).await;
    w.sync().await;
    let tenant = bank.tenant();
    let officer = World::principal(bank, officer)
        .with_attribute("approval_limit", 1000)
        .with_attribute("branch", "north");
    let small = Resource::in_tenant(tenant)
        .with_attribute("amount", 500)
        .with_attribute("branch", "north");
    let large = Resource::in_tenant(tenant)
        .with_attribute("amount", 5000)
        .with_attribute("branch", "north");
    let unknown = Resource::in_tenant(tenant);

    assert!(w.authz.decide(&officer, &approve, &small).is_allowed());
    assert_eq!(
        w.authz.decide(&officer, &approve, &large).deny_reason(),
        Some(&DenyReason::GuardRefused {
            condition: "within_approval_limit".into()
        })
    );
    assert_eq!(
        w.authz.decide(&officer, &approve, &unknown).deny_reason(),
        Some(&DenyReason::ConditionFailed {
            condition: "within_approval_limit".into()
        }),
        "an error is a deny"
    );

    let cs_north = World::principal(bank, cs)
        .with_attribute("branch", "north")
        .with_attribute("approval_limit", 1000);
    let cs_south = World::principal(bank, cs)
        .with_attribute("branch", "south")
        .with_attribute("approval_limit", 1000);
    assert_eq!(
        w.authz.decide(&cs_north, &approve, &small).rule(),
        Some(&Rule::RoleWhen {
            role: Arc::new(role("customer_service")),
            condition: "same_branch".into()
        })
    );
    assert_eq!(
        w.authz.decide(&cs_south, &approve, &small).deny_reason(),
        Some(&DenyReason::ConditionNotMet {
            role: Arc::new(role("customer_service")),
            condition: "same_branch".into()
        })
    );
    // The guard applies to conditional grants too.
    assert!(!w.authz.decide(&cs_north, &approve, &large).is_allowed());
}

#[tokio::test]
async fn batch_and_listing_forms() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let customer = w.user(bank, "customer", &["customer"]).await;
    let other = w.user(bank, "other", &["customer"]).await;
    w.sync().await;
    let tenant = bank.tenant();
    let p = World::principal(bank, customer);
    let mine = Resource::in_tenant(tenant)
        .owned_by(customer)
        .with_id("acc-1");
    let theirs = Resource::in_tenant(tenant).owned_by(other).with_id("acc-2");
    let mine_too = Resource::in_tenant(tenant)
        .owned_by(customer)
        .with_id("acc-3");
    let (read, delete) = (perm("account:read"), perm("account:delete"));
    let decisions = w
        .authz
        .authorize_batch(&p, [(&read, &mine), (&read, &theirs), (&delete, &mine)]);
    let allowed: Vec<bool> = decisions.iter().map(Decision::is_allowed).collect();
    assert_eq!(allowed, [true, false, false]);
    let all = [mine.clone(), theirs.clone(), mine_too.clone()];
    let listed = w.authz.authorized(&p, &read, &all);
    assert_eq!(listed, vec![&mine, &mine_too]);
    // The batch recorded its two denials; the listing recorded nothing.
    assert_eq!(w.writer.write_pending().await.unwrap(), 2);
}

#[tokio::test]
async fn subject_permissions_union_of_policies_and_account_defaults() {
    let mut w = World::new().await;
    let claims = AccountClaims {
        default_permissions: publish_perms(&["public.>"], &["public.admin"]),
        ..AccountClaims::default()
    };
    let bank = w.account_with("bank", claims).await;
    let tenant = bank.tenant();
    let orders = w
        .policy(
            tenant,
            publish_perms(&["orders.>"], &[]),
            ResourceLimits::default(),
        )
        .await;
    let no_delete = w
        .policy(
            tenant,
            publish_perms(&["workflow.commands.*"], &["orders.delete"]),
            ResourceLimits::default(),
        )
        .await;
    let user = w.user(bank, "svc", &[]).await;
    w.assign_policy(tenant, user, orders).await;
    w.assign_policy(tenant, user, no_delete).await;
    w.sync().await;
    let p = World::principal(bank, user);

    assert!(w.authz.can_publish(&p, "orders.created"));
    assert!(w.authz.can_publish(&p, "workflow.commands.create"));
    assert!(w.authz.can_publish(&p, "public.news"));
    // deny wins across sources
    match w.authz.authorize_publish(&p, "orders.delete").deny_reason() {
        Some(DenyReason::SubjectDenied { pattern }) => {
            assert_eq!(pattern.source, PatternSource::Policy(no_delete));
        }
        other => panic!("{other:?}"),
    }
    match w.authz.authorize_publish(&p, "public.admin").deny_reason() {
        Some(DenyReason::SubjectDenied { pattern }) => {
            assert_eq!(pattern.source, PatternSource::AccountDefaults);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.authz.authorize_publish(&p, "billing.x").deny_reason(),
        Some(&DenyReason::SubjectNotAllowed)
    );
    assert_eq!(
        w.authz.authorize_publish(&p, "orders.*").deny_reason(),
        Some(&DenyReason::InvalidSubject)
    );
    match w.authz.authorize_publish(&p, "orders.created").rule() {
        Some(Rule::Subject { pattern }) => {
            assert_eq!(&*pattern.pattern, "orders.>");
            assert_eq!(pattern.source, PatternSource::Policy(orders));
        }
        other => panic!("{other:?}"),
    }

    // Live changes: the policy's permissions, its removal, the defaults.
    w.policy_command(
        tenant,
        orders,
        PolicyCommand::UpdatePermissions {
            new_permissions: publish_perms(&["orders.eu.>"], &[]),
        },
    )
    .await;
    w.sync().await;
    assert!(!w.authz.can_publish(&p, "orders.created"));
    assert!(w.authz.can_publish(&p, "orders.eu.created"));
    w.user_command(
        tenant,
        user,
        UserCommand::RemovePolicy { policy_id: orders },
    )
    .await;
    w.sync().await;
    assert!(!w.authz.can_publish(&p, "orders.eu.created"));
    w.account_command(
        bank,
        AccountCommand::UpdateDefaultPermissions {
            permissions: Permissions::default(),
        },
    )
    .await;
    w.sync().await;
    assert!(!w.authz.can_publish(&p, "public.news"));
    assert!(w.authz.can_publish(&p, "workflow.commands.create"));

    // A policy of another tenant is never picked up.
    let other = w.account("other").await;
    let foreign = w
        .policy(
            other.tenant(),
            publish_perms(&[">"], &[]),
            ResourceLimits::default(),
        )
        .await;
    w.assign_policy(tenant, user, foreign).await;
    w.sync().await;
    assert!(!w.authz.can_publish(&p, "anything"));
}

#[tokio::test]
async fn subscribe_permissions_with_queue_groups() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let tenant = bank.tenant();
    let permissions = Permissions {
        subscribe: SubjectPermissions {
            allow: vec![
                SubjectPattern::new("events.>").unwrap(),
                SubjectPattern::with_queue("jobs.*", "workers").unwrap(),
            ],
            deny: vec![SubjectPattern::new("events.secret.>").unwrap()],
        },
        allow_responses: Some(ResponsePermission::default()),
        ..Permissions::default()
    };
    let policy = w
        .policy(tenant, permissions, ResourceLimits::default())
        .await;
    let user = w.user(bank, "worker", &[]).await;
    w.assign_policy(tenant, user, policy).await;
    w.sync().await;
    let p = World::principal(bank, user);
    assert!(w.authz.can_subscribe(&p, "events.*", None));
    assert!(w.authz.can_subscribe(&p, "jobs.build", Some("workers")));
    assert!(!w.authz.can_subscribe(&p, "jobs.build", None));
    assert!(!w.authz.can_subscribe(&p, "jobs.build", Some("thieves")));
    assert!(!w.authz.can_subscribe(&p, "events.secret.plans", None));
    assert_eq!(
        w.authz.authorize_subscribe(&p, "a..b", None).deny_reason(),
        Some(&DenyReason::InvalidSubject)
    );
}

#[tokio::test]
async fn expired_policies_stop_granting_at_their_time() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let tenant = bank.tenant();
    let expires_at = w.clock.now() + Duration::hours(1);
    let temporary = w
        .policy(
            tenant,
            publish_perms(&["temp.>"], &[]),
            ResourceLimits {
                expires_at: Some(expires_at),
                max_payload_size: Some(10),
                ..ResourceLimits::default()
            },
        )
        .await;
    let lasting = w
        .policy(
            tenant,
            publish_perms(&["lasting.>"], &[]),
            ResourceLimits {
                max_payload_size: Some(100),
                ..ResourceLimits::default()
            },
        )
        .await;
    let user = w.user(bank, "u", &[]).await;
    w.assign_policy(tenant, user, temporary).await;
    w.assign_policy(tenant, user, lasting).await;
    w.sync().await;
    let p = World::principal(bank, user);
    assert!(w.authz.can_publish(&p, "temp.x"));
    assert!(w.authz.can_publish(&p, "lasting.x"));
    assert_eq!(
        w.authz.limits(&p).unwrap().max_payload_size,
        Some(Limit {
            max: 10,
            source: LimitSource::Policy(temporary)
        })
    );
    w.advance(Duration::hours(2));
    assert!(!w.authz.can_publish(&p, "temp.x"), "expired");
    assert!(w.authz.can_publish(&p, "lasting.x"));
    assert_eq!(
        w.authz.limits(&p).unwrap().max_payload_size,
        Some(Limit {
            max: 100,
            source: LimitSource::Policy(lasting)
        })
    );
    // A later event recompiles the user without the expired policy.
    w.user_command(
        tenant,
        user,
        UserCommand::AssignRole {
            role: role("auditor"),
        },
    )
    .await;
    w.sync().await;
    assert!(!w.authz.can_publish(&p, "temp.x"));
    assert!(w.authz.can_publish(&p, "lasting.x"));
}

#[tokio::test]
async fn limits_are_checked_with_typed_errors() {
    let mut w = World::new().await;
    let limits = AccountLimits {
        max_users: Some(2),
        max_subscriptions: Some(50),
        max_payload_size: Some(4096),
        max_connections: Some(3),
        ..AccountLimits::default()
    };
    let bank = w
        .account_with(
            "bank",
            AccountClaims {
                limits,
                ..AccountClaims::default()
            },
        )
        .await;
    let tenant = bank.tenant();
    let strict = w
        .policy(
            tenant,
            publish_perms(&[">"], &[]),
            ResourceLimits {
                max_subscriptions: Some(5),
                data_rate: Some(DataRate {
                    bytes_per_second: 1000,
                }),
                ..ResourceLimits::default()
            },
        )
        .await;
    let user = w.user(bank, "u", &[]).await;
    w.assign_policy(tenant, user, strict).await;
    w.sync().await;
    let p = World::principal(bank, user);

    assert!(w.authz.check_payload_size(&p, 4096).is_ok());
    match w.authz.check_payload_size(&p, 4097) {
        Err(AuthzError::LimitExceeded(e)) => {
            assert_eq!(
                e,
                LimitExceeded {
                    kind: LimitKind::PayloadSize,
                    limit: 4096,
                    requested: 4097,
                    source_of_limit: LimitSource::Account
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(w.authz.check_subscriptions(&p, 5).is_ok());
    match w.authz.check_subscriptions(&p, 6) {
        Err(AuthzError::LimitExceeded(e)) => assert_eq!(
            (e.limit, e.source_of_limit),
            (5, LimitSource::Policy(strict))
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(w.authz.check_data_rate(&p, 1001), Err(AuthzError::LimitExceeded(e)) if e.kind == LimitKind::DataRate)
    );
    assert!(w.authz.check_connections(&p, 3).is_ok());
    assert!(
        matches!(w.authz.check_connections(&p, 4), Err(AuthzError::LimitExceeded(e)) if e.kind == LimitKind::Connections)
    );

    // max_users: one slot left, then none; the account aggregate agrees.
    assert!(w.authz.check_new_user(tenant).is_ok());
    w.user(bank, "second", &[]).await;
    w.sync().await;
    match w.authz.check_new_user(tenant) {
        Err(AuthzError::LimitExceeded(e)) => {
            assert_eq!((e.kind, e.limit, e.requested), (LimitKind::Users, 2, 3));
        }
        other => panic!("{other:?}"),
    }
    let roster = AccountCommand::AddUser {
        user_id: UserId::from_uuid(uuid::Uuid::from_u128(4242)),
        username: "third".into(),
    };
    let refused = w
        .repo
        .execute::<Account>(bank, &roster, &w.ctx(tenant))
        .await
        .unwrap_err();
    assert_eq!(
        refused.rejection(),
        Some(&DomainError::MaxUsersReached { limit: 2 })
    );

    // Unknown principals and tenants are denials, not limits.
    let nobody = Principal::new(tenant, UserId::from_uuid(uuid::Uuid::from_u128(1)));
    assert!(matches!(
        w.authz.limits(&nobody),
        Err(AuthzError::Denied(DenyReason::UnknownPrincipal))
    ));
    assert!(matches!(
        w.authz
            .check_new_user(TenantId::from_uuid(uuid::Uuid::from_u128(5))),
        Err(AuthzError::Denied(_))
    ));
}

#[tokio::test]
async fn denials_are_recorded_without_secrets_and_grants_are_sampled() {
    let mut w = World::with(|b| b.sample_grants(GrantSampling::OneIn(2))).await;
    let bank = w.account("bank").await;
    let tenant = bank.tenant();
    let user = w.user(bank, "u", &["customer_service"]).await;
    w.sync().await;
    let p = World::principal(bank, user).with_attribute("password", "hunter2-secret");
    let resource = Resource::in_tenant(tenant)
        .with_id("loan-7")
        .with_attribute("ssn", "123-45-6789");
    assert!(
        !w.authz
            .authorize(&p, &perm("loan:approve"), &resource)
            .is_allowed()
    );
    for _ in 0..4 {
        assert!(
            w.authz
                .authorize(&p, &perm("loan:read"), &resource)
                .is_allowed()
        );
    }
    assert!(!w.authz.authorize_publish(&p, "orders.x").is_allowed());
    assert_eq!(
        w.writer.write_pending().await.unwrap(),
        4,
        "two denials, two of four grants"
    );

    let stream = StreamId::new(tenant, AUDIT_AGGREGATE_TYPE, user.as_uuid());
    let events = w
        .store
        .read_stream(&stream, StreamQuery::all())
        .await
        .unwrap();
    assert_eq!(events.len(), 4);
    let decoded: Vec<AuthzAuditEvent> = events.iter().map(|e| e.decode().unwrap()).collect();
    match &decoded[0] {
        AuthzAuditEvent::AccessDenied {
            user_id,
            action,
            resource,
            reason,
            decided_at,
            ..
        } => {
            assert_eq!(*user_id, user);
            assert_eq!(
                action,
                &AuditedAction::Permission {
                    permission: perm("loan:approve")
                }
            );
            assert_eq!(
                resource.as_ref().and_then(|r| r.id.as_deref()),
                Some("loan-7")
            );
            assert_eq!(reason, &DenyReason::NotGranted);
            assert_eq!(*decided_at, w.clock.now());
        }
        other @ AuthzAuditEvent::AccessGranted { .. } => panic!("{other:?}"),
    }
    assert!(matches!(
        &decoded[1],
        AuthzAuditEvent::AccessGranted {
            sampled_one_in: 2,
            ..
        }
    ));
    assert!(matches!(
        &decoded[3],
        AuthzAuditEvent::AccessDenied {
            action: AuditedAction::Publish { .. },
            reason: DenyReason::SubjectNotAllowed,
            ..
        }
    ));
    for e in &events {
        let text = serde_json::to_string(&*e.payload).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("123-45-6789"),
            "{text}"
        );
        assert_eq!(e.metadata.actor, Some(Actor::user(user)));
    }
    // The projection ignores its own audit stream.
    w.sync().await;
    assert_eq!(w.audit.dropped(), 0);
}

#[tokio::test]
async fn a_full_audit_queue_drops_and_counts_but_never_blocks() {
    let store = std::sync::Arc::new(security_eventstore::MemoryEventStore::new());
    let (log, writer) = AuditLog::new(1, store, std::sync::Arc::new(SequentialIds::new()));
    let clock = std::sync::Arc::new(ManualClock::new(crate::common::t0()));
    let (authz, _projection) = AuthorizationService::builder(clock)
        .audit(std::sync::Arc::new(log.clone()))
        .build();
    let p = Principal::new(
        TenantId::from_uuid(uuid::Uuid::from_u128(1)),
        UserId::from_uuid(uuid::Uuid::from_u128(2)),
    );
    for _ in 0..3 {
        assert!(
            !authz
                .authorize(&p, &perm("user:read"), &Resource::in_tenant(p.tenant_id))
                .is_allowed()
        );
    }
    assert_eq!(log.dropped(), 2);
    assert_eq!(writer.dropped(), 2);
}

#[tokio::test]
async fn the_audit_writer_runs_until_shutdown() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let user = w.user(bank, "u", &[]).await;
    w.sync().await;
    let World {
        store,
        authz,
        writer,
        ..
    } = w;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(writer.run_until(async move {
        let _ = stopped.await;
    }));
    let p = World::principal(bank, user);
    for _ in 0..10 {
        assert!(
            !authz
                .authorize(&p, &perm("user:read"), &Resource::in_tenant(bank.tenant()))
                .is_allowed()
        );
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    let stream = StreamId::new(bank.tenant(), AUDIT_AGGREGATE_TYPE, user.as_uuid());
    assert_eq!(
        store
            .read_stream(&stream, StreamQuery::all())
            .await
            .unwrap()
            .len(),
        10
    );
}
