//! The one place where engine and auth errors become gRPC statuses. Callers see a
//! short, actionable message; the log gets the whole cause chain.

use config_backup_core::EngineError;
use config_backup_core::domain::{MAX_MESSAGE_BYTES, bounded};
use tonic::{Code, Status};

use crate::auth::AuthError;

/// INVALID_ARGUMENT naming the field, with a `BadRequest` field violation.
pub fn invalid_argument(field: &str, message: impl std::fmt::Display) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    // Every value a message quotes is already bounded (`quote_input`); this bounds the
    // rest, so no request can make the status trailers large.
    let message = bounded(&format!("{field}: {message}"), MAX_MESSAGE_BYTES);
    let details = ErrorDetails::with_bad_request_violation(field, message.clone());
    Status::with_error_details(Code::InvalidArgument, message, details)
}

fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl From<AuthError> for crate::ApiError {
    fn from(e: AuthError) -> Self {
        crate::ApiError(match e {
            AuthError::Unauthenticated(m) => Status::unauthenticated(m),
            AuthError::PermissionDenied(m) => Status::permission_denied(m),
        })
    }
}

impl From<EngineError> for crate::ApiError {
    fn from(e: EngineError) -> Self {
        crate::ApiError(match &e {
            EngineError::InvalidArgument { field, message } => invalid_argument(field, message),
            EngineError::NotFound(m) => Status::not_found(m.clone()),
            EngineError::Busy(holder) => Status::aborted(format!("a backup or rollback is already running: {holder}")),
            EngineError::Repository(_) => {
                tracing::error!(error = %cause_chain(&e), "the working copy needs attention");
                Status::failed_precondition(e.to_string())
            }
            EngineError::FailedPrecondition(m) => Status::failed_precondition(bounded(m, MAX_MESSAGE_BYTES)),
            EngineError::Store(s) => {
                tracing::error!(error = %cause_chain(&e), "database failure");
                match s.cause() {
                    Some(cause) => Status::unavailable(format!("the audit database is unavailable: {cause}")),
                    None => Status::unavailable("the audit database is unavailable; try again later"),
                }
            }
            EngineError::Internal(_) => {
                let reference = uuid::Uuid::new_v4();
                tracing::error!(error = %cause_chain(&e), %reference, "internal error");
                Status::internal(format!("internal error (reference {reference}); see the server log"))
            }
        })
    }
}

impl From<crate::ApiError> for Status {
    fn from(e: crate::ApiError) -> Self {
        e.0
    }
}
