use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error response: a status code and a message for a person.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn instance_not_found(id: &str) -> ApiError {
        ApiError::not_found(format!("no instance with ID '{id}'"))
    }
}

/// Every error response's body: one message under the three names clients
/// read (Durable Functions answers `Message` and `ExceptionMessage`; the
/// Python client fails on a 400 without the latter).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub message: String,
    /// The same, as Durable Functions names it.
    #[serde(rename = "Message")]
    pub message_pascal: String,
    /// The same, as Durable Functions names it.
    #[serde(rename = "ExceptionMessage")]
    pub exception_message: String,
}

impl ErrorBody {
    fn new(message: String) -> ErrorBody {
        ErrorBody {
            message_pascal: message.clone(),
            exception_message: message.clone(),
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = Json(ErrorBody::new(self.message));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Overload or an unavailable database: come back soon, as with
            // a running instance's status.
            let retry = [(axum::http::header::RETRY_AFTER, super::render::RETRY_AFTER)];
            return (status, retry, body).into_response();
        }
        (status, body).into_response()
    }
}

impl From<crate::engine::EngineError> for ApiError {
    fn from(error: crate::engine::EngineError) -> ApiError {
        use crate::engine::EngineError;
        match error {
            EngineError::Overloaded(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            }
            // 400, as Durable Functions answers (its clients expect it).
            EngineError::UnknownOrchestrator(_) | EngineError::UnknownEntity(_) => {
                ApiError::bad_request(error.to_string())
            }
            EngineError::Internal(error) => ApiError::from(error),
        }
    }
}

/// Internal failures are logged in full and reported without detail; an
/// unavailable database (a full disk, a read-only file) is a 503 that says
/// so: nothing was changed, and the same request may succeed later.
impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        if let Some(unavailable) = crate::store::unavailable(&error) {
            tracing::warn!("request refused: {error:#}");
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, unavailable.to_string());
        }
        tracing::error!("request failed: {error:#}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the host could not complete the request; see its log",
        )
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                status,
                "the request body is larger than the host accepts (see --max-body-bytes)",
            );
        }
        ApiError::new(
            status,
            format!("cannot read the request body: {}", rejection.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(format!("invalid query string: {}", rejection.body_text()))
    }
}
