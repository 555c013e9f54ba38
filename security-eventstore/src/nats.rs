//! The NATS JetStream publisher (feature `nats`, `async-nats`).

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use async_trait::async_trait;
use security_core::{PublishError, PublishedEvent, Publisher, StoredEvent};

use crate::error::Error;

/// The environment variable naming the server.
const NATS_URL: &str = "NATS_URL";

/// Where and how events are published on NATS JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// The server (`NATS_URL`, default `nats://127.0.0.1:4222`).
    pub url: String,
    /// The JetStream stream, created if missing (default
    /// `SECURITY_EVENTS`).
    pub stream: String,
    /// The first subject token (default `security`): events go to
    /// `<prefix>.<tenant>.<aggregate_type>.<event_type>`, and the stream
    /// holds `<prefix>.>`.
    pub subject_prefix: String,
    /// How long the server remembers a `Nats-Msg-Id` to drop duplicates
    /// (default 2 minutes; the relay republishes within seconds).
    pub duplicate_window: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: "SECURITY_EVENTS".to_owned(),
            subject_prefix: "security".to_owned(),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl NatsConfig {
    /// The defaults, with `NATS_URL` from the environment if set.
    pub fn from_env() -> Self {
        let mut config = Self::default();
        if let Ok(url) = std::env::var(NATS_URL)
            && !url.is_empty()
        {
            config.url = url;
        }
        config
    }
}

/// Publishes events to NATS JetStream.
///
/// Subject `security.<tenant>.<aggregate_type>.<event_type>`; the payload
/// is the event as JSON (a [`PublishedEvent`]: no sealed field); the
/// header `Nats-Msg-Id` is the event id, so the server drops a duplicate
/// published again within the stream's duplicate window; headers
/// `Security-Tenant-Id`, `Security-Event-Type`, `Security-Schema-Version`
/// and (when present) `Security-Idempotency-Key` carry the rest.
///
/// A token that is not a plain NATS subject token (it holds `.`, `*`,
/// `>`, whitespace, a control character or `%`) is percent-encoded, so
/// every subject has exactly four tokens.
pub struct NatsPublisher {
    config: NatsConfig,
    jetstream: jetstream::Context,
}

impl fmt::Debug for NatsPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsPublisher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NatsPublisher {
    /// Connects and creates the stream if it is missing.
    pub async fn connect(config: NatsConfig) -> Result<Self, Error> {
        let client = async_nats::connect(&config.url)
            .await
            .map_err(|e| Error::Connect {
                service: "nats",
                source: Box::new(e),
            })?;
        let jetstream = jetstream::new(client);
        jetstream
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![format!("{}.>", config.subject_prefix)],
                duplicate_window: config.duplicate_window,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| Error::Broker {
                service: "nats",
                source: Box::new(e),
            })?;
        Ok(Self { config, jetstream })
    }

    /// The JetStream context (to read the stream back, for instance).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// The configuration.
    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    /// The subject an event is published on.
    pub fn subject(&self, event: &StoredEvent) -> String {
        let mut subject = String::with_capacity(96);
        subject.push_str(&self.config.subject_prefix);
        for token in [
            event.tenant_id().to_string().as_str(),
            &event.stream_id.aggregate_type,
            &event.event_type,
        ] {
            subject.push('.');
            push_token(&mut subject, token);
        }
        subject
    }
}

/// Appends `token` as one subject token, percent-encoding what a token
/// cannot hold.
fn push_token(subject: &mut String, token: &str) {
    if token.is_empty() {
        subject.push_str("%00");
        return;
    }
    for c in token.chars() {
        if c == '.' || c == '*' || c == '>' || c == '%' || c.is_whitespace() || c.is_control() {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(subject, "%{byte:02X}");
            }
        } else {
            subject.push(c);
        }
    }
}

fn headers(event: &PublishedEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
    headers.insert("Security-Tenant-Id", event.tenant_id().to_string().as_str());
    headers.insert("Security-Event-Type", event.event_type.as_ref());
    headers.insert(
        "Security-Schema-Version",
        event.schema_version.to_string().as_str(),
    );
    if let Some(key) = &event.metadata.idempotency_key {
        headers.insert("Security-Idempotency-Key", key.as_str());
    }
    headers
}

#[async_trait]
impl Publisher for NatsPublisher {
    async fn publish(&self, events: &[PublishedEvent]) -> Result<(), PublishError> {
        // Send the whole batch in order, then wait for every ack.
        let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(events.len());
        for event in events {
            let payload =
                serde_json::to_vec(event).map_err(|e| PublishError::Backend(Box::new(e)))?;
            let ack = self
                .jetstream
                .publish_with_headers(self.subject(event), headers(event), payload.into())
                .await
                .map_err(|e| PublishError::Unavailable(Box::new(e)))?;
            acks.push(ack);
        }
        let mut first_error = None;
        for ack in acks {
            if let Err(e) = ack.await {
                first_error.get_or_insert(PublishError::Unavailable(Box::new(e)));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_single_and_reversible() {
        let mut s = String::new();
        push_token(&mut s, "User.Created *>% x");
        assert_eq!(s, "User%2ECreated%20%2A%3E%25%20x");
        let mut plain = String::new();
        push_token(&mut plain, "UserCreated");
        assert_eq!(plain, "UserCreated");
        assert!(security_core::subject::is_valid_literal(&format!(
            "a.{s}.b"
        )));
    }
}
