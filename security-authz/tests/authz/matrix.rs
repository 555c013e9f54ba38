//! The ROLES.md matrix, cell by cell: on the subject's own resource, on
//! another user's resource of the same tenant, on the tenant itself, and on
//! another tenant's resource.

use security_authz::{
    BuiltinRole, Cell, DenyReason, MATRIX, OWNER, Resource, Rule, SuperAdminScope,
};
use security_core::*;

use crate::common::{World, perm};

struct Fixture {
    world: World,
    home: AccountId,
    other: AccountId,
    system: AccountId,
    /// One user per built-in role in `home`, in `BuiltinRole::ALL` order.
    users: Vec<UserId>,
    /// A user that owns "someone else's" resources.
    bystander: UserId,
    /// A super_admin of the operator's system account.
    root: UserId,
}

async fn fixture(scope: SuperAdminScope) -> Fixture {
    let mut world = World::with(|b| b.super_admin_scope(scope)).await;
    let home = world.account("home bank").await;
    let other = world.account("other bank").await;
    let system = world.account("system").await;
    world.set_system_account(system).await;
    let mut users = Vec::new();
    for role in BuiltinRole::ALL {
        users.push(
            world
                .user(home, &format!("{role}@home"), &[role.name()])
                .await,
        );
    }
    let bystander = world.user(home, "bystander@home", &[]).await;
    let root = world.user(system, "root@system", &["super_admin"]).await;
    world.sync().await;
    Fixture {
        world,
        home,
        other,
        system,
        users,
        bystander,
        root,
    }
}

#[tokio::test]
async fn every_cell_of_the_matrix_in_the_home_tenant() {
    let f = fixture(SuperAdminScope::SystemAccounts).await;
    let home = f.home.tenant();
    let mut cells = 0;
    for (permission, row) in MATRIX {
        let permission = perm(permission);
        for (col, role) in BuiltinRole::ALL.into_iter().enumerate() {
            let user = f.users[col];
            let principal = World::principal(f.home, user);
            let own = Resource::in_tenant(home).owned_by(user).with_id("r-own");
            let theirs = Resource::in_tenant(home)
                .owned_by(f.bystander)
                .with_id("r-theirs");
            let tenant_level = Resource::in_tenant(home);
            let cell = row[col];
            let on_own = f.world.authz.decide(&principal, &permission, &own);
            let on_theirs = f.world.authz.decide(&principal, &permission, &theirs);
            let on_tenant = f.world.authz.decide(&principal, &permission, &tenant_level);
            let ctx = format!("{permission} × {role}");
            match cell {
                Cell::Yes => {
                    let rule = Rule::Role {
                        role: role.role_name().into(),
                    };
                    assert_eq!(on_own.rule(), Some(&rule), "{ctx} own");
                    assert_eq!(on_theirs.rule(), Some(&rule), "{ctx} theirs");
                    assert_eq!(on_tenant.rule(), Some(&rule), "{ctx} tenant");
                }
                Cell::Own => {
                    let rule = Rule::RoleWhen {
                        role: role.role_name().into(),
                        condition: OWNER.into(),
                    };
                    assert_eq!(on_own.rule(), Some(&rule), "{ctx} own");
                    let refusal = DenyReason::ConditionNotMet {
                        role: role.role_name().into(),
                        condition: OWNER.into(),
                    };
                    assert_eq!(on_theirs.deny_reason(), Some(&refusal), "{ctx} theirs");
                    assert_eq!(on_tenant.deny_reason(), Some(&refusal), "{ctx} tenant");
                }
                Cell::No => {
                    assert_eq!(
                        on_own.deny_reason(),
                        Some(&DenyReason::NotGranted),
                        "{ctx} own"
                    );
                    assert_eq!(
                        on_theirs.deny_reason(),
                        Some(&DenyReason::NotGranted),
                        "{ctx} theirs"
                    );
                    assert_eq!(
                        on_tenant.deny_reason(),
                        Some(&DenyReason::NotGranted),
                        "{ctx} tenant"
                    );
                }
            }
            cells += 1;
        }
    }
    assert_eq!(cells, 22 * 7);
}

#[tokio::test]
async fn every_cell_across_tenants_only_the_system_super_admin_crosses() {
    let f = fixture(SuperAdminScope::SystemAccounts).await;
    let elsewhere = Resource::in_tenant(f.other.tenant()).with_id("r-elsewhere");
    for (permission, _) in MATRIX {
        let permission = perm(permission);
        for (col, role) in BuiltinRole::ALL.into_iter().enumerate() {
            let principal = World::principal(f.home, f.users[col]);
            // Even a resource "owned" by the principal in another tenant.
            let owned_elsewhere = elsewhere.clone().owned_by(f.users[col]);
            for resource in [&elsewhere, &owned_elsewhere] {
                let decision = f.world.authz.decide(&principal, &permission, resource);
                assert_eq!(
                    decision.deny_reason(),
                    Some(&DenyReason::CrossTenant),
                    "{permission} × {role}"
                );
            }
        }
        let root = World::principal(f.system, f.root);
        for resource in [&elsewhere, &Resource::in_tenant(f.home.tenant())] {
            let decision = f.world.authz.decide(&root, &permission, resource);
            assert_eq!(
                decision.rule(),
                Some(&Rule::Role {
                    role: BuiltinRole::SuperAdmin.role_name().into()
                })
            );
        }
    }
    // Custom permissions too: super_admin holds every permission.
    let root = World::principal(f.system, f.root);
    assert!(
        f.world
            .authz
            .decide(&root, &perm("vault:open"), &elsewhere)
            .is_allowed()
    );
}

#[tokio::test]
async fn with_any_tenant_scope_every_super_admin_crosses_and_nobody_else() {
    let f = fixture(SuperAdminScope::AnyTenant).await;
    let elsewhere = Resource::in_tenant(f.other.tenant());
    for (permission, _) in MATRIX {
        let permission = perm(permission);
        for (col, role) in BuiltinRole::ALL.into_iter().enumerate() {
            let decision = f.world.authz.decide(
                &World::principal(f.home, f.users[col]),
                &permission,
                &elsewhere,
            );
            if role == BuiltinRole::SuperAdmin {
                assert!(decision.is_allowed(), "{permission}");
            } else {
                assert_eq!(
                    decision.deny_reason(),
                    Some(&DenyReason::CrossTenant),
                    "{permission} × {role}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_system_super_admin_acts_only_on_its_own_operators_tenants() {
    // Two operators in one deployment, each with a system account and a
    // super_admin in it. Operator A's root reaches A's banks, never B's;
    // a system account that names another operator's account crosses
    // nothing. Configured otherwise, the wider scopes apply.
    for scope in [
        SuperAdminScope::SystemAccounts,
        SuperAdminScope::AllOperators,
        SuperAdminScope::AnyTenant,
    ] {
        let mut world = World::with(|b| b.super_admin_scope(scope)).await;
        let op_a = world.operator;
        let op_b = world.create_operator().await;
        let sys_a = world.account("system a").await;
        let bank_a = world.account("bank a").await;
        let sys_b = world.account_of(op_b, "system b").await;
        let bank_b = world.account_of(op_b, "bank b").await;
        world.set_system_account_of(op_a, sys_a).await;
        world.set_system_account_of(op_b, sys_b).await;
        let root_a = world.user(sys_a, "root@a", &["super_admin"]).await;
        let root_b = world.user(sys_b, "root@b", &["super_admin"]).await;
        // An operator that names another operator's account as its system
        // account gives that account nothing.
        let op_c = world.create_operator().await;
        let squatter = world.account("squatter").await;
        world.set_system_account_of(op_c, squatter).await;
        let root_c = world.user(squatter, "root@c", &["super_admin"]).await;
        let bank_c = world.account_of(op_c, "bank c").await;
        world.sync().await;

        let delete = perm("user:delete");
        let decide = |account: AccountId, user: UserId, target: AccountId| {
            world.authz.decide(
                &World::principal(account, user),
                &delete,
                &Resource::in_tenant(target.tenant()),
            )
        };
        let own_operator = [decide(sys_a, root_a, bank_a), decide(sys_b, root_b, bank_b)];
        let foreign_operator = [
            decide(sys_a, root_a, bank_b),
            decide(sys_b, root_b, bank_a),
            decide(sys_b, root_b, sys_a),
        ];
        let squatting = decide(squatter, root_c, bank_c);
        for decision in &own_operator {
            assert!(decision.is_allowed(), "{scope:?}: {decision:?}");
        }
        if scope == SuperAdminScope::SystemAccounts {
            for decision in &foreign_operator {
                assert_eq!(
                    decision.deny_reason(),
                    Some(&DenyReason::CrossTenant),
                    "{scope:?}"
                );
            }
            assert_eq!(squatting.deny_reason(), Some(&DenyReason::CrossTenant));
        } else {
            for decision in &foreign_operator {
                assert!(decision.is_allowed(), "{scope:?}: {decision:?}");
            }
            assert_eq!(
                squatting.is_allowed(),
                scope == SuperAdminScope::AnyTenant,
                "{scope:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_strongest_role_is_named_when_several_grant() {
    let mut world = World::new().await;
    let home = world.account("bank").await;
    let user = world
        .user(home, "multi", &["customer", "officer", "auditor"])
        .await;
    world.sync().await;
    let p = World::principal(home, user);
    let decision = world
        .authz
        .decide(&p, &perm("loan:read"), &Resource::in_tenant(home.tenant()));
    assert_eq!(
        decision.rule(),
        Some(&Rule::Role {
            role: role_name("officer")
        })
    );
    // customer's own cell is not needed when an unconditional grant exists
    let own = Resource::in_tenant(home.tenant()).owned_by(user);
    assert_eq!(
        world.authz.decide(&p, &perm("loan:read"), &own).rule(),
        Some(&Rule::Role {
            role: role_name("officer")
        })
    );
    // report:export: only auditor
    assert_eq!(
        world.authz.decide(&p, &perm("report:export"), &own).rule(),
        Some(&Rule::Role {
            role: role_name("auditor")
        })
    );
}

fn role_name(r: &str) -> std::sync::Arc<RoleName> {
    std::sync::Arc::new(RoleName::new(r).unwrap())
}
