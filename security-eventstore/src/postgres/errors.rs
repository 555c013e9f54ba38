//! How driver errors become store errors: transient failures are
//! retryable, everything else is a backend failure, and the driver's text
//! only ever travels as a source.

use security_core::StoreError;

/// SQLSTATEs after which retrying later may succeed.
fn transient_state(code: &str) -> bool {
    // 08: connection exceptions; 57P01-03: the server is shutting down,
    // crashed or starting; 53300: too many connections; 40001, 40P01:
    // serialisation failure, deadlock; 55P03: lock not available.
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55P03"
        )
}

/// Whether the error means the server could not be reached or went away.
pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| transient_state(&code)),
        _ => false,
    }
}

/// A driver error as a store error.
pub(crate) fn db(error: sqlx::Error) -> StoreError {
    if is_transient(&error) {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Backend(Box::new(error))
    }
}

/// Whether the error is a unique violation of this constraint.
pub(crate) fn is_unique_violation(error: &sqlx::Error, constraint: &str) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.code().as_deref() == Some("23505") && e.constraint() == Some(constraint)
        }
        _ => false,
    }
}

/// The store's role may not read every tenant's rows.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database role may not read every tenant: run migrate() as this role or grant it the tables' owner role"
)]
pub(crate) struct AllTenantsDenied;

/// A stored value is not what the store writes.
#[derive(Debug, thiserror::Error)]
#[error("the database holds {0}")]
pub(crate) struct Corrupt(pub(crate) &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_states_are_retryable() {
        for code in [
            "08006", "08001", "57P01", "57P03", "40001", "40P01", "53300",
        ] {
            assert!(transient_state(code), "{code}");
        }
        for code in ["23505", "42501", "22021", "42P01"] {
            assert!(!transient_state(code), "{code}");
        }
        assert!(db(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(!db(sqlx::Error::RowNotFound).is_retryable());
    }
}
