//! Secure messages: a payload with the security context of whoever sent
//! it, published only after the sender's token and publish permission were
//! checked.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use security_core::{AccessClaims, AccountId, Clock, TokenError, TokenValidator, UserId};
use serde::{Deserialize, Serialize};

use crate::decision::{DenyReason, Principal};
use crate::error::{AuthzError, SinkError};
use crate::service::AuthorizationService;

/// Who sent a message, and when (DOMAIN.md "Secure messages").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityContext {
    /// The sender's account (its tenant).
    pub account_id: AccountId,
    /// The sender.
    pub user_id: UserId,
    /// A distributed-tracing id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// When the message was sent.
    pub timestamp: DateTime<Utc>,
}

impl SecurityContext {
    /// The context of the holder of validated `claims`, at `timestamp`.
    pub fn from_claims(
        claims: &AccessClaims,
        trace_id: Option<String>,
        timestamp: DateTime<Utc>,
    ) -> Self {
        Self {
            account_id: AccountId::from(claims.tenant_id),
            user_id: claims.user_id,
            trace_id,
            timestamp,
        }
    }

    /// The principal the context names.
    pub fn principal(&self) -> Principal {
        Principal::new(self.account_id.tenant(), self.user_id)
    }
}

/// A payload and the security context of its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureMessage<T> {
    /// The payload.
    pub payload: T,
    /// Who sent it, and when.
    pub security: SecurityContext,
}

/// Where secure messages go once checked (a NATS connection, a broker, a
/// test double).
#[async_trait]
pub trait MessageSink: fmt::Debug + Send + Sync {
    /// Delivers the encoded message to `subject`.
    async fn deliver(&self, subject: &str, message: Vec<u8>) -> Result<(), SinkError>;
}

/// Publishes [`SecureMessage`]s after checking the sender.
///
/// For each message: the Bearer token is validated by the
/// [`TokenValidator`]; the token's own subject permissions must allow the
/// subject; with an [`AuthorizationService`] attached, the live read model
/// must allow it too (a policy removed or a user locked since the token was
/// issued) and the encoded message must fit the payload limit. Only then
/// is the message handed to the sink.
#[derive(Debug, Clone)]
pub struct SecurePublisher {
    validator: Arc<dyn TokenValidator>,
    sink: Arc<dyn MessageSink>,
    clock: Arc<dyn Clock>,
    authorizer: Option<AuthorizationService>,
}

impl SecurePublisher {
    /// A publisher that validates tokens with `validator` and delivers to `sink`.
    pub fn new(
        validator: Arc<dyn TokenValidator>,
        sink: Arc<dyn MessageSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            validator,
            sink,
            clock,
            authorizer: None,
        }
    }

    /// Also checks the live read model and limits.
    pub fn with_authorizer(mut self, authorizer: AuthorizationService) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Checks the token and the permission, wraps `payload` with the
    /// sender's security context, and delivers it to `subject`. Returns the
    /// message delivered.
    pub async fn publish_secure<T>(
        &self,
        token: &SecretString,
        subject: &str,
        payload: T,
        trace_id: Option<String>,
    ) -> Result<SecureMessage<T>, AuthzError>
    where
        T: Serialize + Send,
    {
        let claims = self.validator.validate_async(token.expose_secret()).await?;
        let message = SecureMessage {
            payload,
            security: SecurityContext::from_claims(&claims, trace_id, self.clock.now()),
        };
        self.check_and_deliver(&claims, subject, message).await
    }

    async fn check_and_deliver<T>(
        &self,
        claims: &AccessClaims,
        subject: &str,
        message: SecureMessage<T>,
    ) -> Result<SecureMessage<T>, AuthzError>
    where
        T: Serialize + Send,
    {
        if !security_core::subject::is_valid_literal(subject) {
            return Err(AuthzError::Denied(DenyReason::InvalidSubject));
        }
        if !claims.can_publish(subject) {
            return Err(AuthzError::Denied(DenyReason::SubjectNotAllowed));
        }
        let encoded = serde_json::to_vec(&message).map_err(|e| AuthzError::Encode(Box::new(e)))?;
        if let Some(authorizer) = &self.authorizer {
            let principal = Principal::from_claims(claims);
            if let crate::Decision::Deny { reason } =
                authorizer.authorize_publish(&principal, subject)
            {
                return Err(AuthzError::Denied(reason));
            }
            authorizer
                .check_payload_size(&principal, u64::try_from(encoded.len()).unwrap_or(u64::MAX))?;
        }
        self.sink.deliver(subject, encoded).await?;
        Ok(message)
    }
}

/// Reads the token of an `Authorization: Bearer <token>` header value.
///
/// The scheme is case-insensitive (RFC 9110); the token must be non-empty
/// and hold no whitespace. The token is returned as a secret.
pub fn bearer_token(header_value: &str) -> Result<SecretString, TokenError> {
    let (scheme, token) = header_value
        .trim()
        .split_once(' ')
        .ok_or(TokenError::Malformed)?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.contains(char::is_whitespace)
    {
        return Err(TokenError::Malformed);
    }
    Ok(SecretString::from(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(
            bearer_token("Bearer abc.def").unwrap().expose_secret(),
            "abc.def"
        );
        assert_eq!(bearer_token("bearer   xyz").unwrap().expose_secret(), "xyz");
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Token abc",
        ] {
            assert_eq!(
                bearer_token(bad).unwrap_err(),
                TokenError::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tokens_never_show_in_debug_or_errors() {
        let token = bearer_token("Bearer eyJ.secret-token-value.sig").unwrap();
        assert!(!format!("{token:?}").contains("secret-token-value"));
        let err = bearer_token("Bearer two words-secret").unwrap_err();
        assert!(!format!("{err:?} {err}").contains("words-secret"));
        let denied = AuthzError::Token(TokenError::Signature);
        assert_eq!(denied.to_string(), "token signature is invalid");
    }
}
