//! Quickstart: the security domain in memory, no services needed.
//!
//! Creates an operator, a tenant account, a policy and users through the
//! command API; prints the event log (as published: sealed secrets
//! removed); and rebuilds a user as it was at an earlier time. Then
//! authentication: TOTP enrolment, a password + TOTP login, the access
//! token validated, a refresh, and a replayed refresh token caught.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use secrecy::SecretString;
use security::Security;
use security::core::{
    AccountClaims, AccountLimits, Actor, ClientInfo, Clock, Credential, GlobalQuery, KeyOwner,
    ManualClock, NewPolicy, NewUser, Permissions, Request, ResourceLimits, RoleName, Scope,
    StoredEvent, SubjectPermissions, TenantId, Until, UserId,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // A clock we move by hand, so that "as of an earlier time" reads well.
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
            .single()
            .ok_or("bad time")?,
    ));
    let security = Security::builder().clock(clock.clone()).build()?;
    let admin = security.admin();
    let request = Request::by(Actor::service("quickstart"));

    // 1. The root of trust, and a tenant signed by it.
    let operator = admin.create_operator(&request, "Acme Operator").await?;
    let claims = AccountClaims {
        limits: AccountLimits {
            max_users: Some(100),
            ..AccountLimits::default()
        },
        default_permissions: Permissions {
            subscribe: SubjectPermissions::from_patterns(["_INBOX.>"], Vec::<String>::new())?,
            ..Permissions::default()
        },
        ..AccountClaims::default()
    };
    let account = admin
        .create_account(&request, operator, "Acme Bank", claims)
        .await?;
    let tenant = account.tenant();
    println!("operator {operator}\naccount  {account} (tenant)");

    // 2. A policy: publish and subscribe on orders, never delete them.
    let permissions = Permissions {
        publish: SubjectPermissions::from_patterns(["orders.>"], ["orders.delete"])?,
        subscribe: SubjectPermissions::from_patterns(["orders.>"], Vec::<String>::new())?,
        allow_responses: None,
    };
    let limits = ResourceLimits {
        max_payload_size: Some(64 * 1024),
        ..ResourceLimits::default()
    };
    let policy = admin
        .create_policy(
            &request,
            tenant,
            NewPolicy::new("orders")
                .description("order service")
                .permissions(permissions)
                .limits(limits),
        )
        .await?;

    // 3. Users. The password is hashed (argon2id) and the hash is sealed
    //    with the user's own data key before it goes into any event.
    let mut users = Vec::new();
    for (name, password) in [
        ("alice@acme.test", "Correct-Horse-42!"),
        ("bob@acme.test", "Battery-Staple-17?"),
    ] {
        let user_id = admin.user_id_for(&request, account);
        let hash = security
            .password_hasher()
            .hash(&SecretString::from(password))?;
        let sealed = security
            .key_store()
            .seal(
                KeyOwner::new(tenant, user_id),
                secrecy::ExposeSecret::expose_secret(&hash).as_bytes(),
            )
            .await?;
        let new_user = NewUser {
            username: name.to_owned(),
            credential: Credential::Password { hash: sealed },
            metadata: BTreeMap::new(),
            must_change_password: false,
        };
        users.push(
            admin
                .create_user_with_id(&request, account, user_id, new_user)
                .await?,
        );
    }
    let (alice, bob) = (users[0], users[1]);
    let before_policy = clock.now();

    // 4. An hour later: alice gets the policy and a role; bob is locked.
    clock.advance(Duration::hours(1));
    admin.assign_policy(&request, tenant, alice, policy).await?;
    admin
        .assign_role(&request, tenant, alice, RoleName::new("officer")?)
        .await?;
    admin
        .lock_user(&request, tenant, bob, "suspicious activity")
        .await?;

    // A rule of the domain: the same policy cannot be assigned twice.
    let twice = admin.assign_policy(&request, tenant, alice, policy).await;
    println!(
        "assigning the policy again: {}",
        twice.err().map_or_else(String::new, |e| e.to_string())
    );

    // 5. The event log, as a publisher would see it (no sealed field).
    println!("\nevent log:");
    let events = security
        .store()
        .read_global(Scope::All, GlobalQuery::after(0, 1000))
        .await?;
    for event in &events {
        print_event(event);
    }

    // 6. Time travel: alice now, and alice as she was before the policy.
    let now = admin.user(tenant, alice).await?;
    let then = admin
        .user_as_of(tenant, alice, Until::Time(before_policy))
        .await?;
    println!(
        "\nalice now:    policies {:?}, roles {:?}",
        now.policies, now.roles
    );
    println!(
        "alice before: policies {:?}, roles {:?}",
        then.policies, then.roles
    );
    println!("bob now: {:?}", admin.user(tenant, bob).await?.status);

    authentication(&security, clock.as_ref(), tenant, alice).await?;
    authorization(&security, tenant, alice, before_policy).await?;
    Ok(())
}

// ---- 7. Authentication (security-authn) -------------------------
//
// Alice enrols TOTP, logs in with her password and then a code, uses the
// access token, refreshes it; a replayed (stolen) refresh token is caught
// and ends the session.
async fn authentication(
    security: &Security,
    clock: &ManualClock,
    tenant: TenantId,
    alice: UserId,
) -> Result<(), Box<dyn Error>> {
    use secrecy::ExposeSecret as _;
    use security::authn::{AuthnError, LoginOutcome, TotpSecret};

    let authn = security.authentication().build()?;
    println!("\nauthentication:");

    // TOTP enrolment: an authenticator app would scan the QR code; here we
    // compute the codes from the secret. The first valid code turns MFA on.
    let enrollment = authn.start_totp_enrollment(tenant, alice).await?;
    let totp =
        TotpSecret::from_base32(enrollment.secret_base32.expose_secret()).ok_or("bad base32")?;
    let code = |at| authn.config().totp.code_at(&totp, at);
    let backup_codes = authn
        .confirm_totp_enrollment(tenant, alice, &code(clock.now())?)
        .await?;
    println!(
        "  MFA enrolled, {} backup codes shown once",
        backup_codes.len()
    );

    // Log in: password, then a code (of the next time step: each works once).
    clock.advance(Duration::seconds(30));
    let client = ClientInfo::new(Some("203.0.113.7".parse()?), Some("quickstart"));
    let password = SecretString::from("Correct-Horse-42!");
    let LoginOutcome::MfaRequired(challenge) = authn
        .authenticate(tenant, "alice@acme.test", &password, &client)
        .await?
    else {
        return Err("expected an MFA challenge".into());
    };
    let tokens = authn
        .verify_mfa(&challenge.challenge, &code(clock.now())?, &client)
        .await?
        .into_tokens()
        .ok_or("expected tokens")?;

    // The access token, validated in-process (what security-authz takes).
    let claims = authn
        .validate_access_token(tokens.access_token.expose_secret())
        .await?;
    println!(
        "  access token: user {}, roles {:?}, may publish orders.created: {}, orders.delete: {}",
        claims.user_id,
        claims.roles,
        claims.can_publish("orders.created"),
        claims.can_publish("orders.delete"),
    );

    // Refresh: a new pair; the old refresh token is dead from now on.
    clock.advance(Duration::minutes(10));
    let refreshed = authn.refresh(&tokens.refresh_token, &client).await?;
    println!("  refreshed: session {} continues", refreshed.session_id);

    // A thief replays the old refresh token: caught, the session is revoked.
    let thief = ClientInfo::new(Some("198.51.100.66".parse()?), Some("curl/8"));
    match authn.refresh(&tokens.refresh_token, &thief).await {
        Err(AuthnError::RefreshTokenReused) => {
            println!("  replayed refresh token caught: the whole session is revoked");
        }
        other => return Err(format!("the replay should have been caught: {other:?}").into()),
    }
    let after = authn
        .validate_access_token(refreshed.access_token.expose_secret())
        .await;
    println!("  the session's access token now: {after:?}");
    Ok(())
}

fn print_event(event: &StoredEvent) {
    let published = event.to_published();
    let payload = published.payload.to_string();
    let payload = if payload.chars().count() > 110 {
        format!("{}…", payload.chars().take(110).collect::<String>())
    } else {
        payload
    };
    println!(
        "  #{:<3} {} {:<8} v{:<2} {:<24} {}",
        event.global_position,
        event.occurred_at.format("%H:%M"),
        event.stream_id.aggregate_type,
        event.version,
        event.event_type,
        payload,
    );
}

// ---- 8. Authorization (security-authz) --------------------------
//
// The authorizer is a read model of the event log. Alice is an officer:
// she may approve a transaction, not delete a user; and an hour ago,
// before she had the role, she could not approve either.
async fn authorization(
    security: &Security,
    tenant: TenantId,
    alice: UserId,
    earlier: chrono::DateTime<Utc>,
) -> Result<(), Box<dyn Error>> {
    use security::authz::{Principal, Resource};
    use security::core::{InMemoryCheckpoints, Permission, ProjectionRunner};

    let (authz, projection) = security.authorization().build();
    let checkpoints = Arc::new(InMemoryCheckpoints::new());
    let mut runner = ProjectionRunner::new(
        Arc::clone(security.store()),
        checkpoints,
        projection,
        Scope::All,
    )
    .await?;
    runner.catch_up().await?;

    println!("\nauthorization:");
    let principal = Principal::new(tenant, alice);
    let here = Resource::in_tenant(tenant);
    for permission in ["transaction:approve", "user:delete"] {
        let permission: Permission = permission.parse()?;
        println!(
            "  alice {permission}: {}",
            authz.authorize(&principal, &permission, &here)
        );
    }
    let then = authz
        .as_of(security.store().as_ref(), Until::Time(earlier))
        .await?;
    let approve: Permission = "transaction:approve".parse()?;
    println!(
        "  alice transaction:approve as of {}: {}",
        earlier.format("%H:%M"),
        then.authorize(&principal, &approve, &here)
    );
    Ok(())
}
