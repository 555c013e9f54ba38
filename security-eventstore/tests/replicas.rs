//! Security rules that must hold across processes: several replicas of the
//! application, each with its own store and pool, over one PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use security_core::{
    AccountClaims, AccountId, AdminService, Credential, DomainError, NewUser, Repository, Request,
    UserId,
};
use security_crypto::{MemoryKeyStore, SystemClock, UuidV7Ids};
use security_eventstore::StoreOptions;
use uuid::Uuid;

use common::TestDb;

fn admin_over(store: security_eventstore::PostgresEventStore) -> AdminService {
    let repo = Repository::new(Arc::new(store), Arc::new(UuidV7Ids));
    AdminService::new(repo, Arc::new(SystemClock), Arc::new(MemoryKeyStore::new()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_id_goes_to_one_tenant_whichever_replica_asks() {
    // Three replicas behind a round-robin balancer: three tenants' admins
    // ask, at the same instant, each through another replica, for a user
    // with the same id. Exactly one gets it; the id never names two users.
    let db = TestDb::new().await;
    let replicas = [
        admin_over(db.store.clone()),
        admin_over(db.second_store(StoreOptions::default()).await),
        admin_over(db.second_store(StoreOptions::default()).await),
    ];
    let request = Request::default();
    let operator = replicas[0]
        .create_operator(&request, "operator")
        .await
        .unwrap();
    let mut accounts: Vec<AccountId> = Vec::new();
    for name in ["bank a", "bank b", "bank c"] {
        accounts.push(
            replicas[0]
                .create_account(&request, operator, name, AccountClaims::default())
                .await
                .unwrap(),
        );
    }
    for round in 0..8_u128 {
        let user_id = UserId::from_uuid(Uuid::from_u128(0xC1A1_0000 + round));
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let mut tasks = Vec::new();
        for (replica, account) in replicas.iter().zip(&accounts) {
            let (replica, account, barrier) = (replica.clone(), *account, Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                let new_user = NewUser {
                    username: format!("user-{round}"),
                    credential: Credential::Token {
                        token_hash: "keyed-hash".into(),
                        expires_at: None,
                    },
                    metadata: BTreeMap::new(),
                    must_change_password: false,
                };
                barrier.wait().await;
                replica
                    .create_user_with_id(&Request::default(), account, user_id, new_user)
                    .await
            }));
        }
        let mut winners = Vec::new();
        for (task, account) in tasks.into_iter().zip(&accounts) {
            match task.await.unwrap() {
                Ok(id) => {
                    assert_eq!(id, user_id);
                    winners.push(*account);
                }
                Err(e) => assert_eq!(
                    e.rejection(),
                    Some(&DomainError::AlreadyExists { kind: "user" }),
                    "{e}"
                ),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        for account in &accounts {
            let user = replicas[1].user(account.tenant(), user_id).await.unwrap();
            let roster = replicas[2].account(*account).await.unwrap();
            let holds = *account == winners[0];
            assert_eq!(user.id.is_some(), holds, "round {round}");
            assert_eq!(
                roster.user_by_name(&format!("user-{round}")).is_some(),
                holds,
                "round {round}"
            );
        }
    }
    db.cleanup().await;
}
