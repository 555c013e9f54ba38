//! The sessions read model ("your devices"), fed from the store.

use std::sync::Arc;

use security_authn::SessionsView;
use security_core::{EventStore, InMemoryCheckpoints, ProjectionRunner, Scope, SessionId};

use crate::common::{Fixture, client};

#[tokio::test]
async fn the_view_lists_live_sessions_and_forgets_ended_ones() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let view = SessionsView::new();
    let store: Arc<dyn EventStore> = f.store.clone();
    let mut runner = ProjectionRunner::new(
        Arc::clone(&store),
        Arc::new(InMemoryCheckpoints::new()),
        view.projection(),
        Scope::All,
    )
    .await
    .unwrap();

    let first = f.tokens("alice").await;
    f.advance(1);
    let second = f.tokens("alice").await;
    let bobs = f.tokens("bob").await;
    runner.catch_up().await.unwrap();
    assert_eq!(view.position(), store.head_position().await.unwrap());
    let listed: Vec<SessionId> = view
        .sessions(f.tenant(), alice, f.now())
        .iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(listed, vec![second.session_id, first.session_id]);
    assert!(view.owns(f.tenant(), alice, first.session_id, f.now()));
    // Another user's session is not alice's, and the other way round.
    assert!(!view.owns(f.tenant(), alice, bobs.session_id, f.now()));
    assert!(!view.owns(f.tenant(), bob, first.session_id, f.now()));

    // A refresh shows; a logout removes the session.
    f.advance(1);
    f.authn
        .refresh(&second.refresh_token, &client("203.0.113.9"))
        .await
        .unwrap();
    f.authn.logout(&first.refresh_token).await.unwrap();
    runner.catch_up().await.unwrap();
    let sessions = view.sessions(f.tenant(), alice, f.now());
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session_id, second.session_id);
    assert!(sessions[0].last_refreshed_at.is_some());
    assert_eq!(sessions[0].client.ip, Some("203.0.113.9".parse().unwrap()));

    // Past the refresh token's lifetime nothing is live.
    let later = f.now() + chrono::Duration::days(8);
    assert!(view.sessions(f.tenant(), alice, later).is_empty());

    // A revoke-all ends every session of the user, not the others'.
    f.authn
        .revoke_all_sessions(f.tenant(), alice, "password reset")
        .await
        .unwrap();
    runner.catch_up().await.unwrap();
    assert!(view.sessions(f.tenant(), alice, f.now()).is_empty());
    assert_eq!(view.sessions(f.tenant(), bob, f.now()).len(), 1);

    // Rebuilt from position 0, the view is the same.
    runner.rebuild().await.unwrap();
    assert!(view.sessions(f.tenant(), alice, f.now()).is_empty());
    assert_eq!(view.sessions(f.tenant(), bob, f.now()).len(), 1);
}

#[tokio::test]
async fn the_jwks_lists_the_tenants_signing_keys_and_drops_revoked_ones() {
    let f = Fixture::new().await;
    f.user("alice").await;
    let tokens = f.tokens("alice").await;
    let set = f.authn.jwks(f.tenant()).await.unwrap();
    assert_eq!(set.keys.len(), 1);
    let old = set.keys[0].kid.clone().unwrap();
    let next = f.authn.rotate_signing_key(f.tenant()).await.unwrap();
    let set = f.authn.jwks(f.tenant()).await.unwrap();
    let kids: Vec<String> = set.keys.iter().filter_map(|k| k.kid.clone()).collect();
    assert_eq!(kids.len(), 2, "the rotated key still verifies live tokens");
    assert!(kids.contains(&next.to_string()) && kids.contains(&old));
    f.authn
        .revoke_signing_key(f.tenant(), old.parse().unwrap())
        .await
        .unwrap();
    let set = f.authn.jwks(f.tenant()).await.unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0].kid.as_deref(), Some(next.to_string().as_str()));
    // The refresh token names its tenant.
    assert_eq!(
        f.authn.refresh_token_tenant(&tokens.refresh_token),
        Some(f.tenant())
    );
    assert_eq!(
        f.authn
            .refresh_token_tenant(&secrecy::SecretString::from("sec_rt_junk".to_owned())),
        None
    );
}
