//! How driver errors become store errors: transient failures are
//! retryable, everything else is a backend failure, and the driver's text
//! only ever travels as a source.

use security_core::StoreError;

/// SQLSTATEs after which retrying later may succeed. Every statement the
/// store sends is one transaction or part of one, so a failed one wrote
/// nothing and can be run again.
fn transient_state(code: &str) -> bool {
    // 08…: connection exceptions.
    code.starts_with("08")
        || matches!(
            code,
            // The transaction was rolled back: serialisation failure,
            // deadlock, completion unknown, unspecified.
            "40000" | "40001" | "40003" | "40P01"
            // Lock not available (lock_timeout, NOWAIT).
            | "55P03"
            // Statement cancelled: statement_timeout or a cancel request.
            | "57014"
            // Server shutting down (pg_terminate_backend, a restart),
            // crashed, starting; idle session timeout.
            | "57P01" | "57P02" | "57P03" | "57P05"
            // Idle-in-transaction timeout ended the session.
            | "25P03"
            // Too many connections; out of memory.
            | "53300" | "53200"
        )
}

/// Whether the error means the server could not be reached or went away.
///
/// A protocol error counts: the driver reports a peer that accepts the
/// connection and closes it at once (a proxy or balancer in front of a
/// server that is failing over) as an unexpected reply to its first
/// message, and discards any connection whose byte stream it could not
/// follow. Either way the statement did not run, or its outcome is as
/// unknown as after a lost connection.
pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
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
            "08006", "08001", "08P01", "40000", "40001", "40003", "40P01", "55P03", "57014",
            "57P01", "57P02", "57P03", "57P05", "25P03", "53300", "53200",
        ] {
            assert!(transient_state(code), "{code}");
        }
        for code in ["23505", "42501", "22021", "42P01"] {
            assert!(!transient_state(code), "{code}");
        }
        assert!(db(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(db(sqlx::Error::Protocol("unexpected response".into())).is_retryable());
        assert!(!db(sqlx::Error::RowNotFound).is_retryable());
    }
}
