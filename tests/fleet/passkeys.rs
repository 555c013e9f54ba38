//! Passkey ceremonies over three replicas on one PostgreSQL: a ceremony
//! started on one replica completes on another, and the same answer sent
//! to every replica at once logs in exactly once, round after round.

use security::authn::AuthnConfig;
use security::authn::passkeys::RelyingParty;

use crate::common::{Fleet, Time, client, open_config};
use crate::soft_passkey::SoftKey;

const ORIGIN: &str = "https://login.example.com";
const ROUNDS: u32 = 100;

fn config() -> AuthnConfig {
    let mut config = open_config();
    config.passkeys.relying_party = Some(RelyingParty::new("example.com", &[ORIGIN]).unwrap());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_passkey_login_completes_on_any_replica_exactly_once() {
    let fleet = Fleet::postgres_only(config(), Time::Real).await;
    let tenant = fleet.tenant();
    let user = fleet.user("passkey-owner").await;
    let key = SoftKey::default();
    let ceremony = fleet
        .replica(0)
        .start_passkey_registration(tenant, user, true)
        .await
        .unwrap();
    let created = key.create(ORIGIN, &ceremony.options).await;
    fleet
        .replica(1)
        .finish_passkey_registration(tenant, user, &ceremony.challenge, &created, "Key")
        .await
        .unwrap();
    for round in 0..ROUNDS {
        let start = fleet
            .replica(round as usize)
            .start_passkey_login(tenant, &client(round))
            .await
            .unwrap();
        let assertion = key.get(ORIGIN, &start.options).await;
        let mut tasks = Vec::new();
        for i in 1..=3 {
            let authn = fleet.replica(round as usize + i).clone();
            let challenge = start.challenge.clone();
            let assertion = assertion.clone();
            tasks.push(tokio::spawn(async move {
                authn
                    .finish_passkey_login(&challenge, &assertion, &client(round))
                    .await
            }));
        }
        let mut logged_in = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(tokens) => {
                    assert_eq!(tokens.user_id, user);
                    logged_in += 1;
                }
                Err(e) => assert!(
                    matches!(e, security::authn::AuthnError::InvalidCredentials),
                    "round {round}: {e:?}"
                ),
            }
        }
        assert_eq!(logged_in, 1, "round {round}: one login per ceremony");
    }
    fleet.cleanup().await;
}
