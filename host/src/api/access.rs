//! Access keys, as Durable Functions checks them: with a key configured,
//! every request carries it as the `code` query parameter or the
//! `x-functions-key` header, or gets 401. Reprise also takes it as the
//! password of HTTP basic authentication (any user name): the official
//! clients build their requests from `rpcBaseUrl` with no query string,
//! and send a key written into that URL (`http://reprise:KEY@host/...`)
//! that way.

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

pub(super) const KEY_HEADER: &str = "x-functions-key";

/// Lets the request through if it carries `key`.
pub(super) async fn require_key(
    key: std::sync::Arc<str>,
    request: Request,
    next: Next,
) -> Response {
    let from_header = request
        .headers()
        .get(KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|given| same_key(given, &key));
    let from_query = request
        .uri()
        .query()
        .and_then(|query| super::path::query_value(query, "code"))
        .is_some_and(|given| same_key(&given, &key));
    let from_basic = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| basic_password(value.as_bytes()))
        .is_some_and(|given| same_key(&given, &key));
    if from_header || from_query || from_basic {
        return next.run(request).await;
    }
    // Says what is needed, never whether a key was close.
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this host requires an access key: pass it as the code query parameter, the x-functions-key header, or the password of basic authentication",
    )
    .into_response()
}

/// The password of a `Basic` authorization header.
fn basic_password(value: &[u8]) -> Option<String> {
    use base64::Engine as _;
    let encoded = value.strip_prefix(b"Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Compares in time independent of where the keys differ.
fn same_key(given: &str, key: &str) -> bool {
    let (given, key) = (given.as_bytes(), key.as_bytes());
    let mut difference = given.len() ^ key.len();
    for (index, byte) in key.iter().enumerate() {
        difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(!byte));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn the_password_of_basic_authentication_is_read() {
        use super::basic_password;
        // "reprise:s3cret&key"
        assert_eq!(
            basic_password(b"Basic cmVwcmlzZTpzM2NyZXQma2V5").as_deref(),
            Some("s3cret&key")
        );
        assert_eq!(basic_password(b"Bearer cmVwcmlzZTpzM2NyZXQma2V5"), None);
        assert_eq!(basic_password(b"Basic !!!"), None);
    }

    #[test]
    fn keys_match_only_exactly() {
        assert!(same_key("s3cret", "s3cret"));
        for other in ["", "s3cre", "s3cret!", "S3cret", "x3cret"] {
            assert!(!same_key(other, "s3cret"), "{other}");
        }
    }
}
