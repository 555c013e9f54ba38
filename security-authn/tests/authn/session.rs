//! The Session aggregate, given/when/then.

use chrono::{TimeZone, Utc};
use security_authn::{Session, SessionCommand, SessionError, SessionEvent, SessionStatus};
use security_core::testing::AggregateTest;
use security_core::{
    AuthMethod, ClientInfo, CommandContext, CredentialType, KeyId, SealedSecret, SessionId,
    TenantId, UserId,
};
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

fn seed() -> SealedSecret {
    SealedSecret::new(KEY, "sealed-seed".to_owned())
}

/// Started at 0, first token until 100, the session until 1000.
fn started() -> SessionEvent {
    SessionEvent::SessionStarted {
        session_id: SESSION,
        user_id: USER,
        method: AuthMethod::Password,
        opened_by: Some(CredentialType::Password),
        passkey: None,
        client: ClientInfo::default(),
        seed: seed(),
        expires_at: at(100).now,
        absolute_expires_at: at(1000).now,
        started_at: at(0).now,
    }
}

fn rotated(generation: u32, secs: i64, expires: i64) -> SessionEvent {
    SessionEvent::SessionRotated {
        session_id: SESSION,
        user_id: USER,
        generation,
        expires_at: at(expires).now,
        client: ClientInfo::default(),
        rotated_at: at(secs).now,
    }
}

fn refresh(presented_generation: u32, expires: i64) -> SessionCommand {
    SessionCommand::Refresh {
        presented_generation,
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
            opened_by: Some(CredentialType::Password),
            passkey: None,
            client: ClientInfo::default(),
            seed: seed(),
            expires_at: at(100).now,
            absolute_expires_at: at(1000).now,
        })
        .then_expect_events(vec![started()]);
    assert!(state.is_active());
    assert_eq!(state.generation, 0);
    assert_eq!(state.seed, Some(seed()));
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
        .when(refresh(0, 200))
        .then_expect_error(&SessionError::NotFound);
}

#[test]
fn the_current_generation_rotates() {
    let state = AggregateTest::<Session>::new(at(10))
        .given([started()])
        .when(refresh(0, 110))
        .then_expect_events(vec![rotated(1, 10, 110)]);
    assert_eq!(state.generation, 1);
    assert_eq!(state.last_refreshed_at, Some(at(10).now));
}

#[test]
fn an_older_generation_revokes_the_family() {
    let state = AggregateTest::<Session>::new(at(20))
        .given([started(), rotated(1, 10, 110), rotated(2, 15, 115)])
        .when(refresh(0, 120))
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
            rotated(1, 10, 110),
            SessionEvent::SessionRevoked {
                session_id: SESSION,
                user_id: USER,
                reason: "r".into(),
                revoked_at: at(20).now,
            },
        ])
        .when(refresh(1, 121))
        .then_expect_error(&SessionError::Revoked);
}

#[test]
fn unknown_generations_and_expired_tokens_are_refused() {
    AggregateTest::<Session>::new(at(10))
        .given([started()])
        .when(refresh(1, 110))
        .then_expect_error(&SessionError::UnknownToken);
    AggregateTest::<Session>::new(at(100))
        .given([started()])
        .when(refresh(0, 200))
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

#[test]
fn refreshes_never_move_the_absolute_expiry() {
    // Each rotation asks for a fresh idle lifetime; the token never lives
    // past the session's end, and at the end nothing rotates.
    let state = AggregateTest::<Session>::new(at(950))
        .given([started(), rotated(1, 900, 990)])
        .when(refresh(1, 1050))
        .then_expect_events(vec![rotated(2, 950, 1000)]);
    assert_eq!(state.absolute_expires_at, Some(at(1000).now));
    AggregateTest::<Session>::new(at(1000))
        .given([started(), rotated(1, 900, 990), rotated(2, 950, 1000)])
        .when(refresh(2, 1100))
        .then_expect_error(&SessionError::Expired);
    // A first token asked to outlive the session is cut at its end.
    let state = AggregateTest::<Session>::new(at(0))
        .when(SessionCommand::Start {
            session_id: SESSION,
            user_id: USER,
            method: AuthMethod::ApiToken,
            opened_by: Some(CredentialType::Token),
            passkey: None,
            client: ClientInfo::default(),
            seed: seed(),
            expires_at: at(5000).now,
            absolute_expires_at: at(1000).now,
        })
        .then_expect_events(vec![SessionEvent::SessionStarted {
            session_id: SESSION,
            user_id: USER,
            method: AuthMethod::ApiToken,
            opened_by: Some(CredentialType::Token),
            passkey: None,
            client: ClientInfo::default(),
            seed: seed(),
            expires_at: at(1000).now,
            absolute_expires_at: at(1000).now,
            started_at: at(0).now,
        }]);
    assert!(state.is_over(at(1000).now) && !state.is_over(at(999).now));
}
