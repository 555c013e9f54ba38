//! Guessing the current password through the password change, over three
//! replicas: the change takes the login's verification budget, so a burst
//! of wrong current passwords costs at most the lockout limit of
//! verifications, every failure is recorded, the user ends locked, and the
//! right password afterwards is answered exactly like a wrong one.

use std::sync::Arc;
use std::time::Duration;

use security::authn::AuthnError;
use security::core::{EventStore, ManualClock, StreamId, StreamQuery, UserId};

use crate::common::{Fleet, PASSWORD, Time, client, open_config, secret, t0};

/// Simultaneous guesses per round.
const GUESSES: usize = 15;
/// Rounds per backend.
const ROUNDS: u32 = 100;

/// How an answer looks to the client: the message and the wait it names.
fn looks(result: &Result<(), AuthnError>) -> (String, Option<Duration>) {
    match result {
        Ok(()) => ("changed".into(), None),
        Err(e) => (e.to_string(), e.retry_after()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guessing_through_the_password_change_locks_within_the_limit_with_redis() {
    let clock = Arc::new(ManualClock::new(t0()));
    let fleet = Fleet::new(open_config(), Time::Manual(clock)).await;
    guesses(&fleet).await;
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guessing_through_the_password_change_locks_within_the_limit_on_postgres() {
    let clock = Arc::new(ManualClock::new(t0()));
    let fleet = Fleet::postgres_only(open_config(), Time::Manual(clock)).await;
    guesses(&fleet).await;
    fleet.cleanup().await;
}

async fn guesses(fleet: &Fleet) {
    let limit = usize::try_from(open_config().lockout.max_failures).unwrap();
    let tenant = fleet.tenant();
    for round in 0..ROUNDS {
        let user = fleet.user(&format!("changer-{round}")).await;
        let before = fleet.hasher.verifies();
        let mut tasks = Vec::new();
        for i in 0..GUESSES {
            let authn = fleet.replica(i).clone();
            tasks.push(tokio::spawn(async move {
                authn
                    .change_password(
                        tenant,
                        user,
                        &secret("Wrong-Guess-123!"),
                        &secret("Attacker-Chosen-456!"),
                        &client(round * 100 + u32::try_from(i).unwrap()),
                    )
                    .await
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            let result = task.await.unwrap();
            assert!(
                !matches!(result, Err(AuthnError::Conflict)),
                "round {round}: a guess was lost as a conflict"
            );
            assert!(
                matches!(
                    result,
                    Err(AuthnError::InvalidCredentials | AuthnError::UserLocked { .. })
                ),
                "round {round}: unexpected answer {result:?}"
            );
            answers.push(result);
        }
        let verifications = fleet.hasher.verifies() - before;
        assert!(
            verifications <= limit,
            "round {round}: {verifications} password verifications (limit {limit})"
        );
        let wrong = answers
            .iter()
            .filter(|r| matches!(r, Err(AuthnError::InvalidCredentials)))
            .count();
        assert_eq!(
            wrong, limit,
            "round {round}: every verification but none beyond the limit answered a wrong password"
        );
        let state = fleet
            .replica(round as usize)
            .admin()
            .user(tenant, user)
            .await
            .unwrap();
        assert!(
            state.is_locked_at(fleet.clock.now()),
            "round {round}: the user is locked"
        );
        assert_eq!(
            failures_recorded(fleet, user).await,
            GUESSES,
            "round {round}: every guess is recorded as a failed authentication"
        );

        // The right password now, on any replica, and a wrong one: the
        // same answer, no verification, no change.
        let before = fleet.hasher.verifies();
        let right = fleet
            .replica(round as usize + 1)
            .change_password(
                tenant,
                user,
                &secret(PASSWORD),
                &secret("Attacker-Chosen-456!"),
                &client(round * 100 + 99),
            )
            .await;
        let wrong = fleet
            .replica(round as usize + 2)
            .change_password(
                tenant,
                user,
                &secret("Wrong-Guess-789!"),
                &secret("Attacker-Chosen-456!"),
                &client(round * 100 + 98),
            )
            .await;
        assert!(
            matches!(right, Err(AuthnError::UserLocked { .. })),
            "round {round}: {right:?}"
        );
        assert_eq!(
            looks(&right),
            looks(&wrong),
            "round {round}: the right password stands out"
        );
        assert_eq!(fleet.hasher.verifies(), before, "round {round}");
        assert_eq!(
            credential_updates(fleet, user).await,
            0,
            "round {round}: the password was not changed"
        );
    }
}

async fn user_events(fleet: &Fleet, user: UserId) -> Vec<security::core::StoredEvent> {
    fleet.stores[0]
        .read_stream(
            &StreamId::new(fleet.tenant(), "user", user.as_uuid()),
            StreamQuery::all(),
        )
        .await
        .unwrap()
}

async fn failures_recorded(fleet: &Fleet, user: UserId) -> usize {
    user_events(fleet, user)
        .await
        .iter()
        .filter(|e| &*e.event_type == "AuthenticationFailed")
        .count()
}

async fn credential_updates(fleet: &Fleet, user: UserId) -> usize {
    user_events(fleet, user)
        .await
        .iter()
        .filter(|e| &*e.event_type == "CredentialsUpdated")
        .count()
}
