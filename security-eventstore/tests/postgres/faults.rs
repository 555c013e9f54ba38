//! Every failure that means "try again", provoked for real against the
//! server: each comes back as a retryable `StoreError::Unavailable`
//! (carrying the server's SQLSTATE as its source, never in its message),
//! in bounded time, with nothing written.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use security_core::{EventStore, ExpectedVersion, StoreError, StreamId, TenantId};
use security_eventstore::{PostgresEventStore, StoreOptions, testkit};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::common::{TestDb, database_url};

/// The SQLSTATE a retryable store error carries in its source, if any.
fn sqlstate(error: &StoreError) -> Option<String> {
    let StoreError::Unavailable(source) = error else {
        return None;
    };
    source
        .downcast_ref::<sqlx::Error>()?
        .as_database_error()?
        .code()
        .map(std::borrow::Cow::into_owned)
}

fn assert_retryable(error: &StoreError, state: Option<&str>, what: &str) {
    assert!(
        matches!(error, StoreError::Unavailable(_)) && error.is_retryable(),
        "{what}: expected a retryable Unavailable, got {error:?}"
    );
    assert_eq!(
        error.to_string(),
        "event store unavailable",
        "{what}: no driver text"
    );
    if let Some(state) = state {
        assert_eq!(sqlstate(error).as_deref(), Some(state), "{what}: {error:?}");
    }
}

/// A stream at version 1 in a fresh tenant.
async fn stream_at_one(store: &dyn EventStore) -> StreamId {
    let s = testkit::stream(testkit::tenant(), "fault");
    store
        .append(testkit::append(
            &s,
            ExpectedVersion::NoStream,
            testkit::events(1),
        ))
        .await
        .unwrap();
    s
}

/// Waits until `n` sessions of the test's role wait on a lock.
async fn sessions_waiting(db: &TestDb, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&db.name)
        .fetch_one(&db.admin)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no session of the role waits on a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Another session holds the log head's row lock until rolled back.
async fn hold_log_head(db: &TestDb) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = db.admin.begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT position FROM \"{}\".security_log_head FOR UPDATE",
        db.name
    ))
    .execute(&mut *holder)
    .await
    .unwrap();
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_too_long_is_a_retryable_lock_timeout() {
    let options = StoreOptions::default().with_lock_timeout(Some(Duration::from_millis(200)));
    let db = TestDb::with_options(options, 4).await;
    let s = stream_at_one(&db.store).await;
    let holder = hold_log_head(&db).await;
    let started = Instant::now();
    let error = db
        .store
        .append(testkit::append(
            &s,
            ExpectedVersion::Exact(1),
            testkit::events(1),
        ))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the lock timeout"
    );
    assert_retryable(&error, Some("55P03"), "lock timeout");
    holder.rollback().await.unwrap();
    assert_eq!(
        db.store.stream_version(&s).await.unwrap(),
        1,
        "nothing written"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_running_too_long_is_a_retryable_statement_timeout() {
    let options = StoreOptions::default()
        .with_lock_timeout(None)
        .with_statement_timeout(Some(Duration::from_millis(300)));
    let db = TestDb::with_options(options, 4).await;
    let s = stream_at_one(&db.store).await;
    let holder = hold_log_head(&db).await;
    let started = Instant::now();
    let error = db
        .store
        .append(testkit::append(
            &s,
            ExpectedVersion::Any,
            testkit::events(1),
        ))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the statement timeout"
    );
    assert_retryable(&error, Some("57014"), "statement timeout");
    holder.rollback().await.unwrap();
    assert_eq!(
        db.store.stream_version(&s).await.unwrap(),
        1,
        "nothing written"
    );
    // Reads are bounded too, and the store keeps working afterwards.
    db.store
        .append(testkit::append(
            &s,
            ExpectedVersion::Exact(1),
            testkit::events(1),
        ))
        .await
        .unwrap();
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serialization_failure_is_retryable() {
    let db = TestDb::new().await;
    let s = stream_at_one(&db.store).await;
    // A store whose transactions run SERIALIZABLE (as a server
    // configured so would run them): a row changed by a transaction that
    // committed after its snapshot cannot be updated.
    let options = PgConnectOptions::from_str(&database_url())
        .unwrap()
        .username(&db.name)
        .options([
            ("search_path", db.name.as_str()),
            ("default_transaction_isolation", "serializable"),
        ]);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let strict = PostgresEventStore::from_pool(pool);
    let mut holder = db.admin.begin().await.unwrap();
    sqlx::query(&format!(
        "UPDATE \"{}\".security_streams SET version = version WHERE aggregate_id = $1",
        db.name
    ))
    .bind(s.aggregate_id)
    .execute(&mut *holder)
    .await
    .unwrap();
    let append = {
        let (strict, s) = (strict.clone(), s.clone());
        tokio::spawn(async move {
            strict
                .append(testkit::append(
                    &s,
                    ExpectedVersion::Any,
                    testkit::events(1),
                ))
                .await
        })
    };
    sessions_waiting(&db, 1).await;
    holder.commit().await.unwrap();
    let error = append.await.unwrap().unwrap_err();
    assert_retryable(&error, Some("40001"), "serialization failure");
    assert_eq!(
        db.store.stream_version(&s).await.unwrap(),
        1,
        "nothing written"
    );
    strict.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_between_two_appends_is_retryable_for_its_victim() {
    let db = TestDb::with_options(StoreOptions::default().with_lock_timeout(None), 6).await;
    let tenant = testkit::tenant();
    let first = StreamId::new(tenant, "fault", uuid::Uuid::now_v7());
    let second = StreamId::new(tenant, "fault", uuid::Uuid::now_v7());
    for s in [&first, &second] {
        db.store
            .append(testkit::append(
                s,
                ExpectedVersion::NoStream,
                testkit::events(1),
            ))
            .await
            .unwrap();
    }
    // An append of a `Deadlock` event, once numbered (holding its stream's
    // row and the log head), waits for the test, then locks the row of the
    // stream its payload names: the other append holds that row and waits
    // for the log head. PostgreSQL breaks the cycle by failing one.
    let key = i64::from(u32::from_le_bytes(
        first.aggregate_id.as_bytes()[12..16].try_into().unwrap(),
    ));
    let name = &db.name;
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION \"{name}\".cross_lock() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF NEW.event_type = 'Deadlock' THEN \
             PERFORM pg_advisory_lock_shared({key}); \
             PERFORM pg_advisory_unlock_shared({key}); \
             PERFORM 1 FROM \"{name}\".security_streams \
               WHERE aggregate_id = (NEW.payload->>'other')::uuid FOR UPDATE; \
           END IF; \
           RETURN NEW; \
         END $$; \
         CREATE TRIGGER cross_lock BEFORE INSERT ON \"{name}\".security_events \
           FOR EACH ROW EXECUTE FUNCTION \"{name}\".cross_lock();"
    ))
    .execute(&db.admin)
    .await
    .unwrap();
    let mut gate = db.admin.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut *gate)
        .await
        .unwrap();
    let store = db.store_arc();
    let crossing = {
        let (store, first) = (Arc::clone(&store), first.clone());
        let other = second.aggregate_id.to_string();
        tokio::spawn(async move {
            let event = testkit::event("Deadlock", serde_json::json!({ "other": other }));
            store
                .append(testkit::append(
                    &first,
                    ExpectedVersion::Exact(1),
                    vec![event],
                ))
                .await
        })
    };
    sessions_waiting(&db, 1).await;
    let plain = {
        let (store, second) = (Arc::clone(&store), second.clone());
        tokio::spawn(async move {
            store
                .append(testkit::append(
                    &second,
                    ExpectedVersion::Exact(1),
                    testkit::events(1),
                ))
                .await
        })
    };
    sessions_waiting(&db, 2).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *gate)
        .await
        .unwrap();
    let outcomes = [crossing.await.unwrap(), plain.await.unwrap()];
    let victims: Vec<&StoreError> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(
        victims.len(),
        1,
        "one append is the deadlock's victim: {outcomes:?}"
    );
    assert_retryable(victims[0], Some("40P01"), "deadlock");
    let versions = (
        db.store.stream_version(&first).await.unwrap(),
        db.store.stream_version(&second).await.unwrap(),
    );
    assert_eq!(
        versions.0 + versions.1,
        3,
        "the victim wrote nothing, the other one landed"
    );
    drop(gate);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_backend_is_retryable_and_the_store_reconnects() {
    let db = TestDb::with_options(StoreOptions::default().with_lock_timeout(None), 4).await;
    let s = stream_at_one(&db.store).await;
    let holder = hold_log_head(&db).await;
    let append = {
        let (store, s) = (db.store.clone(), s.clone());
        tokio::spawn(async move {
            store
                .append(testkit::append(
                    &s,
                    ExpectedVersion::Exact(1),
                    testkit::events(1),
                ))
                .await
        })
    };
    sessions_waiting(&db, 1).await;
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE usename = $1 AND wait_event_type = 'Lock') t",
    )
    .bind(&db.name)
    .fetch_one(&db.admin)
    .await
    .unwrap();
    assert_eq!(terminated, 1);
    let error = append.await.unwrap().unwrap_err();
    // The server says 57P01 before closing; the driver may see the close
    // first. Either way it is a retryable outage.
    assert_retryable(&error, None, "terminated backend");
    if let Some(state) = sqlstate(&error) {
        assert_eq!(state, "57P01");
    }
    holder.rollback().await.unwrap();
    db.store
        .append(testkit::append(
            &s,
            ExpectedVersion::Exact(1),
            testkit::events(1),
        ))
        .await
        .expect("the pool replaces the lost connection");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_is_a_retryable_acquire_timeout() {
    let db = TestDb::new().await;
    let options = PgConnectOptions::from_str(&database_url())
        .unwrap()
        .username(&db.name)
        .options([("search_path", db.name.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect_with(options)
        .await
        .unwrap();
    let store = PostgresEventStore::from_pool(pool.clone());
    let held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let error = store
        .read_global(
            security_core::Scope::Tenant(TenantId::SYSTEM),
            security_core::GlobalQuery::after(0, 1),
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_retryable(&error, None, "acquire timeout");
    assert!(matches!(
        error,
        StoreError::Unavailable(ref source)
            if matches!(source.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::PoolTimedOut))
    ));
    drop(held);
    store.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_accepts_and_closes_at_once_is_retryable() {
    // What a proxy or balancer in front of a failing-over server does: the
    // connection is accepted, then closed before the server's first reply.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let closer = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let options =
        PgConnectOptions::from_str(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
            .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options);
    let store = PostgresEventStore::from_pool(pool);
    let started = Instant::now();
    let error = store
        .read_global(
            security_core::Scope::Tenant(TenantId::SYSTEM),
            security_core::GlobalQuery::after(0, 1),
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_retryable(&error, None, "connection closed by the peer");
    closer.abort();
    store.close().await;
}
