//! The Session aggregate, given/when/then.

use chrono::{TimeZone, Utc};
use security_authn::{Session, SessionCommand, SessionError, SessionEvent, SessionStatus};
use security_core::testing::AggregateTest;
use security_core::{AuthMethod, ClientInfo, CommandContext, KeyId, SessionId, TenantId, UserId};
use uuid::Uuid;

const SESSION: SessionId = SessionId::from_uuid(Uuid::from_u128(1));
const USER: UserId = UserId::from_uuid(Uuid::from_u128(2));
const KEY: KeyId = KeyId::from_uuid(Uuid::from_u128(3));

fn at(secs: i64) -> CommandContext {
    CommandContext::new(
        TenantId::from_uuid(Uuid::from_u128(9)),
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
    )
}

fn started() -> SessionEvent {
    SessionEvent::SessionStarted {
        session_id: SESSION,
        user_id: USER,
        method: AuthMethod::Password,
        client: ClientInfo::default(),
        token_hash: "h0".into(),
        hash_key_id: KEY,
        expires_at: at(100).now,
        started_at: at(0).now,
    }
}

fn rotated(generation: u32, hash: &str, secs: i64) -> SessionEvent {
    SessionEvent::SessionRotated {
        session_id: SESSION,
        user_id: USER,
        generation,
        token_hash: hash.into(),
        expires_at: at(secs + 100).now,
        client: ClientInfo::default(),
        rotated_at: at(secs).now,
    }
}

fn refresh(presented: &str, new: &str, expires: i64) -> SessionCommand {
    SessionCommand::Refresh {
        presented_hash: presented.into(),
        new_hash: new.into(),
        expires_at: at(expires).now,
        client: ClientInfo::default(),
    }
}

#[test]
fn start_once() {
    let state = AggregateTest::<Session>::new(at(0))
        .when(SessionCommand::Start {
            session_id: SESSION,
            user_id: USER,
            method: AuthMethod::Password,
            client: ClientInfo::default(),
            token_hash: "h0".into(),
            hash_key_id: KEY,
            expires_at: at(100).now,
        })
        .then_expect_events(vec![started()]);
    assert!(state.is_active());
    assert!(state.knows("h0"));
    AggregateTest::<Session>::new(at(0))
        .given([started()])
        .when(SessionCommand::Revoke { reason: "x".into() })
        .then_expect_events(vec![SessionEvent::SessionRevoked {
            session_id: SESSION,
            user_id: USER,
            reason: "x".into(),
            revoked_at: at(0).now,
        }]);
    AggregateTest::<Session>::new(at(0))
        .when(refresh("h0", "h1", 200))
        .then_expect_error(&SessionError::NotFound);
}

#[test]
fn the_current_token_rotates() {
    let state = AggregateTest::<Session>::new(at(10))
        .given([started()])
        .when(refresh("h0", "h1", 110))
        .then_expect_events(vec![rotated(1, "h1", 10)]);
    assert_eq!(state.generation, 1);
    assert_eq!(state.current_hash, "h1");
    assert_eq!(state.previous_hashes, vec!["h0".to_owned()]);
}

#[test]
fn an_old_token_revokes_the_family() {
    let state = AggregateTest::<Session>::new(at(20))
        .given([started(), rotated(1, "h1", 10), rotated(2, "h2", 15)])
        .when(refresh("h0", "h3", 120))
        .then_expect_events(vec![
            SessionEvent::RefreshTokenReuseDetected {
                session_id: SESSION,
                user_id: USER,
                presented_generation: 0,
                current_generation: 2,
                client: ClientInfo::default(),
                detected_at: at(20).now,
            },
            SessionEvent::SessionRevoked {
                session_id: SESSION,
                user_id: USER,
                reason: "refresh token reuse".into(),
                revoked_at: at(20).now,
            },
        ]);
    assert!(matches!(state.status, SessionStatus::Revoked { .. }));
    // Nothing works afterwards, the current token included.
    AggregateTest::<Session>::new(at(21))
        .given([
            started(),
            rotated(1, "h1", 10),
            SessionEvent::SessionRevoked {
                session_id: SESSION,
                user_id: USER,
                reason: "r".into(),
                revoked_at: at(20).now,
            },
        ])
        .when(refresh("h1", "h2", 121))
        .then_expect_error(&SessionError::Revoked);
}

#[test]
fn unknown_and_expired_tokens_are_refused() {
    AggregateTest::<Session>::new(at(10))
        .given([started()])
        .when(refresh("nope", "h1", 110))
        .then_expect_error(&SessionError::UnknownToken);
    AggregateTest::<Session>::new(at(100))
        .given([started()])
        .when(refresh("h0", "h1", 200))
        .then_expect_error(&SessionError::Expired);
    // Revoking twice changes nothing.
    AggregateTest::<Session>::new(at(30))
        .given([
            started(),
            SessionEvent::SessionRevoked {
                session_id: SESSION,
                user_id: USER,
                reason: "r".into(),
                revoked_at: at(20).now,
            },
        ])
        .when(SessionCommand::Revoke {
            reason: "again".into(),
        })
        .then_expect_events(vec![]);
}
