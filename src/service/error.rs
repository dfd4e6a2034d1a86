//! API errors as JSON, `{"error": {"code": "…", "message": "…"}}`, with stable codes:
//! `unauthenticated` 401, `forbidden` 403, `not_found` 404, `conflict` 409, `refused`
//! 422 (a business `Refusal`), `bad_request` 400, `internal` 500.
//!
//! **Invariants:** an internal error's text never reaches the client (it is logged
//! with digit runs masked); a refusal's text is the engine's, which masks personal data.

use crate::cli::Refusal;
use crate::domain::mask::mask_digits_in_text;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid bearer token is required",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn refused(refusal: &Refusal) -> ApiError {
        let message = refusal.to_string();
        // A second standing run or a repeated approval conflicts with what exists.
        if refusal.summary.contains("already stands")
            || refusal.summary.contains("has already approved")
        {
            return ApiError::new(StatusCode::CONFLICT, "conflict", message);
        }
        if refusal.summary.starts_with("no run ") {
            return ApiError::not_found(message);
        }
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        if let Some(refusal) = error.downcast_ref::<Refusal>() {
            return ApiError::refused(refusal);
        }
        tracing::error!(
            "internal error: {}",
            mask_digits_in_text(&format!("{error:#}"))
        );
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the service log",
        )
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        ApiError::from(anyhow::Error::from(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}
