//! Secure messages: token, permission and limits checked before delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::SecretString;
use security_authz::*;
use security_core::*;

use crate::common::{World, publish_perms};

/// A validator test double: a fixed table of tokens.
#[derive(Debug, Default)]
pub(crate) struct StaticValidator {
    tokens: HashMap<String, AccessClaims>,
}

impl StaticValidator {
    pub(crate) fn with(mut self, token: &str, claims: AccessClaims) -> Self {
        self.tokens.insert(token.to_owned(), claims);
        self
    }
}

impl TokenValidator for StaticValidator {
    fn validate(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.tokens.get(token).cloned().ok_or(TokenError::Signature)
    }
}

pub(crate) fn claims(
    tenant: TenantId,
    user: UserId,
    roles: &[&str],
    permissions: Permissions,
) -> AccessClaims {
    AccessClaims {
        iss: "issuer".into(),
        sub: user.to_string(),
        aud: Audience::One("api".into()),
        exp: 1_900_000_000,
        nbf: None,
        iat: 1_700_000_000,
        jti: "jti-1".into(),
        tenant_id: tenant,
        user_id: user,
        session_id: None,
        roles: roles.iter().map(|r| RoleName::new(*r).unwrap()).collect(),
        permissions,
    }
}

#[derive(Debug, Default)]
struct CapturingSink {
    delivered: Mutex<Vec<(String, Vec<u8>)>>,
}

#[async_trait]
impl MessageSink for CapturingSink {
    async fn deliver(&self, subject: &str, message: Vec<u8>) -> Result<(), SinkError> {
        self.delivered
            .lock()
            .unwrap()
            .push((subject.to_owned(), message));
        Ok(())
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct CreateWorkflow {
    name: String,
}

#[tokio::test]
async fn publish_secure_checks_token_permission_live_model_and_payload_limit() {
    let mut w = World::new().await;
    let limits = AccountLimits {
        max_payload_size: Some(400),
        ..AccountLimits::default()
    };
    let bank = w
        .account_with(
            "bank",
            AccountClaims {
                limits,
                ..AccountClaims::default()
            },
        )
        .await;
    let tenant = bank.tenant();
    let policy = w
        .policy(
            tenant,
            publish_perms(&["workflow.commands.*"], &[]),
            ResourceLimits::default(),
        )
        .await;
    let user = w.user(bank, "svc", &[]).await;
    w.assign_policy(tenant, user, policy).await;
    w.sync().await;

    let token_permissions = publish_perms(&["workflow.commands.*"], &["workflow.commands.drop"]);
    let validator =
        StaticValidator::default().with("good-token", claims(tenant, user, &[], token_permissions));
    let sink = Arc::new(CapturingSink::default());
    let publisher = SecurePublisher::new(Arc::new(validator), sink.clone(), w.clock.clone())
        .with_authorizer(w.authz.clone());
    let token = SecretString::from("good-token");

    let sent = publisher
        .publish_secure(
            &token,
            "workflow.commands.create",
            CreateWorkflow {
                name: "onboarding".into(),
            },
            Some("trace-1".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        sent.security,
        SecurityContext {
            account_id: bank,
            user_id: user,
            trace_id: Some("trace-1".into()),
            timestamp: w.clock.now()
        }
    );
    {
        let delivered = sink.delivered.lock().unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].0, "workflow.commands.create");
        let back: SecureMessage<CreateWorkflow> = serde_json::from_slice(&delivered[0].1).unwrap();
        assert_eq!(back, sent);
    }

    // The token's own permissions deny it.
    let denied = publisher
        .publish_secure(
            &token,
            "workflow.commands.drop",
            CreateWorkflow { name: "x".into() },
            None,
        )
        .await;
    assert!(matches!(
        denied,
        Err(AuthzError::Denied(DenyReason::SubjectNotAllowed))
    ));
    // An invalid token.
    let bad = publisher
        .publish_secure(
            &SecretString::from("forged"),
            "workflow.commands.create",
            1,
            None,
        )
        .await;
    assert!(matches!(bad, Err(AuthzError::Token(TokenError::Signature))));
    // Too large for the account.
    let large = publisher
        .publish_secure(
            &token,
            "workflow.commands.create",
            CreateWorkflow {
                name: "x".repeat(500),
            },
            None,
        )
        .await;
    assert!(matches!(large, Err(AuthzError::LimitExceeded(e)) if e.kind == LimitKind::PayloadSize));
    // The token still allows it, but the live model no longer does.
    w.user_command(
        tenant,
        user,
        UserCommand::RemovePolicy { policy_id: policy },
    )
    .await;
    w.sync().await;
    let revoked = publisher
        .publish_secure(&token, "workflow.commands.create", 2, None)
        .await;
    assert!(matches!(
        revoked,
        Err(AuthzError::Denied(DenyReason::SubjectNotAllowed))
    ));
    assert_eq!(
        sink.delivered.lock().unwrap().len(),
        1,
        "nothing else was delivered"
    );
}

#[tokio::test]
async fn publish_secure_without_a_read_model_uses_the_token() {
    let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(1));
    let user = UserId::from_uuid(uuid::Uuid::from_u128(2));
    let validator = StaticValidator::default()
        .with("t", claims(tenant, user, &[], publish_perms(&["a.>"], &[])));
    let sink = Arc::new(CapturingSink::default());
    let clock = Arc::new(ManualClock::new(crate::common::t0()));
    let publisher = SecurePublisher::new(Arc::new(validator), sink.clone(), clock);
    let token = SecretString::from("t");
    assert!(
        publisher
            .publish_secure(&token, "a.b", "hello", None)
            .await
            .is_ok()
    );
    assert!(matches!(
        publisher.publish_secure(&token, "b", "x", None).await,
        Err(AuthzError::Denied(_))
    ));
    assert!(matches!(
        publisher.publish_secure(&token, "a.*", "x", None).await,
        Err(AuthzError::Denied(DenyReason::InvalidSubject))
    ));
    assert_eq!(sink.delivered.lock().unwrap().len(), 1);
}

#[test]
fn token_roles_check_the_matrix_without_a_read_model() {
    let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(1));
    let user = UserId::from_uuid(uuid::Uuid::from_u128(2));
    let manager = claims(
        tenant,
        user,
        &["customer", "manager"],
        Permissions::default(),
    );
    let customer = claims(
        tenant,
        user,
        &["customer", "teller"],
        Permissions::default(),
    );
    let approve = Permission::parse("loan:approve").unwrap();
    let read = Permission::parse("loan:read").unwrap();
    assert!(TokenRoles.check(&manager, &approve).is_allowed());
    assert!(!TokenRoles.check(&customer, &approve).is_allowed());
    assert!(matches!(
        TokenRoles.check(&customer, &read).deny_reason(),
        Some(DenyReason::ConditionNotMet { .. })
    ));
}
