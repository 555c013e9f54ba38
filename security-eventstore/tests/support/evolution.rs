//! Event schema evolution: events written by an older build (version 1 of
//! a type) are read by a newer one (version 2, a field split and a type
//! renamed) through registered upcasters, by the command bus and by
//! projections alike; an event newer than the reader is a typed error.
//! Shared by the memory and PostgreSQL tests.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use security_core::{
    Aggregate, CommandContext, CommandError, DomainError, EventDecodeError, EventStore,
    GlobalQuery, IdGenerator, Repository, Scope, StoredEvent, TenantId, Upcaster,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// The first version of the `thing` aggregate, as an older build wrote it.
mod v1 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) enum ThingEvent {
        Named { name: String },
        Tagged { tag: String },
    }
    security_core::impl_domain_event!(ThingEvent, version = 1, types = [Named, Tagged]);

    #[derive(Debug, Clone, Default, PartialEq)]
    pub(crate) struct Thing {
        pub(crate) name: Option<String>,
    }

    impl Aggregate for Thing {
        const TYPE: &'static str = "thing";
        type Command = ThingEvent;
        type Event = ThingEvent;
        type Error = DomainError;
        fn handle(
            &self,
            command: &ThingEvent,
            _: &CommandContext,
        ) -> Result<Vec<ThingEvent>, DomainError> {
            Ok(vec![command.clone()])
        }
        fn apply(&mut self, event: &ThingEvent) {
            if let ThingEvent::Named { name } = event {
                self.name = Some(name.clone());
            }
        }
    }
}

/// Version 2: `Named` splits its name in two, `Tagged` became `Labelled`.
mod v2 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) enum ThingEvent {
        Named { first: String, last: String },
        Labelled { label: String },
    }

    fn split_name(mut payload: Value) -> Result<Value, String> {
        let name = payload
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a version-1 Named has a name")?
            .to_owned();
        let (first, last) = name.split_once(' ').unwrap_or((name.as_str(), ""));
        payload = json!({"first": first, "last": last});
        Ok(payload)
    }

    fn tag_to_label(payload: Value) -> Result<Value, String> {
        let Value::Object(mut fields) = payload else {
            return Err("a version-1 Tagged is an object".to_owned());
        };
        let tag = fields.remove("tag").ok_or("a version-1 Tagged has a tag")?;
        Ok(json!({ "label": tag }))
    }

    security_core::impl_domain_event!(
        ThingEvent,
        version = 2,
        types = [Named, Labelled],
        upcasters = [
            Upcaster {
                event_type: "Named",
                from_version: 1,
                renamed_to: None,
                upcast: split_name,
            },
            Upcaster {
                event_type: "Tagged",
                from_version: 1,
                renamed_to: Some("Labelled"),
                upcast: tag_to_label,
            },
        ]
    );

    #[derive(Debug, Clone, Default, PartialEq)]
    pub(crate) struct Thing {
        pub(crate) first: String,
        pub(crate) last: String,
        pub(crate) labels: Vec<String>,
    }

    impl Aggregate for Thing {
        const TYPE: &'static str = "thing";
        type Command = ThingEvent;
        type Event = ThingEvent;
        type Error = DomainError;
        fn handle(
            &self,
            command: &ThingEvent,
            _: &CommandContext,
        ) -> Result<Vec<ThingEvent>, DomainError> {
            Ok(vec![command.clone()])
        }
        fn apply(&mut self, event: &ThingEvent) {
            match event {
                ThingEvent::Named { first, last } => {
                    self.first.clone_from(first);
                    self.last.clone_from(last);
                }
                ThingEvent::Labelled { label } => self.labels.push(label.clone()),
            }
        }
    }
}

/// Writes version-1 events, reads them with version 2; then a version-3
/// event makes the reader fail with a typed error.
pub(crate) async fn old_events_are_upcast_on_every_read(
    store: Arc<dyn EventStore>,
    ids: Arc<dyn IdGenerator>,
) {
    let repo = Repository::new(Arc::clone(&store), ids);
    let tenant = TenantId::from_uuid(Uuid::now_v7());
    let ctx = CommandContext::new(tenant, Utc.timestamp_opt(1_700_000_000, 0).unwrap());
    let id = Uuid::now_v7();
    for event in [
        v1::ThingEvent::Named {
            name: "Ada Lovelace".into(),
        },
        v1::ThingEvent::Tagged {
            tag: "analyst".into(),
        },
    ] {
        repo.execute::<v1::Thing>(id, &event, &ctx).await.unwrap();
    }
    // The newer build reads the older events through its upcasters.
    let thing = repo.load::<v2::Thing>(tenant, id).await.unwrap();
    assert_eq!(thing.version, 2);
    assert_eq!(
        (thing.state.first.as_str(), thing.state.last.as_str()),
        ("Ada", "Lovelace")
    );
    assert_eq!(thing.state.labels, ["analyst"]);
    // A projection reads them the same way (decoding is one path).
    let stored: Vec<StoredEvent> = store
        .read_global(Scope::Tenant(tenant), GlobalQuery::after(0, 10))
        .await
        .unwrap();
    let decoded: Vec<v2::ThingEvent> = stored.iter().map(|e| e.decode().unwrap()).collect();
    assert_eq!(
        decoded,
        [
            v2::ThingEvent::Named {
                first: "Ada".into(),
                last: "Lovelace".into()
            },
            v2::ThingEvent::Labelled {
                label: "analyst".into()
            }
        ]
    );
    // New events are written at version 2 and read back unchanged.
    let labelled = v2::ThingEvent::Labelled {
        label: "poet".into(),
    };
    let outcome = repo
        .execute::<v2::Thing>(id, &labelled, &ctx)
        .await
        .unwrap();
    assert_eq!(outcome.events[0].schema_version, 2);
    assert_eq!(outcome.state.labels, ["analyst", "poet"]);
    // An older build meets an event it cannot read: a typed error, no panic.
    let err = repo.load::<v1::Thing>(tenant, id).await.unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Decode(EventDecodeError::UnknownType { ref event_type }) if event_type == "Labelled"
        ),
        "{err:?}"
    );
    // An event of a version newer than the reader: a typed error.
    let newer = security_core::NewEvent {
        event_id: security_core::EventId::from_uuid(Uuid::now_v7()),
        event_type: Arc::from("Named"),
        schema_version: 3,
        occurred_at: ctx.now,
        payload: Arc::new(json!({"given": "Ada"})),
        metadata: Arc::new(security_core::EventMetadata::default()),
    };
    store
        .append(security_core::AppendRequest {
            stream_id: Repository::stream_id::<v2::Thing>(tenant, id),
            expected: security_core::ExpectedVersion::Exact(3),
            events: vec![newer],
            idempotency_key: None,
        })
        .await
        .unwrap();
    let err = repo.load::<v2::Thing>(tenant, id).await.unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Decode(EventDecodeError::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            })
        ),
        "{err:?}"
    );
    // A version-1 payload that is not what version 1 was: the upcaster's
    // typed complaint.
    let broken = security_core::NewEvent {
        event_id: security_core::EventId::from_uuid(Uuid::now_v7()),
        event_type: Arc::from("Named"),
        schema_version: 1,
        occurred_at: ctx.now,
        payload: Arc::new(json!({"nom": "Ada"})),
        metadata: Arc::new(security_core::EventMetadata::default()),
    };
    let other = Uuid::now_v7();
    store
        .append(security_core::AppendRequest {
            stream_id: Repository::stream_id::<v2::Thing>(tenant, other),
            expected: security_core::ExpectedVersion::NoStream,
            events: vec![broken],
            idempotency_key: None,
        })
        .await
        .unwrap();
    let err = repo.load::<v2::Thing>(tenant, other).await.unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Decode(EventDecodeError::Upcast {
                from_version: 1,
                ..
            })
        ),
        "{err:?}"
    );
}
