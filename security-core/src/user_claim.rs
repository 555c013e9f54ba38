//! The claim on a user id: which account a user id belongs to, store-wide.
//!
//! User ids are not secret (they are the `sub` of every access token), and
//! [`AdminService::create_user_with_id`](crate::AdminService::create_user_with_id)
//! takes one from the caller. Anything keyed by the user id alone (a
//! revocation list, an external system) would mix two users of two
//! tenants sharing an id, so an id may belong to one account only. The
//! claim is a stream per user id in the system tenant; its first event is
//! appended with [`ExpectedVersion::NoStream`](crate::ExpectedVersion), so
//! of any number of processes claiming one id at once, over one store,
//! exactly one wins and the others see the id taken.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, CommandContext};
use crate::error::DomainError;
use crate::ids::{AccountId, TenantId, UserId};
use crate::impl_domain_event;

/// Commands of a user-id claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserIdClaimCommand {
    /// Claims the id for an account: a no-op if that account holds it
    /// already, refused if another does.
    Claim {
        /// The id.
        user_id: UserId,
        /// The account it is for.
        account_id: AccountId,
    },
}

/// Events of a user-id claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserIdClaimEvent {
    /// The id now belongs to the account, for good.
    UserIdClaimed {
        /// The id.
        user_id: UserId,
        /// Its account.
        account_id: AccountId,
        /// When.
        claimed_at: DateTime<Utc>,
    },
}

impl_domain_event!(UserIdClaimEvent, version = 1, types = [UserIdClaimed]);

/// Which account holds a user id (lives in the system tenant, one stream
/// per user id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserIdClaim {
    /// The account holding the id (`None`: free).
    pub account_id: Option<AccountId>,
}

impl Aggregate for UserIdClaim {
    const TYPE: &'static str = "user_id_claim";
    type Command = UserIdClaimCommand;
    type Event = UserIdClaimEvent;
    type Error = DomainError;

    fn handle(
        &self,
        command: &UserIdClaimCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<UserIdClaimEvent>, DomainError> {
        let UserIdClaimCommand::Claim {
            user_id,
            account_id,
        } = command;
        if ctx.tenant_id != TenantId::SYSTEM {
            return Err(DomainError::WrongAccount);
        }
        match self.account_id {
            Some(holder) if holder == *account_id => Ok(Vec::new()),
            Some(_) => Err(DomainError::AlreadyExists { kind: "user" }),
            None => Ok(vec![UserIdClaimEvent::UserIdClaimed {
                user_id: *user_id,
                account_id: *account_id,
                claimed_at: ctx.now,
            }]),
        }
    }

    fn apply(&mut self, event: &UserIdClaimEvent) {
        let UserIdClaimEvent::UserIdClaimed { account_id, .. } = event;
        self.account_id = Some(*account_id);
    }
}
