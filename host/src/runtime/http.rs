//! Outgoing HTTP (`wasi:http`) for guests, limited to allowed hosts.
//!
//! Orchestrators may not make requests at all (they would not replay);
//! activities may reach the hosts the operator allowed. Both sandboxes link
//! `wasi:http`, so a component whose activities use it still loads its
//! orchestrators.

use std::future::Future;
use std::sync::Arc;

use http::Uri;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Hosts an activity may send requests to: `host` (any port) or `host:port`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<String>,
}

impl AllowedHosts {
    /// `entries` as given on the command line, e.g. `api.example.com` or
    /// `127.0.0.1:8080`; `*` allows every host.
    pub fn new(entries: impl IntoIterator<Item = String>) -> AllowedHosts {
        AllowedHosts {
            entries: entries
                .into_iter()
                .map(|entry| entry.trim().to_ascii_lowercase())
                .filter(|entry| !entry.is_empty())
                .collect(),
        }
    }

    pub fn allows(&self, uri: &Uri) -> bool {
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("http") => 80,
            _ => 443,
        });
        let with_port = format!("{host}:{port}");
        self.entries
            .iter()
            .any(|entry| entry == "*" || *entry == host || *entry == with_port)
    }
}

/// The `wasi:http` policy of one sandbox.
pub(super) enum HttpPolicy {
    /// Orchestrators, and guests only asked for their names: no requests.
    DenyAll,
    /// Activities: requests to the allowed hosts.
    Allow(Arc<AllowedHosts>),
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let refusal = match self {
            HttpPolicy::DenyAll => Some("orchestrators may not make requests; call an activity"),
            HttpPolicy::Allow(hosts) if !hosts.allows(request.uri()) => {
                Some("its host is not allowed (see --allow-http-host)")
            }
            HttpPolicy::Allow(_) => None,
        };
        if let Some(why) = refusal {
            tracing::warn!(uri = %request.uri(), "outgoing request denied: {why}");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_with_or_without_a_port() {
        let allowed = AllowedHosts::new(["api.example.com".into(), "127.0.0.1:8080".into()]);
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        assert!(allowed.allows(&uri("https://API.example.com/v1")));
        assert!(allowed.allows(&uri("http://api.example.com:9000/")));
        assert!(allowed.allows(&uri("http://127.0.0.1:8080/health")));
        assert!(!allowed.allows(&uri("http://127.0.0.1:8081/health")));
        assert!(!allowed.allows(&uri("http://127.0.0.1/health")));
        assert!(!allowed.allows(&uri("https://example.com/")));
        assert!(AllowedHosts::new(["*".into()]).allows(&uri("https://anything.test/")));
        assert!(!AllowedHosts::default().allows(&uri("https://api.example.com/")));
    }
}
