use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

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
            EngineError::Store(error) => ApiError::from(error),
            EngineError::Internal(error) => ApiError::from(error),
        }
    }
}

/// A store's failure, as [`store_failure`] answers it.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        store_failure(&error, &error)
    }
}

/// A store's error passed on with context is answered as the store's;
/// any other internal failure is logged in full and reported without
/// detail.
impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        match StoreError::of(&error) {
            Some(store) => store_failure(store, &error),
            None => internal(&error),
        }
    }
}

/// An unavailable database (a full disk, a read-only file) is a 503 that
/// says so: nothing was changed, and the same request may succeed later.
/// A lost commit is a 500 that says its outcome is unknown, since repeating
/// the request may apply it twice. Any other failure is the host's own.
/// `whole` is what is logged: the error with every context it gathered.
fn store_failure(error: &StoreError, whole: &dyn std::fmt::Display) -> ApiError {
    if let Some(unavailable) = error.unavailable() {
        tracing::warn!("request refused: {whole:#}");
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, unavailable.to_string());
    }
    match error {
        StoreError::OutcomeUnknown(_) => {
            tracing::error!("request's outcome unknown: {whole:#}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the connection to the database was lost as the request committed: it may or may not have taken effect; read the instance's status before repeating it",
            )
        }
        _ => internal(whole),
    }
}

/// A failure of the host's own: logged, and reported without detail.
fn internal(error: &dyn std::fmt::Display) -> ApiError {
    tracing::error!("request failed: {error:#}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the host could not complete the request; see its log",
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OutcomeUnknown, Unavailable};

    fn answered(error: anyhow::Error) -> ApiError {
        // As the engine passes a store's error on: converted, with context.
        ApiError::from(anyhow::Error::new(StoreError::from(error)).context("delivering an event"))
    }

    #[test]
    fn a_store_error_is_answered_by_what_was_written() {
        let refused = answered(anyhow::Error::new(Unavailable("the disk is full".into())));
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.message.contains("the disk is full"), "{refused:?}");

        let unknown = answered(anyhow::Error::new(OutcomeUnknown("reset".into())));
        assert_eq!(unknown.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(unknown.message.contains("may or may not"), "{unknown:?}");

        // An engine's error that holds the store's, passed on as any error.
        let full = StoreError::from(anyhow::Error::new(Unavailable("the disk is full".into())));
        let engine = crate::engine::EngineError::from(full);
        let refused = ApiError::from(anyhow::Error::new(engine));
        assert_eq!(
            refused.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{refused:?}"
        );

        let fault = answered(anyhow::anyhow!("a row that does not read"));
        assert_eq!(fault.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(fault.message.contains("see its log"), "{fault:?}");
    }
}
