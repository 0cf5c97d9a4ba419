//! Start and wait: `?timeout=N[&pollingInterval=M]` on a start or restart
//! answers with the instance's result when it finishes within `N` seconds,
//! as Durable Functions' `createAndWaitOnNewInstancePostUri` does, and with
//! the usual 202 check-status payload when it does not.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::time::Instant;

use super::ApiError;
use super::handlers::{ApiResult, QueryMap, bool_param};
use super::render::{Shown, json_value, status_body};
use crate::engine::Engine;
use crate::model::{Instance, InstanceId, RuntimeStatus};

/// The longest a request may wait for its instance.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the instance is looked at unless told otherwise.
const DEFAULT_POLLING_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest interval honoured.
const MIN_POLLING_INTERVAL: Duration = Duration::from_millis(10);

/// The wait parameters (for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct WaitQuery {
    /// Seconds to wait for the instance to finish (up to 600)
    timeout: Option<f64>,
    /// Seconds between looks at the instance, default 1
    #[param(rename = "pollingInterval")]
    polling_interval: Option<f64>,
}

/// How long to wait for a started instance, and how often to look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Wait {
    timeout: Duration,
    interval: Duration,
}

impl Wait {
    /// The wait the query asks for, if any; refused before anything starts
    /// when malformed.
    pub(super) fn from_query(query: &QueryMap) -> Result<Option<Wait>, ApiError> {
        // Read only once the instance has finished: checked now, so a
        // malformed one does not start an instance and then fail.
        bool_param(query, "returnInternalServerErrorOnFailure", false)?;
        let Some(timeout) = seconds_param(query, "timeout")? else {
            if query.contains_key("pollingInterval") {
                return Err(ApiError::bad_request(
                    "pollingInterval needs timeout: how many seconds to wait for the instance",
                ));
            }
            return Ok(None);
        };
        if timeout > MAX_TIMEOUT {
            return Err(ApiError::bad_request(format!(
                "timeout must be at most {} seconds; poll the statusQueryGetUri for longer waits",
                MAX_TIMEOUT.as_secs()
            )));
        }
        let interval = seconds_param(query, "pollingInterval")?
            .unwrap_or(DEFAULT_POLLING_INTERVAL.min(timeout));
        if interval > timeout {
            return Err(ApiError::bad_request(
                "pollingInterval must not be longer than timeout",
            ));
        }
        Ok(Some(Wait {
            timeout,
            interval: interval.max(MIN_POLLING_INTERVAL),
        }))
    }

    /// The instance once finished, or `None` if it is still going when the
    /// wait is over.
    pub(super) async fn for_finish(
        self,
        engine: &Engine,
        id: &InstanceId,
    ) -> Result<Option<Instance>, ApiError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(instance) = engine.instance(id).await?
                && instance.status.is_terminal()
            {
                return Ok(Some(instance));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(self.interval.min(deadline - now)).await;
        }
    }
}

/// What a waited-for start answers for a finished instance: a completed
/// one's output (200); otherwise its status, 200 or, for a failure with
/// `returnInternalServerErrorOnFailure=true`, 500.
pub(super) fn finished_response(instance: &Instance, query: &QueryMap) -> ApiResult {
    if instance.status == RuntimeStatus::Completed {
        let output = instance
            .output
            .as_deref()
            .map_or(serde_json::Value::Null, json_value);
        return Ok((StatusCode::OK, Json(output)).into_response());
    }
    let shown = Shown {
        input: true,
        history_output: false,
    };
    let body = Json(status_body(instance, None, shown));
    Ok((finished_status_code(instance, query)?, body).into_response())
}

/// 200 for a finished instance, but 500 for a failed one when the caller
/// asked with `returnInternalServerErrorOnFailure=true`.
pub(super) fn finished_status_code(
    instance: &Instance,
    query: &QueryMap,
) -> Result<StatusCode, ApiError> {
    let failure_is_error = bool_param(query, "returnInternalServerErrorOnFailure", false)?;
    Ok(
        if failure_is_error && instance.status == RuntimeStatus::Failed {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        },
    )
}

/// A non-negative number of seconds, fractions allowed.
fn seconds_param(query: &QueryMap, name: &str) -> Result<Option<Duration>, ApiError> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    text.parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!("{name} must be a number of seconds, not '{text}'"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> QueryMap {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn waits_only_when_asked_and_within_limits() {
        assert_eq!(Wait::from_query(&query(&[])).unwrap(), None);
        let wait = Wait::from_query(&query(&[("timeout", "10"), ("pollingInterval", "0.5")]))
            .unwrap()
            .unwrap();
        assert_eq!(wait.timeout, Duration::from_secs(10));
        assert_eq!(wait.interval, Duration::from_millis(500));
        let wait = Wait::from_query(&query(&[("timeout", "3")]))
            .unwrap()
            .unwrap();
        assert_eq!(wait.interval, Duration::from_secs(1));
        for bad in [
            &[("timeout", "-1")][..],
            &[("timeout", "soon")],
            &[("timeout", "601")],
            &[("timeout", "1"), ("pollingInterval", "2")],
            &[("pollingInterval", "1")],
        ] {
            assert!(Wait::from_query(&query(bad)).is_err(), "{bad:?}");
        }
    }
}
