//! Requests a web page makes. The host listens where a browser can reach
//! it (on loopback, the developer's own), and a browser sends any site's
//! form or script to it: so a request that may change something is
//! refused unless it comes from the host's own pages (the dashboard) or
//! from outside a browser (the CLI, the official clients, curl: they send
//! neither `Origin` nor `Sec-Fetch-Site`). And without an access key, the
//! host answers only requests addressed to a loopback name, so a site
//! whose name a DNS trick pointed at 127.0.0.1 cannot read it either.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Whether the host requires an access key (then any name may address
/// it: the key is the guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyed {
    Yes,
    No,
}

pub(super) async fn guard(keyed: Keyed, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if keyed == Keyed::No
        && let Some(host) = host_name(headers)
        && !is_loopback(&host)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this host has no access key, so it answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]), not to '{host}'; serve with --key to be reached by other names"
            ),
        )
        .into_response();
    }
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes && from_another_site(headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "a web page of another site may not change anything here: use the host's own dashboard, or a client outside the browser",
        )
        .into_response();
    }
    next.run(request).await
}

/// The name the request is addressed to (`Host`, without its port).
fn host_name(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = match host.strip_prefix('[') {
        // An IPv6 literal: `[::1]:7071`.
        Some(rest) => format!("[{}]", rest.split(']').next().unwrap_or_default()),
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, _)| name)
            .to_owned(),
    };
    Some(name.to_ascii_lowercase())
}

fn is_loopback(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|address| address.is_loopback())
}

/// A browser says where a request comes from: `Sec-Fetch-Site` (anything
/// but the same origin, or a user's own navigation), or an `Origin` other
/// than the host the request is addressed to.
fn from_another_site(headers: &HeaderMap) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok());
    if site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return true;
    }
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let authority = origin.split_once("://").map(|(_, authority)| authority);
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    match (authority, host) {
        (Some(authority), Some(host)) => !authority.eq_ignore_ascii_case(host),
        // `Origin: null` (a sandboxed frame, a file) or no `Host`.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn loopback_names_are_told_from_others() {
        for name in [
            "localhost:7071",
            "127.0.0.1:7071",
            "[::1]:7071",
            "app.localhost",
            "127.1.2.3",
        ] {
            let host = host_name(&headers(&[("host", name)])).unwrap();
            assert!(is_loopback(&host), "{name}");
        }
        for name in [
            "evil.example:7071",
            "10.0.0.1:7071",
            "[::2]:7071",
            "localhost.evil.example",
        ] {
            let host = host_name(&headers(&[("host", name)])).unwrap();
            assert!(!is_loopback(&host), "{name}");
        }
    }

    #[test]
    fn only_the_hosts_own_pages_and_non_browsers_are_from_this_site() {
        let host = ("host", "127.0.0.1:7071");
        assert!(!from_another_site(&headers(&[host])));
        assert!(!from_another_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1:7071"),
            ("sec-fetch-site", "same-origin"),
        ])));
        for foreign in [
            headers(&[host, ("origin", "https://evil.example")]),
            headers(&[host, ("origin", "http://localhost:3000")]),
            headers(&[host, ("origin", "null")]),
            headers(&[host, ("sec-fetch-site", "cross-site")]),
            headers(&[host, ("sec-fetch-site", "same-site")]),
        ] {
            assert!(from_another_site(&foreign), "{foreign:?}");
        }
    }
}
