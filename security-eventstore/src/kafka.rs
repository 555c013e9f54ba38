//! The Kafka publisher (feature `kafka`, librdkafka through `rdkafka`).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use secrecy::{ExposeSecret, SecretString};
use security_core::{PublishError, PublishedEvent, Publisher, StreamId};
use uuid::Uuid;

use crate::encoded::{Delivery, EncodedEvent, PipelinedPublisher};
use crate::error::Error;

/// The topic events go to unless configured otherwise.
pub const DEFAULT_KAFKA_TOPIC: &str = "security.events";

/// Environment variables read by [`KafkaConfig::from_env`].
const BOOTSTRAP_SERVERS: &str = "KAFKA_BOOTSTRAP_SERVERS";
const SECURITY_PROTOCOL: &str = "KAFKA_SECURITY_PROTOCOL";
const SASL_MECHANISM: &str = "KAFKA_SASL_MECHANISM";
const SASL_USERNAME: &str = "KAFKA_SASL_USERNAME";
const SASL_PASSWORD: &str = "KAFKA_SASL_PASSWORD";
const TOPIC: &str = "KAFKA_TOPIC";

/// The header names of a published Kafka message.
pub mod headers {
    /// The tenant's id.
    pub const TENANT_ID: &str = "tenant_id";
    /// The event type, e.g. `UserCreated`.
    pub const EVENT_TYPE: &str = "event_type";
    /// The payload's schema version, in decimal.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// The event id: the consumers' dedupe key.
    pub const EVENT_ID: &str = "event_id";
    /// The idempotency key of the append that wrote the event, if any.
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
}

/// How to reach Kafka, in the source documents' terms
/// (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_SECURITY_PROTOCOL`,
/// `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`).
///
/// The SASL password is a secret: it is never printed.
#[derive(Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    /// The SASL user name.
    pub sasl_username: Option<String>,
    sasl_password: Option<SecretString>,
    /// The topic (default `security.events`).
    pub topic: String,
    /// How long librdkafka retries a message before the publish fails
    /// (default 30 s; the relay then retries the batch).
    pub message_timeout: Duration,
    /// Further librdkafka properties (`ssl.ca.location`, `linger.ms`, …).
    /// Their values are not printed either.
    pub properties: Vec<(String, String)>,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let property_names: Vec<&str> = self.properties.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "[redacted]"),
            )
            .field("topic", &self.topic)
            .field("message_timeout", &self.message_timeout)
            .field("properties", &property_names)
            .finish()
    }
}

const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl KafkaConfig {
    /// Plaintext, no authentication, the default topic.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            topic: DEFAULT_KAFKA_TOPIC.to_owned(),
            message_timeout: Duration::from_secs(30),
            properties: Vec::new(),
        }
    }

    /// Reads `KAFKA_BOOTSTRAP_SERVERS` (required), `KAFKA_SECURITY_PROTOCOL`,
    /// `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`
    /// and `KAFKA_TOPIC` from the environment.
    pub fn from_env() -> Result<Self, Error> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let servers = var(BOOTSTRAP_SERVERS).ok_or(Error::MissingSetting(BOOTSTRAP_SERVERS))?;
        let mut config = Self::new(servers);
        config.security_protocol = var(SECURITY_PROTOCOL);
        config.sasl_mechanism = var(SASL_MECHANISM);
        config.sasl_username = var(SASL_USERNAME);
        config.sasl_password = var(SASL_PASSWORD).map(SecretString::from);
        if let Some(topic) = var(TOPIC) {
            config.topic = topic;
        }
        config.validate()?;
        Ok(config)
    }

    /// Authenticates with SASL.
    pub fn with_sasl(
        mut self,
        mechanism: impl Into<String>,
        username: impl Into<String>,
        password: SecretString,
    ) -> Self {
        self.sasl_mechanism = Some(mechanism.into());
        self.sasl_username = Some(username.into());
        self.sasl_password = Some(password);
        self
    }

    /// Publishes to this topic.
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(Error::MissingSetting(BOOTSTRAP_SERVERS));
        }
        if let Some(p) = &self.security_protocol
            && !PROTOCOLS.contains(&p.to_ascii_uppercase().as_str())
        {
            return Err(Error::InvalidSetting {
                setting: SECURITY_PROTOCOL,
                reason: "must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            });
        }
        if let Some(m) = &self.sasl_mechanism
            && !MECHANISMS.contains(&m.to_ascii_uppercase().as_str())
        {
            return Err(Error::InvalidSetting {
                setting: SASL_MECHANISM,
                reason: "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
            });
        }
        if self.sasl_mechanism.is_some()
            && (self.sasl_username.is_none() || self.sasl_password.is_none())
        {
            return Err(Error::MissingSetting(if self.sasl_username.is_none() {
                SASL_USERNAME
            } else {
                SASL_PASSWORD
            }));
        }
        if self.topic.is_empty() || self.topic.len() > 249 {
            return Err(Error::InvalidSetting {
                setting: TOPIC,
                reason: "must be 1 to 249 characters",
            });
        }
        Ok(())
    }

    /// The librdkafka configuration: an idempotent producer (`acks=all`).
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", "security-eventstore")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                self.message_timeout.as_millis().to_string(),
            );
        if let Some(p) = &self.security_protocol {
            config.set("security.protocol", p.to_ascii_lowercase());
        }
        if let Some(m) = &self.sasl_mechanism {
            config.set("sasl.mechanism", m.to_ascii_uppercase());
        }
        if let Some(u) = &self.sasl_username {
            config.set("sasl.username", u);
        }
        if let Some(p) = &self.sasl_password {
            config.set("sasl.password", p.expose_secret());
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// Publishes events to a Kafka topic with an idempotent producer.
///
/// - key: the stream id (`tenant/aggregate_type/aggregate_id`), so a
///   stream's events land in one partition, in order;
/// - value: the event as JSON (a [`PublishedEvent`]: no sealed field);
/// - headers: [`headers::TENANT_ID`], [`headers::EVENT_TYPE`],
///   [`headers::SCHEMA_VERSION`], [`headers::EVENT_ID`] (the dedupe key)
///   and [`headers::IDEMPOTENCY_KEY`] when the append had one.
///
/// `publish` enqueues the whole batch in order, then waits for every
/// acknowledgement (`acks=all`); it fails if any message failed, and the
/// caller (the outbox relay) publishes the batch again. The idempotent
/// producer keeps librdkafka's own retries from duplicating or reordering;
/// a batch published again after a failure may duplicate, with the same
/// event ids. After a failed batch the producer is rebuilt (a new
/// idempotent-producer session) before the next message is enqueued, so
/// one failure never poisons the next batches.
///
/// It is also a [`PipelinedPublisher`]: `send` enqueues a batch of
/// [`EncodedEvent`]s and returns at once, with a [`Delivery`] that
/// completes when Kafka acknowledged all of them; the outbox relay built
/// with `OutboxRelay::pipelined` keeps several batches in flight that way.
pub struct KafkaPublisher {
    config: KafkaConfig,
    producer: Mutex<Generation>,
}

/// A producer and whether one of its messages failed (it is then replaced
/// before the next enqueue).
#[derive(Clone)]
struct Generation {
    producer: FutureProducer,
    failed: Arc<AtomicBool>,
}

impl Generation {
    fn new(producer: FutureProducer) -> Self {
        Self {
            producer,
            failed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How long an enqueue waits when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

impl KafkaPublisher {
    /// A publisher (no connection is made until the first publish).
    pub fn new(config: KafkaConfig) -> Result<Self, Error> {
        config.validate()?;
        let producer = Self::producer(&config)?;
        Ok(Self {
            config,
            producer: Mutex::new(Generation::new(producer)),
        })
    }

    fn producer(config: &KafkaConfig) -> Result<FutureProducer, Error> {
        config.client_config().create().map_err(|e| Error::Connect {
            service: "kafka",
            source: Box::new(e),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Creates the topic with `partitions` partitions (replication factor
    /// 1 unless the broker defaults otherwise) if it does not exist yet.
    /// Some brokers (tansu among them) do not create topics on first use.
    pub async fn create_topic(&self, partitions: i32) -> Result<(), Error> {
        let broker = |e: KafkaError| Error::Broker {
            service: "kafka",
            source: Box::new(e),
        };
        let admin: AdminClient<DefaultClientContext> =
            self.config.client_config().create().map_err(broker)?;
        let topic = NewTopic::new(&self.config.topic, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .map_err(broker)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(broker(KafkaError::AdminOp(code))),
            }
        }
        Ok(())
    }

    /// The producer to enqueue on: a new one if a message of the current
    /// one failed.
    ///
    /// After a message fails for good, an idempotent producer's sequence
    /// numbers for its partition have a gap; Kafka answers the next
    /// produce with an out-of-order-sequence error that librdkafka recovers
    /// from, but not every broker does (tansu answers "unknown error" for
    /// ever). A new producer starts a new producer session with fresh
    /// sequences. Whoever saw the failure waited for every delivery of its
    /// batch first; messages of other batches still in flight on the old
    /// producer finish there (their [`Delivery`] holds it).
    fn current(&self) -> Generation {
        let mut current = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        if current.failed.load(Ordering::Acquire) {
            match Self::producer(&self.config) {
                Ok(fresh) => *current = Generation::new(fresh),
                Err(error) => tracing::warn!(%error, "kafka producer could not be rebuilt"),
            }
        }
        current.clone()
    }
}

/// The message key: the stream id, `tenant/aggregate_type/aggregate_id`,
/// written into `key` (reused from message to message).
fn write_key(key: &mut String, stream: &StreamId) {
    let mut uuid = Uuid::encode_buffer();
    key.clear();
    key.push_str(
        stream
            .tenant_id
            .as_uuid()
            .hyphenated()
            .encode_lower(&mut uuid),
    );
    key.push('/');
    key.push_str(&stream.aggregate_type);
    key.push('/');
    key.push_str(stream.aggregate_id.hyphenated().encode_lower(&mut uuid));
}

/// The headers (librdkafka copies the values: the buffers stay here).
fn headers(event: &EncodedEvent) -> OwnedHeaders {
    let mut tenant = Uuid::encode_buffer();
    let mut event_id = Uuid::encode_buffer();
    let mut schema_version = [0u8; 10];
    let mut headers = OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: headers::TENANT_ID,
            value: Some(
                event
                    .stream_id()
                    .tenant_id
                    .as_uuid()
                    .hyphenated()
                    .encode_lower(&mut tenant)
                    .as_bytes(),
            ),
        })
        .insert(Header {
            key: headers::EVENT_TYPE,
            value: Some(event.event_type().as_bytes()),
        })
        .insert(Header {
            key: headers::SCHEMA_VERSION,
            value: Some(decimal(event.schema_version(), &mut schema_version)),
        })
        .insert(Header {
            key: headers::EVENT_ID,
            value: Some(
                event
                    .event_id()
                    .as_uuid()
                    .hyphenated()
                    .encode_lower(&mut event_id)
                    .as_bytes(),
            ),
        });
    if let Some(key) = event.idempotency_key() {
        headers = headers.insert(Header {
            key: headers::IDEMPOTENCY_KEY,
            value: Some(key.as_str().as_bytes()),
        });
    }
    headers
}

/// `value` in decimal, written at the end of `buffer` (ten digits hold
/// any `u32`).
fn decimal(mut value: u32, buffer: &mut [u8; 10]) -> &[u8] {
    let mut start = buffer.len();
    loop {
        start -= 1;
        // A digit: `value % 10` is below 10.
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buffer[start..];
        }
    }
}

/// Whether a delivery error may clear up by itself (broker down, leader
/// moving, timeouts) or needs someone to look (authorisation, size).
fn is_transient(error: &KafkaError) -> bool {
    !matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::InvalidConfig
                | RDKafkaErrorCode::InvalidArgument
        )
    )
}

fn publish_error(error: KafkaError) -> PublishError {
    if is_transient(&error) {
        PublishError::Unavailable(Box::new(error))
    } else {
        PublishError::Backend(Box::new(error))
    }
}

/// The producer was dropped before it reported a delivery.
#[derive(Debug, thiserror::Error)]
#[error("the kafka producer went away before reporting a delivery")]
struct DeliveryLost;

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, events: &[PublishedEvent]) -> Result<(), PublishError> {
        let encoded = events
            .iter()
            .map(EncodedEvent::from_published)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PublishError::Backend(Box::new(e)))?;
        self.send(&encoded).await?.await
    }
}

#[async_trait]
impl PipelinedPublisher for KafkaPublisher {
    async fn send(&self, events: &[EncodedEvent]) -> Result<Delivery, PublishError> {
        let generation = self.current();
        let mut deliveries: Vec<DeliveryFuture> = Vec::with_capacity(events.len());
        let mut refused = None;
        let mut key = String::with_capacity(128);
        'events: for event in events {
            write_key(&mut key, event.stream_id());
            let mut record = FutureRecord::to(&self.config.topic)
                .key(&key)
                .payload(event.body())
                .headers(headers(event));
            loop {
                match generation.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    // The local queue is full: let librdkafka send some.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                    }
                    Err((error, _)) => {
                        refused = Some(publish_error(error));
                        break 'events;
                    }
                }
            }
        }
        Ok(Delivery::new(async move {
            // A refused enqueue fails the batch, but only once what was
            // enqueued before it has been reported: nothing may still be in
            // flight when the caller retries.
            let mut first_error = refused;
            for delivery in deliveries {
                let outcome = match delivery.await {
                    Ok(Ok(_)) => continue,
                    Ok(Err((error, _))) => publish_error(error),
                    Err(_) => PublishError::Unavailable(Box::new(DeliveryLost)),
                };
                first_error.get_or_insert(outcome);
            }
            match first_error {
                None => Ok(()),
                Some(error) => {
                    generation.failed.store(true, Ordering::Release);
                    Err(error)
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_printed() {
        let config = KafkaConfig::new("broker:9092").with_sasl(
            "SCRAM-SHA-512",
            "app",
            SecretString::from("s3cr3t-kafka-password"),
        );
        let text = format!("{config:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("[redacted]"));
        let publisher = KafkaPublisher::new(config).unwrap();
        assert!(!format!("{publisher:?}").contains("s3cr3t"));
    }

    #[test]
    fn settings_are_validated() {
        let mut config = KafkaConfig::new("broker:9092");
        config.security_protocol = Some("SASL_SSL".into());
        config.sasl_mechanism = Some("PLAIN".into());
        assert!(matches!(
            config.validate(),
            Err(Error::MissingSetting(SASL_USERNAME))
        ));
        config.sasl_username = Some("app".into());
        config.sasl_password = Some(SecretString::from("x"));
        assert!(config.validate().is_ok());
        config.security_protocol = Some("TLS".into());
        assert!(config.validate().is_err());
        assert!(KafkaConfig::new(" ").validate().is_err());
    }

    #[test]
    fn keys_and_numbers_are_written_as_display_writes_them() {
        let stream = StreamId::new(
            security_core::TenantId::from_uuid(Uuid::now_v7()),
            "user",
            Uuid::now_v7(),
        );
        let mut key = String::from("left over");
        write_key(&mut key, &stream);
        assert_eq!(key, stream.to_string());
        for n in [0, 7, 10, 4_294_967_295, 123_456] {
            assert_eq!(decimal(n, &mut [0; 10]), n.to_string().as_bytes());
        }
    }

    #[test]
    fn the_producer_is_idempotent_with_acks_all() {
        let config = KafkaConfig::new("broker:9092").client_config();
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
    }
}
