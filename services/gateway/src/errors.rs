//! The one place where gRPC codes become HTTP statuses (grpc-gateway's table), and the
//! error body `{"code": <gRPC code>, "message": "...", "details": [...]}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tonic::Code;

/// grpc-gateway's `HTTPStatusFromCode`.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON error object of a status, with its `BadRequest` field violations.
pub fn error_body(status: &tonic::Status) -> Value {
    use tonic_types::StatusExt;
    let mut details = Vec::new();
    if let Some(bad) = status.get_details_bad_request() {
        let violations: Vec<Value> = bad
            .field_violations
            .iter()
            .map(|v| json!({"field": v.field, "description": v.description}))
            .collect();
        details.push(json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "field_violations": violations}));
    }
    json!({"code": status.code() as i32, "message": status.message(), "details": details})
}

/// An error response for a status.
pub fn error_response(status: &tonic::Status) -> Response {
    let mut resp = (http_status(status.code()), axum::Json(error_body(status))).into_response();
    if status.code() == Code::Unauthenticated {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

/// A 400 for a bad query parameter, shaped like the service's own INVALID_ARGUMENT. The
/// field is a parameter name the caller sent: quoted within the echo bound when it is
/// not one of ours.
pub fn bad_parameter(field: &str, message: impl std::fmt::Display) -> Response {
    use tonic_types::{ErrorDetails, StatusExt};
    let field = if field.len() <= 64 && field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        field.to_owned()
    } else {
        config_backup_core::domain::quote_input(field)
    };
    let message = config_backup_core::domain::bounded(
        &format!("{field}: {message}"),
        config_backup_core::domain::MAX_MESSAGE_BYTES,
    );
    let details = ErrorDetails::with_bad_request_violation(field, message.clone());
    error_response(&tonic::Status::with_error_details(
        Code::InvalidArgument,
        message,
        details,
    ))
}

/// 431 for a request whose headers are larger than the service reads
/// (RESOURCE_EXHAUSTED in the body; grpc-gateway's table has no header limit).
pub fn headers_too_large(message: String) -> Response {
    let status = tonic::Status::resource_exhausted(message);
    (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        axum::Json(error_body(&status)),
    )
        .into_response()
}

/// 404 for a path no route serves (grpc-gateway's routing error: NOT_FOUND).
pub fn route_not_found(path: &str) -> Response {
    let status = tonic::Status::not_found(format!("Not Found: {}", config_backup_core::domain::quote_input(path)));
    error_response(&status)
}

/// 405 for a route asked with a method it does not serve (grpc-gateway's routing error:
/// UNIMPLEMENTED in the body).
pub fn method_not_allowed(method: &axum::http::Method, path: &str) -> Response {
    let status = tonic::Status::unimplemented(format!(
        "Method Not Allowed: {method} {}",
        config_backup_core::domain::quote_input(path)
    ));
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(error_body(&status))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_grpc_gateways() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::Aborted), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::Unavailable), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(http_status(Code::Unimplemented), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(http_status(Code::Internal), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn unauthenticated_carries_www_authenticate() {
        let r = error_response(&tonic::Status::unauthenticated("no"));
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
