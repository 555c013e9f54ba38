//! Anchors, exports and the offline verifier, on the memory store: the
//! anchorer signs each tenant's head once per interval even with several
//! replicas, anchors are published, an export verifies offline with the
//! operator's public key alone, and each kind of damage to the file is
//! named.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use security_core::chain::{
    AnchorLog, BreakKind, ChainHash, ChainRange, ChainRecord, verify_chain,
};
use security_core::{
    AccountClaims, AccountId, Actor, AdminService, Clock, EventStore, KeyStore, ManualClock,
    NewPolicy, OperatorId, Repository, Request, SequentialIds, TenantId,
};
use security_crypto::{Ed25519PublicKey, MemoryKeyStore, NkeyKind, NkeyPair};
use security_eventstore::audit::{
    AnchorConfig, AnchorOutcome, AnchorVerdict, ChainAnchorer, ExportLine, export_tenant,
    parse_operator_key, verify_export,
};
use security_eventstore::{MemoryEventStore, MemoryPublisher};

struct Fixture {
    store: MemoryEventStore,
    publisher: MemoryPublisher,
    clock: Arc<ManualClock>,
    keys: Arc<dyn KeyStore>,
    repository: Repository,
    admin: AdminService,
    operator: OperatorId,
    account: AccountId,
}

impl Fixture {
    async fn new() -> Self {
        let store = MemoryEventStore::new();
        let publisher = MemoryPublisher::new();
        let clock = Arc::new(ManualClock::new(
            Utc.timestamp_opt(1_767_225_600, 0).single().unwrap(),
        ));
        let ids = Arc::new(SequentialIds::new());
        let keys: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::with_clock_and_ids(
            clock.clone(),
            ids.clone(),
        ));
        let repository = Repository::new(Arc::new(store.clone()), ids)
            .with_publisher(Arc::new(publisher.clone()));
        let admin = AdminService::new(repository.clone(), clock.clone(), Arc::clone(&keys));
        let request = Request::by(Actor::service("test"));
        let operator = admin.create_operator(&request, "Operator").await.unwrap();
        let account = admin
            .create_account(&request, operator, "Bank", AccountClaims::default())
            .await
            .unwrap();
        let fixture = Self {
            store,
            publisher,
            clock,
            keys,
            repository,
            admin,
            operator,
            account,
        };
        fixture.activity(5).await;
        fixture
    }

    fn tenant(&self) -> TenantId {
        self.account.tenant()
    }

    /// `n` more events in the account's tenant.
    async fn activity(&self, n: usize) {
        let request = Request::by(Actor::service("test"));
        for i in 0..n {
            self.admin
                .create_policy(
                    &request,
                    self.tenant(),
                    NewPolicy::new(format!("policy-{i}-{}", self.store.len())).description("test"),
                )
                .await
                .unwrap();
        }
    }

    fn anchorer(&self, interval: Duration) -> ChainAnchorer {
        let clock: Arc<dyn Clock> = self.clock.clone();
        ChainAnchorer::new(
            self.repository.clone(),
            Arc::clone(&self.keys),
            clock,
            AnchorConfig::new(self.operator).with_interval(interval),
        )
    }

    /// The operator's active public key, as the verifier takes it.
    async fn operator_key(&self) -> Ed25519PublicKey {
        let operator = self.admin.operator(self.operator).await.unwrap();
        let key = operator.active_key().unwrap();
        parse_operator_key(&key.public_key.encoded).unwrap()
    }

    async fn export(&self) -> String {
        let mut out = Vec::new();
        export_tenant(
            &self.store,
            self.tenant(),
            self.operator,
            self.clock.now(),
            &mut out,
        )
        .await
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    async fn anchors(&self, tenant: TenantId) -> u64 {
        self.repository
            .load::<AnchorLog>(TenantId::SYSTEM, tenant.as_uuid())
            .await
            .unwrap()
            .state
            .count
    }
}

fn lines(text: &str) -> Vec<ExportLine> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn join(lines: &[ExportLine]) -> String {
    lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap() + "\n")
        .collect()
}

#[tokio::test]
async fn the_anchorer_signs_each_head_once_per_interval_and_publishes_it() {
    let f = Fixture::new().await;
    let anchorer = f.anchorer(Duration::from_secs(60));
    let round = anchorer.anchor_all().await.unwrap();
    assert_eq!(round.failed, 0);
    assert!(
        round.anchored >= 2,
        "the system tenant and the account: {round:?}"
    );
    assert_eq!(f.anchors(f.tenant()).await, 1);
    assert_eq!(f.anchors(TenantId::SYSTEM).await, 1);
    let published: Vec<_> = f
        .publisher
        .published()
        .into_iter()
        .filter(|e| &*e.event_type == "ChainAnchored")
        .collect();
    assert_eq!(
        published.len() as u64,
        round.anchored,
        "every anchor is published"
    );

    // Nothing new: nothing to anchor, even when due.
    f.clock.advance(chrono::Duration::seconds(120));
    assert_eq!(
        anchorer.anchor_tenant(f.tenant()).await.unwrap(),
        AnchorOutcome::UpToDate
    );
    // The system tenant moved only by its own anchors.
    assert_eq!(
        anchorer.anchor_tenant(TenantId::SYSTEM).await.unwrap(),
        AnchorOutcome::UpToDate
    );
    // New events, but the last anchor is younger than the interval.
    f.activity(2).await;
    f.clock.advance(chrono::Duration::seconds(-90));
    assert_eq!(
        anchorer.anchor_tenant(f.tenant()).await.unwrap(),
        AnchorOutcome::NotDue
    );
    f.clock.advance(chrono::Duration::seconds(90));
    let head = f.store.chain_head(f.tenant()).await.unwrap().unwrap();
    assert_eq!(
        anchorer.anchor_tenant(f.tenant()).await.unwrap(),
        AnchorOutcome::Anchored(head)
    );
    // The anchor log's own stream is chained too.
    let report = verify_chain(&f.store, TenantId::SYSTEM, ChainRange::ALL)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_anchoring_at_once_record_one_anchor_per_tenant() {
    let f = Fixture::new().await;
    for round in 0..5_u64 {
        f.activity(3).await;
        f.clock.advance(chrono::Duration::seconds(61));
        let replicas: Vec<_> = (0..3)
            .map(|_| f.anchorer(Duration::from_secs(60)))
            .collect();
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let tasks: Vec<_> = replicas
            .into_iter()
            .map(|anchorer| {
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    anchorer.anchor_all().await.unwrap()
                })
            })
            .collect();
        let mut anchored = 0;
        for task in tasks {
            let outcome = task.await.unwrap();
            assert_eq!(outcome.failed, 0);
            anchored += outcome.anchored;
        }
        assert!(anchored >= 1, "round {round}: someone anchored");
        assert_eq!(
            f.anchors(f.tenant()).await,
            round + 1,
            "round {round}: one anchor of the account, not one per replica"
        );
    }
    let text = f.export().await;
    let verification = verify_export(text.as_bytes(), &[f.operator_key().await]).unwrap();
    assert!(verification.is_valid(), "{verification:?}");
    assert_eq!(verification.anchors.len(), 5);
}

#[tokio::test]
async fn the_supervised_task_anchors_until_stopped() {
    let f = Fixture::new().await;
    let task = f.anchorer(Duration::from_millis(20)).spawn();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.anchors(f.tenant()).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no anchor was made");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let round = task.stop().await;
    assert!(round.anchored >= 1, "{round:?}");
}

#[tokio::test]
async fn an_export_verifies_offline_and_every_kind_of_damage_is_named() {
    let f = Fixture::new().await;
    let anchorer = f.anchorer(Duration::from_secs(1));
    anchorer.anchor_all().await.unwrap();
    f.activity(4).await;
    f.clock.advance(chrono::Duration::seconds(5));
    anchorer.anchor_all().await.unwrap();
    f.activity(1).await;
    let key = f.operator_key().await;
    let text = f.export().await;
    let good = verify_export(text.as_bytes(), &[key]).unwrap();
    assert!(good.is_valid(), "{good:?}");
    assert_eq!(good.anchors.len(), 2);
    let events = f
        .store
        .read_global(
            security_core::Scope::Tenant(f.tenant()),
            security_core::GlobalQuery::after(0, usize::MAX),
        )
        .await
        .unwrap();
    assert_eq!(good.chain.checked, events.len() as u64);
    assert!(good.anchored_up_to().unwrap() < good.head.unwrap().position);

    let original = lines(&text);
    let event_line = |n: usize| {
        original
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, ExportLine::Event(_)))
            .nth(n)
            .map(|(i, _)| i)
            .unwrap()
    };
    let anchor_line = original
        .iter()
        .position(|l| matches!(l, ExportLine::Anchor(_)))
        .unwrap();

    // A payload changed: the break names its line.
    let mut damaged = original.clone();
    let at = event_line(3);
    if let ExportLine::Event(record) = &mut damaged[at] {
        record.payload = Arc::from(record.payload.replace("test", "tset"));
    }
    let v = verify_export(join(&damaged).as_bytes(), &[key]).unwrap();
    let b = v.first_break().unwrap();
    assert_eq!((b.locator, b.kind), (at as u64 + 1, BreakKind::Altered));
    assert!(!v.is_valid());

    // A line removed.
    let mut damaged = original.clone();
    let at = event_line(6);
    damaged.remove(at);
    let v = verify_export(join(&damaged).as_bytes(), &[key]).unwrap();
    let b = v.first_break().unwrap();
    assert_eq!((b.locator, b.kind), (at as u64 + 1, BreakKind::Missing));

    // The last lines cut off.
    let mut damaged = original.clone();
    damaged.truncate(damaged.len() - 2);
    let v = verify_export(join(&damaged).as_bytes(), &[key]).unwrap();
    assert_eq!(v.first_break().unwrap().kind, BreakKind::Truncated);

    // The whole chain rewritten with correct hashes (and a matching
    // header): only the anchors tell.
    let mut damaged = original.clone();
    let mut prev = ChainHash::GENESIS;
    let mut last = None;
    for line in &mut damaged {
        if let ExportLine::Event(record) = line {
            record.payload = Arc::from(record.payload.replace("test", "tset"));
            record.prev_hash = prev;
            record.hash = record.computed_hash();
            prev = record.hash;
            last = Some(record.as_head());
        }
    }
    if let ExportLine::Header(header) = &mut damaged[0] {
        header.head = last;
    }
    let v = verify_export(join(&damaged).as_bytes(), &[key]).unwrap();
    assert!(v.chain.is_intact());
    assert_eq!(
        v.first_bad_anchor().map(|a| (a.line, a.verdict)),
        Some((anchor_line as u64 + 1, AnchorVerdict::NotOnChain))
    );
    assert!(!v.is_valid());

    // The anchors removed as well: nothing signs the chain any more.
    let unanchored: Vec<_> = damaged
        .into_iter()
        .filter(|l| !matches!(l, ExportLine::Anchor(_)))
        .collect();
    let v = verify_export(join(&unanchored).as_bytes(), &[key]).unwrap();
    assert!(v.chain.is_intact() && v.anchored_up_to().is_none() && !v.is_valid());

    // An anchor's signature altered.
    let mut damaged = original.clone();
    if let ExportLine::Anchor(anchor) = &mut damaged[anchor_line] {
        anchor.statement.head.position -= 1;
    }
    let v = verify_export(join(&damaged).as_bytes(), &[key]).unwrap();
    assert_eq!(
        v.first_bad_anchor().map(|a| a.verdict),
        Some(AnchorVerdict::BadSignature)
    );

    // Verified against another operator's key.
    let stranger = NkeyPair::generate(NkeyKind::Operator).unwrap();
    let stranger = parse_operator_key(stranger.public_key()).unwrap();
    let v = verify_export(text.as_bytes(), &[stranger]).unwrap();
    assert_eq!(
        v.first_bad_anchor().map(|a| a.verdict),
        Some(AnchorVerdict::UntrustedKey)
    );

    // The key listed as revoked before the anchors were signed.
    let mut damaged = original.clone();
    for line in &mut damaged {
        if let ExportLine::OperatorKey(k) = line {
            k.revoked_at = Some(k.created_at);
        }
    }
    let v = verify_export(join(&damaged).as_bytes(), &[key]).unwrap();
    assert_eq!(
        v.first_bad_anchor().map(|a| a.verdict),
        Some(AnchorVerdict::KeyNotValidThen)
    );

    // Not an export.
    assert!(verify_export("hello\n".as_bytes(), &[key]).is_err());
    let no_header = join(&original[1..]);
    assert!(verify_export(no_header.as_bytes(), &[key]).is_err());
}

#[tokio::test]
async fn anchors_stay_valid_after_their_key_is_rotated_and_revoked() {
    let f = Fixture::new().await;
    let anchorer = f.anchorer(Duration::from_secs(1));
    anchorer.anchor_all().await.unwrap();
    let first_key = f.operator_key().await;
    let old = f
        .admin
        .operator(f.operator)
        .await
        .unwrap()
        .active_key_id
        .unwrap();
    f.clock.advance(chrono::Duration::seconds(10));
    let request = Request::by(Actor::service("test"));
    f.admin
        .revoke_operator_key(&request, f.operator, old, "scheduled rotation")
        .await
        .unwrap();
    f.activity(2).await;
    f.clock.advance(chrono::Duration::seconds(10));
    let round = anchorer.anchor_all().await.unwrap();
    assert_eq!(round.failed, 0, "the successor key signs");
    let second_key = f.operator_key().await;
    let text = f.export().await;
    let v = verify_export(text.as_bytes(), &[first_key, second_key]).unwrap();
    assert!(v.is_valid(), "{v:?}");
    // Trusting only the revoked key: the newer anchor is not trusted.
    let v = verify_export(text.as_bytes(), &[first_key]).unwrap();
    assert_eq!(
        v.anchors.iter().map(|a| a.verdict).collect::<Vec<_>>(),
        vec![AnchorVerdict::Valid, AnchorVerdict::UntrustedKey]
    );
}

#[tokio::test]
async fn shredding_a_subject_keeps_its_chain_verifiable() {
    let f = Fixture::new().await;
    let owner = security_core::KeyOwner::new(f.tenant(), uuid::Uuid::from_u128(77));
    let sealed = f.keys.seal(owner, b"a secret").await.unwrap();
    let stream = security_core::StreamId::new(f.tenant(), "subject", uuid::Uuid::from_u128(77));
    f.store
        .append(security_core::AppendRequest {
            stream_id: stream,
            expected: security_core::ExpectedVersion::NoStream,
            events: vec![security_core::NewEvent {
                event_id: security_core::EventId::from_uuid(uuid::Uuid::now_v7()),
                event_type: Arc::from("SubjectRecorded"),
                schema_version: 1,
                occurred_at: f.clock.now(),
                payload: Arc::new(serde_json::json!({ "secret": sealed })),
                metadata: Arc::default(),
            }],
            idempotency_key: None,
        })
        .await
        .unwrap();
    let before: Vec<ChainRecord> = f
        .store
        .read_chain(
            f.tenant(),
            security_core::chain::ChainQuery::after(0, usize::MAX),
        )
        .await
        .unwrap();
    f.keys.shred(owner).await.unwrap();
    assert!(f.keys.unseal(&sealed).await.is_err(), "the key is gone");
    let report = verify_chain(&f.store, f.tenant(), ChainRange::ALL)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    let after = f
        .store
        .read_chain(
            f.tenant(),
            security_core::chain::ChainQuery::after(0, usize::MAX),
        )
        .await
        .unwrap();
    assert_eq!(
        before, after,
        "the chain covers the ciphertext, which stays"
    );
}
