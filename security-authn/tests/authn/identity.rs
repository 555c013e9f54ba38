//! Identity integration: PersonCreated and OrganizationCreated, idempotent.

use secrecy::ExposeSecret;
use security_authn::{
    AuthnError, IdentitySync, LoginOutcome, OrganizationCreated, PersonCreated, PersonProvisioned,
};
use security_core::EventStore as _;
use uuid::Uuid;

use crate::common::{Fixture, client};

#[tokio::test]
async fn identity_events_provision_accounts_and_users_once() {
    let f = Fixture::new().await;
    let sync = IdentitySync::new(f.authn.clone(), f.operator);
    let org = OrganizationCreated {
        org_id: Uuid::from_u128(0xA1),
        name: "Contoso".into(),
    };
    let person = PersonCreated {
        person_id: Uuid::from_u128(0xB1),
        email: "jane@contoso.example".into(),
        organization_id: org.org_id,
    };
    // A person before its organization: retry later.
    assert!(matches!(
        sync.on_person_created(Uuid::from_u128(2), &person).await,
        Err(AuthnError::UnknownOrganization(id)) if id == org.org_id
    ));
    let account_id = sync
        .on_organization_created(Uuid::from_u128(1), &org)
        .await
        .unwrap();
    assert_eq!(
        sync.on_organization_created(Uuid::from_u128(1), &org)
            .await
            .unwrap(),
        account_id
    );
    assert_eq!(sync.account_for(org.org_id).unwrap(), account_id);
    let account = f.authn.admin().account(account_id).await.unwrap();
    assert_eq!(account.name, "Contoso Account");
    assert_eq!(account.operator_id, Some(f.operator));
    assert_eq!(account.metadata["organization_id"], org.org_id.to_string());
    assert_eq!(account.limits, security_core::AccountLimits::default());

    let created = sync
        .on_person_created(Uuid::from_u128(2), &person)
        .await
        .unwrap();
    let PersonProvisioned::Created {
        user_id,
        temporary_password,
        ..
    } = &created
    else {
        panic!("{created:?}")
    };
    assert!(!format!("{created:?}").contains(temporary_password.expose_secret()));
    let again = sync
        .on_person_created(Uuid::from_u128(2), &person)
        .await
        .unwrap();
    assert!(matches!(again, PersonProvisioned::AlreadyExists { user_id: u, .. } if u == *user_id));
    let user = f
        .authn
        .admin()
        .user(account_id.tenant(), *user_id)
        .await
        .unwrap();
    assert_eq!(user.username, "jane@contoso.example");
    assert!(user.password_must_change);
    assert_eq!(user.metadata["person_id"], person.person_id.to_string());
    assert_eq!(user.metadata["created_from"], "identity_sync");
    // One account, one user, whatever the deliveries.
    let types: Vec<String> = f
        .store
        .read_global(
            security_core::Scope::All,
            security_core::GlobalQuery::after(0, 10_000),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_type.to_string())
        .collect();
    assert_eq!(types.iter().filter(|t| *t == "UserCreated").count(), 1);
    assert_eq!(
        types.iter().filter(|t| *t == "AccountCreated").count(),
        2,
        "acme and Contoso"
    );
    // The temporary password must be changed at the first login.
    let outcome = f
        .authn
        .authenticate(
            account_id.tenant(),
            &person.email,
            temporary_password,
            &client("198.51.100.1"),
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, LoginOutcome::PasswordChangeRequired(_)),
        "{outcome:?}"
    );
}
