//! One tenant cannot break another tenant's user by reusing its id.

use std::collections::BTreeMap;
use std::sync::Arc;

use security_authz::{DenyReason, Principal, Resource, Rule};
use security_core::*;
use security_crypto::MemoryKeyStore;

use crate::common::{World, perm, publish_perms, role};

#[tokio::test]
async fn another_tenants_admin_cannot_take_a_users_id() {
    // B's user is an admin with a policy. A's admin learns its id (the
    // `sub` of its tokens) and asks the admin API for a user with that id
    // in A: refused, and nothing was written.
    let mut w = World::new().await;
    let bank_a = w.account("bank a").await;
    let bank_b = w.account("bank b").await;
    let admin = AdminService::new(
        w.repo.clone(),
        w.clock.clone(),
        Arc::new(MemoryKeyStore::new()),
    );
    let new_user = |name: &str| NewUser {
        username: name.into(),
        credential: Credential::Token {
            token_hash: "keyed-hash".into(),
            expires_at: None,
        },
        metadata: BTreeMap::new(),
        must_change_password: false,
    };
    let once = Request::default().idempotent(IdempotencyKey::new("create-victim").unwrap());
    let victim = admin
        .create_user(&once, bank_b, new_user("victim"))
        .await
        .unwrap();
    admin
        .assign_role(&Request::default(), bank_b.tenant(), victim, role("admin"))
        .await
        .unwrap();
    w.sync().await;
    let b = Principal::new(bank_b.tenant(), victim);
    let here = Resource::in_tenant(bank_b.tenant());
    assert!(w.authz.decide(&b, &perm("user:delete"), &here).is_allowed());

    let refused = admin
        .create_user_with_id(&Request::default(), bank_a, victim, new_user("impostor"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.rejection(),
        Some(&DomainError::AlreadyExists { kind: "user" })
    );
    assert_eq!(
        admin.account(bank_a).await.unwrap().user_count(),
        0,
        "the roster of A took nobody"
    );
    assert!(
        admin
            .user(bank_a.tenant(), victim)
            .await
            .unwrap()
            .id
            .is_none()
    );
    // Repeating B's own creation passes the claim (the id is B's).
    let again = admin
        .create_user(&once, bank_b, new_user("victim"))
        .await
        .unwrap();
    assert_eq!(again, victim);
    w.sync().await;
    let decision = w.authz.decide(&b, &perm("user:delete"), &here);
    assert_eq!(
        decision.rule(),
        Some(&Rule::Role {
            role: role("admin").into()
        })
    );
}

#[tokio::test]
async fn users_sharing_an_id_in_two_tenants_are_two_users() {
    // Written straight to the store (no admin API, so no claim): the read
    // model still keeps the two apart, and nothing that happens to A's
    // user reaches B's.
    let mut w = World::new().await;
    let bank_a = w.account("bank a").await;
    let bank_b = w.account("bank b").await;
    let id = UserId::from_uuid(w.uuid());
    w.user_with_id(bank_b, id, "victim", &["admin"]).await;
    let policy = w
        .policy(
            bank_b.tenant(),
            publish_perms(&["payments.>"], &[]),
            ResourceLimits::default(),
        )
        .await;
    w.assign_policy(bank_b.tenant(), id, policy).await;
    w.sync().await;

    w.user_with_id(bank_a, id, "impostor", &["customer"]).await;
    let deny_all = w
        .policy(
            bank_a.tenant(),
            publish_perms(&[">"], &["payments.>"]),
            ResourceLimits::default(),
        )
        .await;
    w.assign_policy(bank_a.tenant(), id, deny_all).await;
    w.user_command(
        bank_a.tenant(),
        id,
        UserCommand::LockUser {
            reason: "impostor".into(),
            until: None,
        },
    )
    .await;
    w.user_command(
        bank_a.tenant(),
        id,
        UserCommand::RemoveRole {
            role: role("customer"),
        },
    )
    .await;
    w.sync().await;

    let b = Principal::new(bank_b.tenant(), id);
    let here = Resource::in_tenant(bank_b.tenant());
    assert_eq!(
        w.authz.decide(&b, &perm("user:delete"), &here).rule(),
        Some(&Rule::Role {
            role: role("admin").into()
        })
    );
    assert!(w.authz.can_publish(&b, "payments.card"));
    let a = Principal::new(bank_a.tenant(), id);
    assert_eq!(
        w.authz
            .decide(
                &a,
                &perm("user:read"),
                &Resource::in_tenant(bank_a.tenant())
            )
            .deny_reason(),
        Some(&DenyReason::PrincipalInactive)
    );
    // Neither reaches the other's tenant through the shared id.
    assert_eq!(
        w.authz.decide(&a, &perm("user:read"), &here).deny_reason(),
        Some(&DenyReason::PrincipalInactive)
    );
    // The same, rebuilt from history.
    let then = w.authz.as_of(&*w.store, Until::End).await.unwrap();
    assert!(then.decide(&b, &perm("user:delete"), &here).is_allowed());
    assert!(then.can_publish(&b, "payments.card"));
}
