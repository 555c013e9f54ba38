//! Identity integration: an application's identity events drive the
//! security domain.
//!
//! - `OrganizationCreated { org_id, name }` → an Account named
//!   `"<name> Account"` under the operator, default limits, metadata
//!   `organization_id`.
//! - `PersonCreated { person_id, email, organization_id }` → a User in that
//!   organization's account, username = email, a temporary password that
//!   must be changed at the first login, metadata `person_id` and
//!   `created_from = identity_sync`.
//!
//! Handling the same event twice creates nothing twice: each handler runs
//! the admin API with an idempotency key derived from the event (its kind
//! and the identity's id, which stays the same when the event is delivered
//! again), and the admin API derives the ids of what it creates from that
//! key. Keying on the organization's id rather than the event's own id is
//! what lets a `PersonCreated` find its organization's account without a
//! lookup table; the event id is kept as the events' correlation id.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use security_core::{
    AccountClaims, AccountId, Actor, IdempotencyKey, OperatorId, Request, TenantId, UserId,
};

use crate::error::AuthnError;
use crate::manage::temporary_password;
use crate::new_user::NewPasswordUser;
use crate::service::AuthenticationService;

/// An identity system created an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationCreated {
    /// The organization.
    pub org_id: Uuid,
    /// Its name.
    pub name: String,
}

/// An identity system created a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonCreated {
    /// The person.
    pub person_id: Uuid,
    /// Their email: the username.
    pub email: String,
    /// Their organization.
    pub organization_id: Uuid,
}

/// What handling a `PersonCreated` did.
pub enum PersonProvisioned {
    /// A user was created with a temporary password, to hand to the person
    /// over a secure channel (it must be changed at the first login).
    Created {
        /// The user.
        user_id: UserId,
        /// The user's account.
        account_id: AccountId,
        /// The temporary password.
        temporary_password: SecretString,
    },
    /// The event was handled before: nothing was created.
    AlreadyExists {
        /// The user.
        user_id: UserId,
        /// The user's account.
        account_id: AccountId,
    },
}

impl PersonProvisioned {
    /// The user.
    pub fn user_id(&self) -> UserId {
        match self {
            Self::Created { user_id, .. } | Self::AlreadyExists { user_id, .. } => *user_id,
        }
    }
}

impl std::fmt::Debug for PersonProvisioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Created {
                user_id,
                account_id,
                ..
            } => f
                .debug_struct("Created")
                .field("user_id", user_id)
                .field("account_id", account_id)
                .field("temporary_password", &"[REDACTED]")
                .finish(),
            Self::AlreadyExists {
                user_id,
                account_id,
            } => f
                .debug_struct("AlreadyExists")
                .field("user_id", user_id)
                .field("account_id", account_id)
                .finish(),
        }
    }
}

/// Handles identity events (idempotently).
#[derive(Debug, Clone)]
pub struct IdentitySync {
    service: AuthenticationService,
    operator_id: OperatorId,
}

fn request(kind: &str, subject: Uuid, event_id: Uuid) -> Result<Request, AuthnError> {
    let key =
        IdempotencyKey::new(format!("identity:{kind}:{subject}")).map_err(AuthnError::crypto)?;
    let mut request = Request::by(Actor::service("identity-sync")).idempotent(key);
    request.correlation_id = Some(event_id);
    Ok(request)
}

impl IdentitySync {
    /// Handlers that create accounts under `operator_id` (the system operator).
    pub fn new(service: AuthenticationService, operator_id: OperatorId) -> Self {
        Self {
            service,
            operator_id,
        }
    }

    /// The account an organization's `OrganizationCreated` makes (or made).
    pub fn account_for(&self, org_id: Uuid) -> Result<AccountId, AuthnError> {
        let request = request("organization", org_id, Uuid::nil())?;
        Ok(AccountId::from_uuid(self.service.admin().new_id(
            &request,
            self.operator_id.as_uuid(),
            "account",
        )))
    }

    /// Handles `OrganizationCreated`: creates the organization's account.
    pub async fn on_organization_created(
        &self,
        event_id: Uuid,
        event: &OrganizationCreated,
    ) -> Result<AccountId, AuthnError> {
        let request = request("organization", event.org_id, event_id)?;
        let mut metadata = BTreeMap::new();
        metadata.insert(
            "organization_id".to_owned(),
            Value::String(event.org_id.to_string()),
        );
        let claims = AccountClaims {
            metadata,
            ..AccountClaims::default()
        };
        let account_id = self
            .service
            .admin()
            .create_account(
                &request,
                self.operator_id,
                &format!("{} Account", event.name),
                claims,
            )
            .await?;
        Ok(account_id)
    }

    /// Handles `PersonCreated`: creates the person's user, with a temporary
    /// password. Fails with [`AuthnError::UnknownOrganization`] (retry
    /// later) if the organization's account does not exist yet.
    pub async fn on_person_created(
        &self,
        event_id: Uuid,
        event: &PersonCreated,
    ) -> Result<PersonProvisioned, AuthnError> {
        let account_id = self.account_for(event.organization_id)?;
        let tenant: TenantId = account_id.tenant();
        if self.service.account(tenant).await?.id.is_none() {
            return Err(AuthnError::UnknownOrganization(event.organization_id));
        }
        let request = request("person", event.person_id, event_id)?;
        let user_id = self.service.admin().user_id_for(&request, account_id);
        if self.service.user(tenant, user_id).await?.is_some() {
            return Ok(PersonProvisioned::AlreadyExists {
                user_id,
                account_id,
            });
        }
        let temporary = temporary_password(self.service.config().password_policy.min_length)?;
        let mut metadata = BTreeMap::new();
        metadata.insert(
            "person_id".to_owned(),
            Value::String(event.person_id.to_string()),
        );
        metadata.insert(
            "created_from".to_owned(),
            Value::String("identity_sync".to_owned()),
        );
        let created = self
            .service
            .create_user_with_password(
                &request,
                account_id,
                NewPasswordUser::new(event.email.as_str(), temporary.clone())
                    .metadata(metadata)
                    .must_change_password(),
            )
            .await?;
        // A concurrent delivery of the same event may have won the race:
        // then the stored password is the other one, and this one is void.
        let stored = self
            .service
            .user(tenant, created)
            .await?
            .and_then(|u| u.password_hash().cloned());
        if !self
            .service
            .verify_password(stored.as_ref(), &temporary)
            .await?
        {
            return Ok(PersonProvisioned::AlreadyExists {
                user_id: created,
                account_id,
            });
        }
        Ok(PersonProvisioned::Created {
            user_id: created,
            account_id,
            temporary_password: temporary,
        })
    }
}
