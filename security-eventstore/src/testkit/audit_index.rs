//! The audit index contract: an [`AuditIndex`] fed by a projection runner
//! over the store answers queries by tenant, subject, actor, kind, outcome
//! and time, in a stable order, one bounded page at a time.

use std::sync::Arc;

use security_core::audit::{AuditCursor, AuditIndex, AuditKind, AuditOutcome, AuditQuery};
use security_core::{
    Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, Projection, ProjectionRunner,
    StoreError, StreamId, UserId,
};
use serde_json::json;
use uuid::Uuid;

use super::{append, at, event_at, tenant};

fn by(actor: &Actor, mut event: NewEvent) -> NewEvent {
    event.metadata = Arc::new(EventMetadata {
        actor: Some(actor.clone()),
        ..EventMetadata::default()
    });
    event
}

fn user() -> UserId {
    UserId::from_uuid(Uuid::now_v7())
}

async fn put(store: &dyn EventStore, stream: &StreamId, events: Vec<NewEvent>) -> u64 {
    store
        .append(append(stream, ExpectedVersion::Any, events))
        .await
        .expect("append")
        .last_position
}

async fn put_range(store: &dyn EventStore, stream: &StreamId, events: Vec<NewEvent>) -> (u64, u64) {
    let result = store
        .append(append(stream, ExpectedVersion::Any, events))
        .await
        .expect("append");
    (result.first_position, result.last_position)
}

/// Every page of a query, followed from cursor to cursor.
async fn all_pages(index: &dyn AuditIndex, query: AuditQuery) -> Vec<(u64, AuditQuery)> {
    let mut out = Vec::new();
    let mut query = query;
    loop {
        let page = index.query(&query).await.expect("query");
        assert!(
            page.entries.len() <= query.limit,
            "a page holds at most its limit"
        );
        out.extend(page.entries.iter().map(|e| (e.position, query.clone())));
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => return out,
        }
    }
}

async fn positions(index: &dyn AuditIndex, query: AuditQuery) -> Vec<u64> {
    all_pages(index, query)
        .await
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

fn invalid(result: &Result<security_core::audit::AuditPage, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::InvalidRequest(_))),
        "audit index: {what} is refused, got {result:?}"
    );
}

/// The audit index contract, on an index fed by `runner` (a runner over
/// `Scope::All` of `store`, from position 0).
pub async fn audit_index<P: Projection>(
    store: Arc<dyn EventStore>,
    index: &dyn AuditIndex,
    runner: &mut ProjectionRunner<P>,
) {
    let clause = "audit index";
    let (a, b) = (tenant(), tenant());
    let (alice, bob) = (user(), user());
    let admin = Actor::user(user());
    let system = Actor::system();
    let alice_stream = StreamId::new(a, "user", alice.as_uuid());
    let bob_decisions = StreamId::new(a, "authz_audit", bob.as_uuid());
    let alice_decisions = StreamId::new(a, "authz_audit", alice.as_uuid());
    let auth_audit = StreamId::new(a, "auth_audit", Uuid::now_v7());
    let orders = StreamId::new(a, "orders", Uuid::now_v7());

    let created = put(
        &*store,
        &alice_stream,
        vec![by(
            &admin,
            event_at(
                "UserCreated",
                json!({"user_id": alice, "username": "alice"}),
                at(0),
            ),
        )],
    )
    .await;
    let (failed, locked) = put_range(
        &*store,
        &alice_stream,
        vec![
            by(
                &system,
                event_at("AuthenticationFailed", json!({"user_id": alice}), at(10)),
            ),
            by(
                &system,
                event_at("UserLocked", json!({"user_id": alice}), at(10)),
            ),
        ],
    )
    .await;
    let denied = put(
        &*store,
        &bob_decisions,
        vec![by(
            &Actor::user(bob),
            event_at("AccessDenied", json!({"user_id": bob}), at(20)),
        )],
    )
    .await;
    let anonymous = put(
        &*store,
        &auth_audit,
        vec![event_at(
            "AuthenticationAttemptFailed",
            json!({"reason": "unknown_user"}),
            at(30),
        )],
    )
    .await;
    // An application's own event: not indexed, even about a user.
    put(
        &*store,
        &orders,
        vec![event_at("OrderPlaced", json!({"user_id": alice}), at(40))],
    )
    .await;
    // The same user id in another tenant.
    let other_tenant = put(
        &*store,
        &StreamId::new(b, "user", alice.as_uuid()),
        vec![event_at(
            "UserAuthenticated",
            json!({"user_id": alice}),
            at(50),
        )],
    )
    .await;
    let grants: Vec<NewEvent> = (0..25)
        .map(|i| {
            by(
                &Actor::user(alice),
                event_at("AccessGranted", json!({"user_id": alice}), at(100 + i)),
            )
        })
        .collect();
    let last = put(&*store, &alice_decisions, grants).await;

    runner.catch_up().await.expect("the index catches up");

    // One user, paged, in position order, nothing else.
    let alice_all = all_pages(index, AuditQuery::tenant(a).subject(alice).limit(10)).await;
    let alice_positions: Vec<u64> = alice_all.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        alice_positions.len(),
        28,
        "{clause}: every event about the user"
    );
    assert!(
        alice_positions.windows(2).all(|w| w[0] < w[1]),
        "{clause}: pages run in position order without repeats"
    );
    assert_eq!(
        alice_positions[0], created,
        "{clause}: from the first event"
    );
    assert_eq!(alice_positions[27], last, "{clause}: to the last one");
    assert!(
        !alice_positions.contains(&other_tenant),
        "{clause}: no other tenant's event"
    );
    let mut newest = positions(
        index,
        AuditQuery::tenant(a).subject(alice).limit(7).newest_first(),
    )
    .await;
    newest.reverse();
    assert_eq!(
        newest, alice_positions,
        "{clause}: newest first is the reverse"
    );

    let page = index
        .query(&AuditQuery::tenant(a).subject(alice).limit(5))
        .await
        .expect("query");
    assert!(
        page.indexed_up_to >= last,
        "{clause}: reports how far it indexed"
    );
    let first = &page.entries[0];
    assert_eq!(
        first.kind,
        AuditKind::Admin,
        "{clause}: UserCreated is admin"
    );
    assert_eq!(first.outcome, AuditOutcome::Success);
    assert_eq!(first.actor.as_ref(), Some(&admin), "{clause}: the actor");
    assert_eq!(first.subject, Some(alice));
    assert_eq!(first.event_type.as_ref(), "UserCreated");
    assert_eq!(first.aggregate_type.as_ref(), "user");
    assert_eq!(first.tenant_id, a);
    assert_eq!(first.username, None, "{clause}: usernames only when asked");

    // Usernames, when asked: known users only.
    let named = index
        .query(
            &AuditQuery::tenant(a)
                .subject(alice)
                .limit(1)
                .with_usernames(),
        )
        .await
        .expect("query");
    assert_eq!(named.entries[0].username.as_deref(), Some("alice"));
    let unnamed = index
        .query(&AuditQuery::tenant(a).subject(bob).with_usernames())
        .await
        .expect("query");
    assert_eq!(unnamed.entries.len(), 1);
    assert_eq!(unnamed.entries[0].username, None, "{clause}: unknown user");

    // Actor, kind, outcome, time.
    let by_system = positions(index, AuditQuery::tenant(a).actor(system.clone())).await;
    assert_eq!(by_system, vec![failed, locked], "{clause}: by actor");
    let denials = positions(
        index,
        AuditQuery::tenant(a)
            .kind(AuditKind::Authorization)
            .outcome(AuditOutcome::Denied),
    )
    .await;
    assert_eq!(denials, vec![denied], "{clause}: by kind and outcome");
    let failures = positions(index, AuditQuery::tenant(a).outcome(AuditOutcome::Failure)).await;
    assert_eq!(
        failures,
        vec![failed, anonymous],
        "{clause}: failures with and without a user"
    );
    let window = positions(index, AuditQuery::tenant(a).between(at(10), at(30))).await;
    assert_eq!(
        window,
        vec![failed, locked, denied],
        "{clause}: [from, until)"
    );
    let authn = positions(
        index,
        AuditQuery::tenant(a)
            .kind(AuditKind::Authentication)
            .subject(alice),
    )
    .await;
    assert_eq!(authn, vec![failed], "{clause}: filters combine");
    assert_eq!(
        positions(index, AuditQuery::tenant(b)).await,
        vec![other_tenant],
        "{clause}: one tenant's entries only"
    );
    assert!(
        positions(index, AuditQuery::tenant(tenant()))
            .await
            .is_empty(),
        "{clause}: an unknown tenant has none"
    );

    // Malformed queries are refused.
    invalid(
        &index.query(&AuditQuery::tenant(a).limit(0)).await,
        "limit 0",
    );
    invalid(
        &index
            .query(&AuditQuery::tenant(a).limit(security_core::audit::MAX_AUDIT_PAGE + 1))
            .await,
        "a page over the maximum",
    );
    invalid(
        &index
            .query(&AuditQuery::tenant(a).between(at(30), at(10)))
            .await,
        "a time range that ends before it starts",
    );

    // A cursor stays valid while new events are indexed: no repeats, no
    // gaps, the new events at the end.
    let first_page = index
        .query(&AuditQuery::tenant(a).subject(alice).limit(20))
        .await
        .expect("query");
    let cursor: AuditCursor = first_page.next.expect("more pages");
    let later = put(
        &*store,
        &alice_stream,
        vec![by(
            &system,
            event_at("UserUnlocked", json!({"user_id": alice}), at(200)),
        )],
    )
    .await;
    runner.catch_up().await.expect("the index catches up");
    let rest = positions(
        index,
        AuditQuery::tenant(a).subject(alice).limit(20).after(cursor),
    )
    .await;
    let mut resumed: Vec<u64> = first_page.entries.iter().map(|e| e.position).collect();
    resumed.extend(rest);
    let mut expected = alice_positions.clone();
    expected.push(later);
    assert_eq!(resumed, expected, "{clause}: paging across new events");

    // A rebuild gives the same answers.
    runner.rebuild().await.expect("rebuild");
    let rebuilt = positions(index, AuditQuery::tenant(a).subject(alice).limit(100)).await;
    assert_eq!(
        rebuilt, expected,
        "{clause}: a rebuild gives the same index"
    );
    let named = index
        .query(
            &AuditQuery::tenant(a)
                .subject(alice)
                .limit(1)
                .with_usernames(),
        )
        .await
        .expect("query");
    assert_eq!(named.entries[0].username.as_deref(), Some("alice"));
}
