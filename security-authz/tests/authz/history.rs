//! "Was this allowed then, and by which rule?" answered from history, and
//! the read model following the store live.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Duration;
use security_authz::*;
use security_core::*;

use crate::common::{World, perm, publish_perms, role};

#[tokio::test]
async fn as_of_a_time_answers_from_history_with_the_rule() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let tenant = bank.tenant();
    let user = w.user(bank, "u", &["officer"]).await;
    let policy = w
        .policy(
            tenant,
            publish_perms(&["loans.>"], &[]),
            ResourceLimits::default(),
        )
        .await;
    w.assign_policy(tenant, user, policy).await;
    let t1 = w.clock.now();

    w.advance(Duration::hours(1));
    w.user_command(
        tenant,
        user,
        UserCommand::AssignRole {
            role: role("manager"),
        },
    )
    .await;
    w.user_command(
        tenant,
        user,
        UserCommand::RemoveRole {
            role: role("officer"),
        },
    )
    .await;
    w.user_command(
        tenant,
        user,
        UserCommand::RemovePolicy { policy_id: policy },
    )
    .await;
    let t2 = w.clock.now();

    w.advance(Duration::hours(1));
    w.user_command(
        tenant,
        user,
        UserCommand::LockUser {
            reason: "left the bank".into(),
            until: None,
        },
    )
    .await;
    w.sync().await;

    let p = World::principal(bank, user);
    let here = Resource::in_tenant(tenant).with_id("loan-1");
    let (approve, update) = (perm("loan:approve"), perm("loan:update"));

    // Now: locked.
    assert_eq!(
        w.authz.decide(&p, &update, &here).deny_reason(),
        Some(&DenyReason::PrincipalInactive)
    );

    // At t1: an officer, who could update but not approve loans.
    let then = w
        .authz
        .as_of(w.store.as_ref(), Until::Time(t1))
        .await
        .unwrap();
    assert_eq!(
        then.decide(&p, &update, &here).rule(),
        Some(&Rule::Role {
            role: Arc::new(role("officer"))
        })
    );
    assert_eq!(
        then.decide(&p, &approve, &here).deny_reason(),
        Some(&DenyReason::NotGranted)
    );
    assert!(then.can_publish(&p, "loans.created"));

    // At t2: a manager, who could approve; the policy was gone.
    let then = w
        .authz
        .as_of(w.store.as_ref(), Until::Time(t2))
        .await
        .unwrap();
    assert_eq!(
        then.decide(&p, &approve, &here).rule(),
        Some(&Rule::Role {
            role: Arc::new(role("manager"))
        })
    );
    assert!(!then.can_publish(&p, "loans.created"));

    // Before the user existed: unknown.
    let before = w
        .authz
        .as_of(w.store.as_ref(), Until::Time(t1 - Duration::days(1)))
        .await
        .unwrap();
    assert_eq!(
        before.decide(&p, &update, &here).deny_reason(),
        Some(&DenyReason::UnknownPrincipal)
    );

    // By position too; and a stream version is refused for a global read.
    let position = then.position();
    let by_position = w
        .authz
        .as_of(w.store.as_ref(), Until::Position(position))
        .await
        .unwrap();
    assert_eq!(by_position.position(), position);
    assert!(by_position.decide(&p, &approve, &here).is_allowed());
    assert!(matches!(
        w.authz.as_of(w.store.as_ref(), Until::Version(3)).await,
        Err(AuthzError::Store(_))
    ));

    // A historical service records nothing.
    assert_eq!(w.writer.write_pending().await.unwrap(), 0);
}

#[tokio::test]
async fn the_projection_follows_the_store_live() {
    let mut w = World::new().await;
    let bank = w.account("bank").await;
    let tenant = bank.tenant();
    let user = w.user(bank, "u", &[]).await;
    let World {
        store,
        repo,
        clock,
        authz,
        runner,
        ..
    } = w;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut runner = runner;
    let task = tokio::spawn(async move {
        runner
            .run_until(async move {
                let _ = stopped.await;
            })
            .await
    });
    let p = Principal::new(tenant, user);
    let here = Resource::in_tenant(tenant);
    let ctx = CommandContext::new(tenant, clock.now());
    let outcome = repo
        .execute::<User>(
            user,
            &UserCommand::AssignRole {
                role: role("admin"),
            },
            &ctx,
        )
        .await
        .unwrap();
    let position = outcome.events.last().unwrap().global_position;
    authz.wait_for_position(position).await;
    assert!(
        authz
            .decide(&p, &perm("settings:update"), &here)
            .is_allowed()
    );

    let outcome = repo
        .execute::<User>(
            user,
            &UserCommand::RemoveRole {
                role: role("admin"),
            },
            &ctx,
        )
        .await
        .unwrap();
    authz
        .wait_for_position(outcome.events.last().unwrap().global_position)
        .await;
    assert!(
        !authz
            .decide(&p, &perm("settings:update"), &here)
            .is_allowed()
    );

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    drop(store);
}

#[test]
fn readers_never_block_and_never_see_half_a_change() {
    // Readers hammer the service from threads while the writer flips a
    // role's two permissions together, event after event. One snapshot
    // answers a batch, so both answers always agree.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut w = World::new().await;
        let bank = w.account("bank").await;
        let tenant = bank.tenant();
        w.define_role(tenant, "pair", &["vault:open", "vault:close"])
            .await;
        let user = w.user(bank, "u", &["pair"]).await;
        w.sync().await;
        let p = World::principal(bank, user);
        let here = Resource::in_tenant(tenant);
        let stop = Arc::new(AtomicBool::new(false));
        let checks = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (authz, p, here) = (w.authz.clone(), p.clone(), here.clone());
                let (stop, checks) = (stop.clone(), checks.clone());
                std::thread::spawn(move || {
                    let (open, close) = (perm("vault:open"), perm("vault:close"));
                    while !stop.load(Ordering::Relaxed) {
                        let d = authz.authorize_batch(&p, [(&open, &here), (&close, &here)]);
                        assert_eq!(
                            d[0].is_allowed(),
                            d[1].is_allowed(),
                            "half-applied change seen"
                        );
                        checks.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let both: std::collections::BTreeSet<_> = [perm("vault:open"), perm("vault:close")].into();
        for i in 0..50 {
            let permissions = if i % 2 == 0 {
                std::collections::BTreeSet::new()
            } else {
                both.clone()
            };
            w.role_command(
                tenant,
                "pair",
                RoleCommand::UpdateRolePermissions { permissions },
            )
            .await;
            w.sync().await;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert!(checks.load(Ordering::Relaxed) > 0);
        assert!(
            w.authz.decide(&p, &perm("vault:open"), &here).is_allowed(),
            "last update granted both"
        );
        // Writers were never held up by readers: all 50 updates applied.
        assert_eq!(w.authz.position(), w.store.head_position().await.unwrap());
    });
}
