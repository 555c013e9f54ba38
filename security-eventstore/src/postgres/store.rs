//! The PostgreSQL event store.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream;
use security_core::chain::{ChainHead, ChainQuery, ChainRecord};
use security_core::limits;
use security_core::{
    AppendRequest, AppendResult, EventId, EventStore, EventStream, ExpectedVersion, GlobalQuery,
    IdempotencyKey, RawEvent, Scope, Snapshot, StoreError, StoredEvent, StreamId, StreamQuery,
    TenantId, Until,
};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgListener, PgPool, PgRow};
use sqlx::{PgConnection, Postgres, Row, Transaction};
use tokio::sync::{OnceCell, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::config::{PostgresConfig, StoreOptions, is_identifier, timeout_setting};
use super::errors::{AllTenantsDenied, Corrupt, db, is_unique_violation};
use crate::error::Error;

/// Events read per step when a subscription catches up.
const SUBSCRIPTION_PAGE: usize = 512;

/// The columns of an event row, in the order [`decode_event`] reads them.
pub(crate) const EVENT_COLUMNS: &str = "e.global_position, e.event_id, e.tenant_id, \
     e.aggregate_type, e.aggregate_id, e.version, e.event_type, e.schema_version, \
     e.occurred_at, e.payload::text, e.metadata::text";

/// The transaction's scope (row-level security) and timeouts, in the
/// statement that opens it.
const SET_SCOPE: &str = "SELECT set_config('app.current_tenant', $1, true), \
     set_config('app.all_tenants', $2, true), set_config('statement_timeout', $3, true), \
     set_config('lock_timeout', $4, true)";

const FIND_IDEMPOTENT: &str = "SELECT aggregate_type, aggregate_id, first_version, last_version, \
     first_position, last_position, event_ids FROM security_idempotency_keys \
     WHERE tenant_id = $1 AND idempotency_key = $2";

const STREAM_VERSION: &str = "SELECT version FROM security_streams \
     WHERE tenant_id = $1 AND aggregate_type = $2 AND aggregate_id = $3";

/// `ExpectedVersion::Any`: create or bump the stream row, waiting for its lock.
const BUMP_ANY: &str = "INSERT INTO security_streams AS s \
     (tenant_id, aggregate_type, aggregate_id, version) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (tenant_id, aggregate_type, aggregate_id) \
     DO UPDATE SET version = s.version + EXCLUDED.version RETURNING version";

/// `ExpectedVersion::NoStream`: create the stream row or find nothing.
const CREATE_STREAM: &str = "INSERT INTO security_streams \
     (tenant_id, aggregate_type, aggregate_id, version) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (tenant_id, aggregate_type, aggregate_id) DO NOTHING RETURNING version";

/// `ExpectedVersion::Exact(n)`: bump the stream row if it is at `n`. After
/// waiting for a concurrent writer's lock the row is checked again, so of
/// writers expecting the same version exactly one matches.
const BUMP_EXACT: &str = "UPDATE security_streams SET version = version + $4 \
     WHERE tenant_id = $1 AND aggregate_type = $2 AND aggregate_id = $3 AND version = $5 \
     RETURNING version";

/// Numbers, chains and writes the events, their outbox rows and the
/// idempotency record in one statement, and queues the notification (sent
/// at commit). The chain links are computed by `security_chain_append`
/// from the content digests (`$15`) once the log head's lock is held (see
/// `0040_hash_chain.sql` for why that reads the tenant's true head). The
/// links are read through a scalar subquery, not a join: a join with
/// `chain` multiplies the planner's row estimates past `jit_above_cost`,
/// and compiling the statement then costs far more than running it.
///
/// The `UPDATE` of the log head takes that row's lock, which this
/// transaction keeps until it commits: see [`PostgresEventStore`] for why.
const INSERT_EVENTS: &str = "WITH head AS ( \
       UPDATE security_log_head SET position = position + $4 WHERE id RETURNING position \
     ), chain AS ( \
       SELECT security_chain_append($1, head.position - $4 + 1, $15::bytea[]) AS links FROM head \
     ), inserted AS ( \
       INSERT INTO security_events (global_position, event_id, tenant_id, aggregate_type, \
         aggregate_id, version, event_type, schema_version, occurred_at, payload, metadata, \
         prev_hash, hash) \
       SELECT head.position - $4 + e.ord, e.event_id, $1, $2, $3, $5 - 1 + e.ord, \
         e.event_type, e.schema_version, e.occurred_at, e.payload::json, e.metadata::json, \
         ((SELECT links FROM chain))[e.ord], ((SELECT links FROM chain))[e.ord + 1] \
       FROM head, unnest($6::uuid[], $7::text[], $8::bigint[], $9::timestamptz[], \
         $10::text[], $11::text[]) WITH ORDINALITY \
         AS e(event_id, event_type, schema_version, occurred_at, payload, metadata, ord) \
       RETURNING global_position \
     ), outboxed AS ( \
       INSERT INTO security_outbox (global_position, tenant_id) \
       SELECT global_position, $1 FROM inserted WHERE $12 \
     ), keyed AS ( \
       INSERT INTO security_idempotency_keys (tenant_id, idempotency_key, aggregate_type, \
         aggregate_id, first_version, last_version, first_position, last_position, event_ids) \
       SELECT $1, $13, $2, $3, $5, $5 - 1 + $4, head.position - $4 + 1, head.position, $6 \
       FROM head WHERE $13::text IS NOT NULL \
     ), notified AS ( \
       SELECT pg_notify($14, head.position::text) FROM head \
     ) \
     SELECT head.position FROM head, notified";

const HEAD: &str = "SELECT position FROM security_log_head";

/// Keeps a snapshot if it names an event of its stream (the event at its
/// version has its position, and happened no later than its time bound),
/// unless a newer one of the same schema version is kept. Answers whether
/// it named an event.
const SAVE_SNAPSHOT: &str = "WITH named AS ( \
       SELECT EXISTS (SELECT 1 FROM security_events e \
         WHERE e.tenant_id = $1 AND e.aggregate_type = $2 AND e.aggregate_id = $3 \
           AND e.version = $5 AND e.global_position = $6 AND e.occurred_at <= $7) AS ok \
     ), saved AS ( \
       INSERT INTO security_snapshots AS s (tenant_id, aggregate_type, aggregate_id, \
         schema_version, version, global_position, occurred_until, state) \
       SELECT $1, $2, $3, $4, $5, $6, $7, $8::json FROM named WHERE named.ok \
       ON CONFLICT (tenant_id, aggregate_type, aggregate_id, schema_version) DO UPDATE \
         SET version = EXCLUDED.version, global_position = EXCLUDED.global_position, \
           occurred_until = EXCLUDED.occurred_until, state = EXCLUDED.state \
         WHERE s.version < EXCLUDED.version \
     ) \
     SELECT ok FROM named";

/// The snapshot of a stream at a schema version, if inside the bound.
const READ_SNAPSHOT: &str = "SELECT version, global_position, occurred_until, state::text \
     FROM security_snapshots \
     WHERE tenant_id = $1 AND aggregate_type = $2 AND aggregate_id = $3 AND schema_version = $4 \
       AND version <= $5 AND global_position <= $6 \
       AND ($7::timestamptz IS NULL OR occurred_until <= $7)";

/// The migrations, embedded in the binary.
#[derive(Debug, Clone, Copy)]
struct Embedded;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "event store",
        include_str!("migrations/0001_event_store.sql"),
    ),
    (
        2,
        "key records",
        include_str!("migrations/0002_key_records.sql"),
    ),
    (
        3,
        "snapshots",
        include_str!("migrations/0003_snapshots.sql"),
    ),
    (
        4,
        "projection dead letters",
        include_str!("migrations/0004_dead_letters.sql"),
    ),
    (
        10,
        "authn shared state",
        include_str!("migrations/0010_authn_shared_state.sql"),
    ),
    (
        40,
        "hash chain",
        include_str!("migrations/0040_hash_chain.sql"),
    ),
    (
        70,
        "audit index",
        include_str!("migrations/0070_audit_index.sql"),
    ),
];

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> BoxFuture<'static, Result<Vec<Migration>, Box<dyn std::error::Error + Send + Sync>>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    pub(crate) options: StoreOptions,
    /// `options.statement_timeout` as the server's setting text.
    statement_timeout: String,
    /// `options.lock_timeout` as the server's setting text.
    lock_timeout: String,
    schema: Option<String>,
    /// The highest position known committed; a wake-up for subscriptions
    /// and relays (local appends and NOTIFY both raise it).
    pub(crate) head: Arc<watch::Sender<u64>>,
    listener: Mutex<Option<JoinHandle<()>>>,
    all_tenants: OnceCell<bool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self
            .listener
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// An event store in PostgreSQL (14 or newer): the whole store contract,
/// a transactional outbox, row-level security per tenant.
///
/// Cloning gives another handle to the same store and pool.
///
/// # Ordered global stream without gaps
///
/// Every append numbers its events by bumping the single row of
/// `security_log_head` (`UPDATE … RETURNING`), in the same statement that
/// inserts them. The row lock this takes is held until the transaction
/// commits, so appends commit in the order of their positions and positions
/// are dense (a rolled-back append gives its numbers back). A reader that
/// sees position `p` committed therefore sees every position below `p`:
/// following `global_position` from a checkpoint never skips an event that
/// commits later. A plain sequence does not give this (a transaction can
/// take 7, another take 8 and commit first, and a reader at 8 never goes
/// back to 7).
///
/// The alternative, numbering freely and reading only below the oldest
/// transaction still running (`pg_snapshot_xmin`), lets appends run in
/// parallel but makes every reader wait for the slowest writer, and cannot
/// tell which positions that writer holds without more bookkeeping. The
/// lock is simpler and its cost is bounded: appends are serialised only
/// from the numbering statement to the commit (one statement and the
/// commit's WAL flush); everything before it (idempotency and version
/// checks, the stream's row lock) runs in parallel. The benchmark
/// (`benches/benches/postgres.rs`, figures in BENCHMARKS.md) measures what this
/// costs against a bare multi-row `INSERT`.
///
/// # Tenant isolation
///
/// Every table holding tenant rows has row-level security, forced also on
/// the owner; the store sets `app.current_tenant` with `set_config(…,
/// true)` at the start of each transaction, so a query that forgot its
/// tenant filter still sees one tenant only. `Scope::All` reads (the
/// application's own projections, the outbox relay) set
/// `app.all_tenants = 'on'` instead, which the policies honour only for
/// members of the tables' owner role: run [`migrate`](Self::migrate) as
/// the role the application connects with (or grant that role the owner's).
/// Superusers and `BYPASSRLS` roles bypass row-level security altogether:
/// do not run the application as one.
///
/// # Failures
///
/// Unique violations on a stream's version are
/// [`StoreError::Conflict`]; lost connections, a server shutting down or
/// restarting, pool timeouts, serialisation failures and deadlocks are
/// [`StoreError::Unavailable`] (retryable: nothing was half-written, as
/// every append is one transaction; retry with the same idempotency key if
/// the commit's outcome is unknown). Everything else is
/// [`StoreError::Backend`]. Driver messages are only ever sources.
///
/// Timestamps are stored as `timestamptz`, at microsecond precision:
/// anything finer is dropped.
#[derive(Debug, Clone)]
pub struct PostgresEventStore {
    pub(crate) shared: Arc<Shared>,
}

/// What one event's columns are bound as.
struct Columns<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i64>,
    occurred: Vec<DateTime<Utc>>,
    payloads: Vec<String>,
    metadata: Vec<String>,
    /// The chain's content digest of each event.
    contents: Vec<Vec<u8>>,
}

impl PostgresEventStore {
    /// Connects with a configuration (see [`PostgresConfig::from_env`]).
    ///
    /// Call [`migrate`](Self::migrate) before the first use.
    pub async fn connect(config: PostgresConfig) -> Result<Self, Error> {
        let options = config.connect_options()?;
        let pool = config
            .pool
            .pool_options()
            .connect_with(options)
            .await
            .map_err(|e| Error::Connect {
                service: "postgresql",
                source: Box::new(e),
            })?;
        let schema = config.schema().map(str::to_owned);
        Ok(Self::build(pool, config.options, schema))
    }

    /// A store on an existing pool, with default options. The tables live
    /// in the pool's `search_path`.
    pub fn from_pool(pool: PgPool) -> Self {
        Self::from_pool_with(pool, StoreOptions::default())
    }

    /// A store on an existing pool.
    pub fn from_pool_with(pool: PgPool, options: StoreOptions) -> Self {
        Self::build(pool, options, None)
    }

    fn build(pool: PgPool, options: StoreOptions, schema: Option<String>) -> Self {
        let (head, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                pool,
                statement_timeout: timeout_setting(options.statement_timeout),
                lock_timeout: timeout_setting(options.lock_timeout),
                options,
                schema,
                head: Arc::new(head),
                listener: Mutex::new(None),
                all_tenants: OnceCell::new(),
            }),
        }
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    /// The options the store runs with.
    pub fn options(&self) -> &StoreOptions {
        &self.shared.options
    }

    /// Creates the schema (if one was configured) and applies the embedded
    /// migrations that have not run yet. Safe to call from several
    /// processes at once (the migrator takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), Error> {
        if let Some(schema) = &self.shared.schema {
            // DDL takes no parameters: the name was checked to be a plain
            // identifier when it was configured.
            debug_assert!(is_identifier(schema));
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&self.shared.pool)
                .await
                .map_err(|e| Error::Migrate(Box::new(e)))?;
        }
        let migrator = Migrator::new(Embedded)
            .await
            .map_err(|e| Error::Migrate(Box::new(e)))?;
        migrator
            .run(&self.shared.pool)
            .await
            .map_err(|e| Error::Migrate(Box::new(e)))
    }

    /// Closes the pool: waits for connections in use to come back.
    pub async fn close(&self) {
        if let Some(task) = self
            .shared
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        self.shared.pool.close().await;
    }

    /// Starts a transaction that sees `scope`'s rows (row-level security).
    pub(crate) async fn begin(
        &self,
        scope: Scope,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        let (tenant, all) = match scope {
            Scope::Tenant(tenant) => (tenant.to_string(), "off"),
            Scope::All => (String::new(), "on"),
        };
        let mut tx = self.shared.pool.begin().await.map_err(db)?;
        sqlx::query(SET_SCOPE)
            .bind(tenant)
            .bind(all)
            .bind(&self.shared.statement_timeout)
            .bind(&self.shared.lock_timeout)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if scope == Scope::All {
            self.check_all_tenants(&mut tx).await?;
        }
        Ok(tx)
    }

    /// Fails unless the store's role may read every tenant's rows (checked
    /// once per store, on `conn`, which has `app.all_tenants` on).
    pub(crate) async fn check_all_tenants(
        &self,
        conn: &mut PgConnection,
    ) -> Result<(), StoreError> {
        let allowed = self
            .shared
            .all_tenants
            .get_or_try_init(|| async {
                sqlx::query_scalar::<_, bool>("SELECT security_all_tenants()")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db)
            })
            .await?;
        if *allowed {
            Ok(())
        } else {
            Err(StoreError::Backend(Box::new(AllTenantsDenied)))
        }
    }

    /// Raises the local head (wakes subscriptions and relays).
    pub(crate) fn saw_position(&self, position: u64) {
        self.shared.head.send_if_modified(|head| {
            if position > *head {
                *head = position;
                true
            } else {
                false
            }
        });
    }

    /// A receiver of head changes, with the LISTEN task started.
    pub(crate) fn watch_head(&self) -> watch::Receiver<u64> {
        self.ensure_listener();
        self.shared.head.subscribe()
    }

    /// Starts (once) the task that turns NOTIFYs from other processes into
    /// head changes.
    fn ensure_listener(&self) {
        let mut slot = self
            .shared
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.shared.pool.clone();
        let channel = self.shared.options.channel().to_owned();
        let head = Arc::clone(&self.shared.head);
        *slot = Some(runtime.spawn(listen(pool, channel, head)));
    }

    async fn try_append(&self, request: &AppendRequest) -> Result<AppendResult, AppendFailure> {
        let stream = &request.stream_id;
        let tenant = stream.tenant_id;
        if request.events.is_empty() {
            // Checked first: a stream row cannot be bumped by nothing.
            return Err(StoreError::InvalidRequest("an append needs at least one event").into());
        }
        let mut tx = self.begin(Scope::Tenant(tenant)).await?;
        if let Some(key) = &request.idempotency_key
            && let Some(original) = find_idempotent(&mut tx, tenant, key).await?
        {
            tx.rollback().await.map_err(db)?;
            return Ok(duplicate_or_replay(original, request)?);
        }
        let count = i64::try_from(request.events.len())
            .map_err(|_| StoreError::InvalidRequest("too many events in one append"))?;
        let last_version = match request.expected {
            ExpectedVersion::Any => Some(
                stream_statement(BUMP_ANY, stream, count)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?,
            ),
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => {
                stream_statement(CREATE_STREAM, stream, count)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
            }
            ExpectedVersion::Exact(expected) => stream_statement(BUMP_EXACT, stream, count)
                .bind(to_i64(expected))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?,
        };
        let Some(last_version) = last_version else {
            let actual = version_in(&mut tx, stream).await?;
            tx.rollback().await.map_err(db)?;
            return Err(StoreError::Conflict {
                stream_id: stream.clone(),
                expected: request.expected,
                actual,
            }
            .into());
        };
        validate(request)?;
        let first_version = last_version - count + 1;
        let columns = Columns::of(request, from_i64(first_version)?)?;
        let inserted = sqlx::query_scalar::<_, i64>(INSERT_EVENTS)
            .bind(tenant.as_uuid())
            .bind(&*stream.aggregate_type)
            .bind(stream.aggregate_id)
            .bind(count)
            .bind(first_version)
            .bind(&columns.ids)
            .bind(&columns.types)
            .bind(&columns.schema_versions)
            .bind(&columns.occurred)
            .bind(&columns.payloads)
            .bind(&columns.metadata)
            .bind(self.shared.options.outbox)
            .bind(request.idempotency_key.as_ref().map(IdempotencyKey::as_str))
            .bind(self.shared.options.channel())
            .bind(&columns.contents)
            .fetch_one(&mut *tx)
            .await;
        let last_position = match inserted {
            Ok(position) => position,
            Err(e) if is_unique_violation(&e, "security_events_event_id_key") => {
                return Err(StoreError::InvalidRequest("an event id is used twice").into());
            }
            Err(e) if is_unique_violation(&e, "security_idempotency_keys_pkey") => {
                return Err(AppendFailure::KeyRace);
            }
            Err(e) if is_unique_violation(&e, "security_events_stream_version_key") => {
                // The stream row's lock makes this unreachable; if a writer
                // bypassed the store, it is still a conflict.
                drop(tx);
                let actual = self.stream_version(stream).await?;
                return Err(StoreError::Conflict {
                    stream_id: stream.clone(),
                    expected: request.expected,
                    actual,
                }
                .into());
            }
            Err(e) => return Err(db(e).into()),
        };
        tx.commit().await.map_err(db)?;
        let last_position = from_i64(last_position)?;
        self.saw_position(last_position);
        Ok(AppendResult {
            stream_id: stream.clone(),
            first_version: from_i64(first_version)?,
            last_version: from_i64(last_version)?,
            first_position: last_position + 1 - request.events.len() as u64,
            last_position,
            event_ids: request.events.iter().map(|e| e.event_id).collect(),
            deduplicated: false,
        })
    }
}

/// Why one attempt at an append did not write.
enum AppendFailure {
    Store(StoreError),
    /// Another append with the same idempotency key committed first.
    KeyRace,
}

impl From<StoreError> for AppendFailure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn stream_statement<'q>(
    sql: &'q str,
    stream: &'q StreamId,
    count: i64,
) -> sqlx::query::QueryScalar<'q, Postgres, i64, sqlx::postgres::PgArguments> {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(stream.tenant_id.as_uuid())
        .bind(&*stream.aggregate_type)
        .bind(stream.aggregate_id)
        .bind(count)
}

async fn version_in(
    tx: &mut Transaction<'static, Postgres>,
    stream: &StreamId,
) -> Result<u64, StoreError> {
    let version = sqlx::query_scalar::<_, i64>(STREAM_VERSION)
        .bind(stream.tenant_id.as_uuid())
        .bind(&*stream.aggregate_type)
        .bind(stream.aggregate_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    version.map_or(Ok(0), from_i64)
}

/// Reads a stream inside a transaction.
async fn stream_in(
    tx: &mut Transaction<'static, Postgres>,
    stream_id: &StreamId,
    query: StreamQuery,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM security_events e \
         WHERE e.tenant_id = $1 AND e.aggregate_type = $2 AND e.aggregate_id = $3 \
           AND e.version >= $4 AND e.version <= $5 AND e.global_position <= $6 \
           AND ($7::timestamptz IS NULL OR e.occurred_at <= $7) \
         ORDER BY e.version LIMIT $8"
    );
    let rows = sqlx::query(&sql)
        .bind(stream_id.tenant_id.as_uuid())
        .bind(&*stream_id.aggregate_type)
        .bind(stream_id.aggregate_id)
        .bind(to_i64(query.from_version))
        .bind(version_bound(query.until))
        .bind(position_bound(query.until))
        .bind(time_bound(query.until))
        .bind(limit(query.limit))
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| decode_event(row, Some(stream_id)))
        .collect()
}

/// Reads a stream's snapshot inside a transaction.
async fn snapshot_in(
    tx: &mut Transaction<'static, Postgres>,
    stream_id: &StreamId,
    schema_version: u32,
    until: Until,
) -> Result<Option<Snapshot>, StoreError> {
    let row = sqlx::query(READ_SNAPSHOT)
        .bind(stream_id.tenant_id.as_uuid())
        .bind(&*stream_id.aggregate_type)
        .bind(stream_id.aggregate_id)
        .bind(i64::from(schema_version))
        .bind(version_bound(until))
        .bind(position_bound(until))
        .bind(time_bound(until))
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let state: &str = row.try_get(3).map_err(db)?;
    // A snapshot that cannot be read is no snapshot: the stream is replayed.
    let Ok(state) = limits::parse_stored_json("snapshot state", state, limits::MAX_SNAPSHOT_BYTES)
    else {
        tracing::warn!(stream = %stream_id, "stored snapshot is unreadable: ignored");
        return Ok(None);
    };
    Ok(Some(Snapshot {
        stream_id: stream_id.clone(),
        version: from_i64(row.try_get(0).map_err(db)?)?,
        global_position: from_i64(row.try_get(1).map_err(db)?)?,
        occurred_until: row.try_get(2).map_err(db)?,
        schema_version,
        state: Arc::new(state),
    }))
}

async fn find_idempotent(
    tx: &mut Transaction<'static, Postgres>,
    tenant: TenantId,
    key: &IdempotencyKey,
) -> Result<Option<AppendResult>, StoreError> {
    let row = sqlx::query(FIND_IDEMPOTENT)
        .bind(tenant.as_uuid())
        .bind(key.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    row.map(|row| decode_idempotent(tenant, &row)).transpose()
}

fn decode_idempotent(tenant: TenantId, row: &PgRow) -> Result<AppendResult, StoreError> {
    let aggregate_type: String = row.try_get(0).map_err(db)?;
    let ids: Vec<Uuid> = row.try_get(6).map_err(db)?;
    Ok(AppendResult {
        stream_id: StreamId::new(
            tenant,
            aggregate_type,
            row.try_get::<Uuid, _>(1).map_err(db)?,
        ),
        first_version: from_i64(row.try_get(2).map_err(db)?)?,
        last_version: from_i64(row.try_get(3).map_err(db)?)?,
        first_position: from_i64(row.try_get(4).map_err(db)?)?,
        last_position: from_i64(row.try_get(5).map_err(db)?)?,
        event_ids: ids.into_iter().map(EventId::from_uuid).collect(),
        deduplicated: false,
    })
}

fn duplicate_or_replay(
    original: AppendResult,
    request: &AppendRequest,
) -> Result<AppendResult, StoreError> {
    if original.stream_id == request.stream_id {
        Ok(AppendResult {
            deduplicated: true,
            ..original
        })
    } else {
        Err(StoreError::DuplicateIdempotencyKey {
            original: Box::new(original),
        })
    }
}

/// The checks the memory store makes, plus what PostgreSQL's `text`
/// cannot hold (NUL).
fn validate(request: &AppendRequest) -> Result<(), StoreError> {
    if request.events.is_empty() {
        return Err(StoreError::InvalidRequest(
            "an append needs at least one event",
        ));
    }
    let aggregate_type = &*request.stream_id.aggregate_type;
    if aggregate_type.is_empty() {
        return Err(StoreError::InvalidRequest("the aggregate type is empty"));
    }
    if aggregate_type.contains('\0') {
        return Err(StoreError::InvalidRequest(
            "the aggregate type holds a NUL character",
        ));
    }
    let mut seen = HashSet::with_capacity(request.events.len());
    for event in &request.events {
        if event.event_type.is_empty() {
            return Err(StoreError::InvalidRequest("an event type is empty"));
        }
        if event.event_type.contains('\0') {
            return Err(StoreError::InvalidRequest(
                "an event type holds a NUL character",
            ));
        }
        if !seen.insert(event.event_id) {
            return Err(StoreError::InvalidRequest("an event id is used twice"));
        }
    }
    Ok(())
}

impl<'a> Columns<'a> {
    fn of(request: &'a AppendRequest, first_version: u64) -> Result<Self, StoreError> {
        let n = request.events.len();
        let mut columns = Columns {
            ids: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            schema_versions: Vec::with_capacity(n),
            occurred: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            contents: Vec::with_capacity(n),
        };
        for event in &request.events {
            columns.ids.push(event.event_id.as_uuid());
            columns.types.push(&event.event_type);
            columns
                .schema_versions
                .push(i64::from(event.schema_version));
            columns.occurred.push(event.occurred_at);
            columns.payloads.push(
                serde_json::to_string(&*event.payload)
                    .map_err(|e| StoreError::Backend(Box::new(e)))?,
            );
            columns.metadata.push(
                serde_json::to_string(&*event.metadata)
                    .map_err(|e| StoreError::Backend(Box::new(e)))?,
            );
        }
        columns.contents = super::chain::content_digests(
            request,
            first_version,
            &columns.payloads,
            &columns.metadata,
        );
        Ok(columns)
    }
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn from_i64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Backend(Box::new(Corrupt("a negative number"))))
}

/// Decodes a row selected with [`EVENT_COLUMNS`]. `stream` is reused when
/// every row belongs to it.
pub(crate) fn decode_event(
    row: &PgRow,
    stream: Option<&StreamId>,
) -> Result<StoredEvent, StoreError> {
    let stream_id = match stream {
        Some(stream) => stream.clone(),
        None => StreamId::new(
            TenantId::from_uuid(row.try_get(2).map_err(db)?),
            row.try_get::<String, _>(3).map_err(db)?,
            row.try_get::<Uuid, _>(4).map_err(db)?,
        ),
    };
    let schema_version = u32::try_from(row.try_get::<i64, _>(7).map_err(db)?)
        .map_err(|_| StoreError::Backend(Box::new(Corrupt("a schema version out of range"))))?;
    let event_type: &str = row.try_get(6).map_err(db)?;
    let payload: &str = row.try_get(9).map_err(db)?;
    let metadata: &str = row.try_get(10).map_err(db)?;
    let raw = RawEvent {
        event_id: EventId::from_uuid(row.try_get(1).map_err(db)?),
        version: from_i64(row.try_get(5).map_err(db)?)?,
        global_position: from_i64(row.try_get(0).map_err(db)?)?,
        event_type,
        schema_version,
        occurred_at: row.try_get(8).map_err(db)?,
        payload,
        metadata,
    };
    let event = StoredEvent::from_raw(raw, stream_id);
    if let Some(reason) = &event.unreadable {
        tracing::warn!(
            position = event.global_position,
            event_type = %event.event_type,
            %reason,
            "stored event is unreadable"
        );
    }
    Ok(event)
}

fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn time_bound(until: Until) -> Option<DateTime<Utc>> {
    match until {
        Until::Time(t) => Some(t),
        _ => None,
    }
}

fn version_bound(until: Until) -> i64 {
    match until {
        Until::Version(v) => to_i64(v),
        _ => i64::MAX,
    }
}

fn position_bound(until: Until) -> i64 {
    match until {
        Until::Position(p) => to_i64(p),
        _ => i64::MAX,
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        // Checked before anything is sent: nothing is written that a
        // reader could not read back.
        limits::check_append(&request)?;
        match self.try_append(&request).await {
            Ok(result) => Ok(result),
            Err(AppendFailure::Store(e)) => Err(e),
            Err(AppendFailure::KeyRace) => {
                let tenant = request.stream_id.tenant_id;
                let Some(key) = &request.idempotency_key else {
                    return Err(StoreError::Backend(Box::new(Corrupt(
                        "an idempotency race without a key",
                    ))));
                };
                match self.idempotent_result(tenant, key).await? {
                    Some(original) => duplicate_or_replay(original, &request),
                    // The winner rolled back after all: try once more.
                    None => match self.try_append(&request).await {
                        Ok(result) => Ok(result),
                        Err(AppendFailure::Store(e)) => Err(e),
                        Err(AppendFailure::KeyRace) => Err(StoreError::Unavailable(Box::new(
                            Corrupt("idempotency key contention"),
                        ))),
                    },
                }
            }
        }
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        query: StreamQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut tx = self.begin(Scope::Tenant(stream_id.tenant_id)).await?;
        let events = stream_in(&mut tx, stream_id, query).await?;
        tx.commit().await.map_err(db)?;
        Ok(events)
    }

    async fn read_global(
        &self,
        scope: Scope,
        query: GlobalQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if matches!(query.until, Until::Version(_)) {
            return Err(StoreError::InvalidRequest(
                "a version bound only applies to a stream read",
            ));
        }
        let tenant = match scope {
            Scope::Tenant(tenant) => Some(tenant.as_uuid()),
            Scope::All => None,
        };
        // One statement for both scopes: `$1 IS NULL` is decided before
        // the plan runs, and row-level security applies either way.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM security_events e \
             WHERE ($1::uuid IS NULL OR e.tenant_id = $1) \
               AND e.global_position > $2 AND e.global_position <= $3 \
               AND ($4::timestamptz IS NULL OR e.occurred_at <= $4) \
             ORDER BY e.global_position LIMIT $5"
        );
        let mut tx = self.begin(scope).await?;
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(to_i64(query.after))
            .bind(position_bound(query.until))
            .bind(time_bound(query.until))
            .bind(limit(query.limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(|row| decode_event(row, None)).collect()
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError> {
        let mut tx = self.begin(Scope::Tenant(stream_id.tenant_id)).await?;
        let version = version_in(&mut tx, stream_id).await?;
        tx.commit().await.map_err(db)?;
        Ok(version)
    }

    async fn idempotent_result(
        &self,
        tenant_id: TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<AppendResult>, StoreError> {
        let mut tx = self.begin(Scope::Tenant(tenant_id)).await?;
        let result = find_idempotent(&mut tx, tenant_id, key).await?;
        tx.commit().await.map_err(db)?;
        Ok(result)
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        let head = sqlx::query_scalar::<_, i64>(HEAD)
            .fetch_one(&self.shared.pool)
            .await
            .map_err(db)?;
        from_i64(head)
    }

    async fn read_chain(
        &self,
        tenant_id: TenantId,
        query: ChainQuery,
    ) -> Result<Vec<ChainRecord>, StoreError> {
        self.chain_records(tenant_id, query).await
    }

    async fn chain_head(&self, tenant_id: TenantId) -> Result<Option<ChainHead>, StoreError> {
        self.recorded_head(tenant_id).await
    }

    async fn chain_heads(&self) -> Result<Vec<(TenantId, ChainHead)>, StoreError> {
        self.recorded_heads().await
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        limits::check_snapshot(snapshot)?;
        let stream = &snapshot.stream_id;
        let state = serde_json::to_string(&*snapshot.state)
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let mut tx = self.begin(Scope::Tenant(stream.tenant_id)).await?;
        let named = sqlx::query_scalar::<_, bool>(SAVE_SNAPSHOT)
            .bind(stream.tenant_id.as_uuid())
            .bind(&*stream.aggregate_type)
            .bind(stream.aggregate_id)
            .bind(i64::from(snapshot.schema_version))
            .bind(to_i64(snapshot.version))
            .bind(to_i64(snapshot.global_position))
            .bind(snapshot.occurred_until)
            .bind(state)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        if named {
            Ok(())
        } else {
            Err(StoreError::InvalidRequest(
                "a snapshot must name an event of its stream by version and position",
            ))
        }
    }

    async fn read_snapshot(
        &self,
        stream_id: &StreamId,
        schema_version: u32,
        until: Until,
    ) -> Result<Option<Snapshot>, StoreError> {
        let mut tx = self.begin(Scope::Tenant(stream_id.tenant_id)).await?;
        let snapshot = snapshot_in(&mut tx, stream_id, schema_version, until).await?;
        tx.commit().await.map_err(db)?;
        Ok(snapshot)
    }

    /// One transaction: the snapshot, then the events after it.
    async fn read_stream_from_snapshot(
        &self,
        stream_id: &StreamId,
        schema_version: u32,
        query: StreamQuery,
    ) -> Result<(Option<Snapshot>, Vec<StoredEvent>), StoreError> {
        let mut tx = self.begin(Scope::Tenant(stream_id.tenant_id)).await?;
        let snapshot = snapshot_in(&mut tx, stream_id, schema_version, query.until).await?;
        let from_version = snapshot.as_ref().map_or(query.from_version, |s| {
            query.from_version.max(s.version + 1)
        });
        let events = stream_in(
            &mut tx,
            stream_id,
            StreamQuery {
                from_version,
                ..query
            },
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok((snapshot, events))
    }

    fn subscribe(&self, scope: Scope, after: u64) -> EventStream {
        let state = Subscription {
            store: self.clone(),
            head: None,
            scope,
            position: after,
            buffer: VecDeque::new(),
            failing: false,
        };
        Box::pin(stream::unfold(state, |mut sub| async move {
            loop {
                if let Some(event) = sub.buffer.pop_front() {
                    sub.position = event.global_position;
                    return Some((Ok(event), sub));
                }
                if sub.failing {
                    tokio::time::sleep(sub.store.shared.options.poll_interval).await;
                }
                let head = sub.head.get_or_insert_with(|| sub.store.watch_head());
                // Mark the head seen before reading, so an append that
                // lands after the read wakes us up.
                head.borrow_and_update();
                let page = sub
                    .store
                    .read_global(
                        sub.scope,
                        GlobalQuery::after(sub.position, SUBSCRIPTION_PAGE),
                    )
                    .await;
                match page {
                    Ok(events) if events.is_empty() => {
                        sub.failing = false;
                        let poll = sub.store.shared.options.poll_interval;
                        if let Some(head) = sub.head.as_mut() {
                            // A notification or the poll interval, whichever first.
                            let _ = tokio::time::timeout(poll, head.changed()).await;
                        }
                    }
                    Ok(events) => {
                        sub.failing = false;
                        sub.buffer.extend(events);
                    }
                    Err(error) => {
                        sub.failing = true;
                        return Some((Err(error), sub));
                    }
                }
            }
        }))
    }
}

struct Subscription {
    store: PostgresEventStore,
    head: Option<watch::Receiver<u64>>,
    scope: Scope,
    position: u64,
    buffer: VecDeque<StoredEvent>,
    failing: bool,
}

/// Turns NOTIFYs on `channel` into head changes, reconnecting for ever.
async fn listen(pool: PgPool, channel: String, head: Arc<watch::Sender<u64>>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if let Ok(mut listener) = PgListener::connect_with(&pool).await
            && listener.listen(&channel).await.is_ok()
        {
            backoff = Duration::from_millis(100);
            // Notifications may have been missed while disconnected.
            head.send_modify(|_| {});
            loop {
                match listener.try_recv().await {
                    Ok(Some(note)) => {
                        let position = note.payload().parse::<u64>().unwrap_or(0);
                        head.send_if_modified(|h| {
                            if position > *h {
                                *h = position;
                                true
                            } else {
                                false
                            }
                        });
                    }
                    // The connection was lost: wake everyone, reconnect.
                    // (`try_recv` reconnects and listens again by itself.)
                    Ok(None) => head.send_modify(|_| {}),
                    Err(error) => {
                        tracing::debug!(%error, "event notification listener lost its connection");
                        break;
                    }
                }
            }
        }
        if pool.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
