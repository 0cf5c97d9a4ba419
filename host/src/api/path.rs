//! Requests as Durable Functions reads them, before routing: a trailing `/`
//! does not matter (both official clients list with `instances/`), nor does
//! the case of the route's fixed words (`Instances/x/Terminate`); and the
//! parameters that choose *where* instances live (`taskHub`, `connection`)
//! must name this host's one task hub, or the request would act on
//! instances the caller did not mean.

use axum::extract::Request;
use axum::http::Uri;
use axum::http::uri::PathAndQuery;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, BASE_PATH};

/// The first segment after the base path of every route.
const ROUTES: [&str; 9] = [
    "orchestrators",
    "instances",
    "functions",
    "entities",
    "durableClient",
    "openapi.json",
    "counts",
    "versions",
    "bulk",
];

/// What may follow `instances/{instanceId}/`.
const OPERATIONS: [&str; 6] = [
    "raiseEvent",
    "terminate",
    "suspend",
    "resume",
    "restart",
    "rewind",
];

/// Rewrites the request's path to its canonical form, so the router sees
/// one spelling of each route.
pub(super) async fn canonicalize(mut request: Request) -> Request {
    if let Some(path) = canonical_path(request.uri().path()) {
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) {
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The canonical spelling of `path`, when it differs.
fn canonical_path(path: &str) -> Option<String> {
    let base = path.get(..BASE_PATH.len())?;
    if !base.eq_ignore_ascii_case(BASE_PATH) {
        return None;
    }
    let rest = &path[BASE_PATH.len()..];
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let trimmed = rest.trim_matches('/');
    let mut canonical = BASE_PATH.to_owned();
    if !trimmed.is_empty() {
        let mut segments: Vec<&str> = trimmed.split('/').collect();
        segments[0] = canonical_word(segments[0], &ROUTES);
        if segments[0] == "instances"
            && let Some(operation) = segments.get_mut(2)
        {
            *operation = canonical_word(operation, &OPERATIONS);
        }
        canonical.push('/');
        canonical.push_str(&segments.join("/"));
    }
    (canonical != path).then_some(canonical)
}

fn canonical_word<'a>(given: &'a str, words: &[&'static str]) -> &'a str {
    words
        .iter()
        .find(|word| word.eq_ignore_ascii_case(given))
        .copied()
        .unwrap_or(given)
}

/// Refuses a request addressed to another task hub or storage connection.
pub(super) async fn require_task_hub(
    task_hub: std::sync::Arc<str>,
    request: Request,
    next: Next,
) -> Response {
    let query = request.uri().query().unwrap_or_default();
    if let Some(hub) = query_value(query, "taskHub")
        && !hub.eq_ignore_ascii_case(&task_hub)
    {
        return ApiError::bad_request(format!(
            "this host serves the task hub '{task_hub}', not '{hub}' (taskHub); start another host for another task hub"
        ))
        .into_response();
    }
    for name in ["connection", "connectionName"] {
        if let Some(connection) = query_value(query, name) {
            return ApiError::bad_request(format!(
                "{name}={connection}: a Reprise host has one store, chosen with --db; leave out {name}"
            ))
            .into_response();
        }
    }
    next.run(request).await
}

/// The percent-decoded value of the first `name=` pair of `query`.
pub(super) fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Refuses at start-up a task hub name clients could not send back.
pub fn check_task_hub_name(name: &str) -> anyhow::Result<()> {
    let valid = (1..=45).contains(&name.len())
        && name.starts_with(|first: char| first.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    anyhow::ensure!(
        valid,
        "the task hub name '{name}' must be 1 to 45 letters and digits, starting with a letter"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slashes_and_the_case_of_fixed_words_do_not_matter() {
        let base = BASE_PATH;
        let cases = [
            (format!("{base}/instances/"), format!("{base}/instances")),
            (
                format!("{base}/Instances/Ab/RaiseEvent/Go/"),
                format!("{base}/instances/Ab/raiseEvent/Go"),
            ),
            (
                format!("{base}/instances/x/TERMINATE"),
                format!("{base}/instances/x/terminate"),
            ),
            (
                "/Runtime/Webhooks/DurableTask/Orchestrators/Hello".to_owned(),
                format!("{base}/orchestrators/Hello"),
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(canonical_path(&given), Some(expected), "{given}");
        }
    }

    #[test]
    fn canonical_paths_and_ids_are_left_alone() {
        let base = BASE_PATH;
        for path in [
            format!("{base}/instances"),
            format!("{base}/instances/Terminate"),
            format!("{base}/orchestrators/Terminate/Resume"),
            "/elsewhere/".to_owned(),
            format!("{base}x/instances"),
        ] {
            assert_eq!(canonical_path(&path), None, "{path}");
        }
    }

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(
            query_value("a=1&taskHub=my%20hub", "taskHub").as_deref(),
            Some("my hub")
        );
        assert_eq!(query_value("taskHubs=x", "taskHub"), None);
    }

    #[test]
    fn task_hub_names_are_letters_and_digits() {
        assert!(check_task_hub_name("reprise").is_ok());
        assert!(check_task_hub_name("Hub2").is_ok());
        for bad in ["", "2hub", "my-hub", "my hub", &"h".repeat(46)] {
            assert!(check_task_hub_name(bad).is_err(), "{bad}");
        }
    }
}
