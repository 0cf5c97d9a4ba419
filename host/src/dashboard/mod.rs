//! The web dashboard: one page, a script and a style sheet, compiled into
//! the binary and served at the root (`/`). The page holds no data: the
//! script reads and acts through the HTTP API, with the access key the user
//! signs in with, so the dashboard can do exactly what the API lets a
//! caller do, with the same errors. That is why the assets are served
//! without the key (a sign-in form is part of them) and the API is not.
//!
//! Plain JavaScript with no build step: nothing beyond `cargo` is needed to
//! build Reprise, and nothing is fetched from elsewhere at run time.
//! `REPRISE_DASHBOARD_ASSETS=DIR` serves the files from `DIR` instead, read
//! at every request, for working on them without rebuilding the host.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file: where it is served, its content type, its text.
struct Asset {
    route: &'static str,
    file: &'static str,
    content_type: &'static str,
    text: &'static str,
}

static ASSETS: [Asset; 3] = [
    Asset {
        route: "/",
        file: "index.html",
        content_type: "text/html; charset=utf-8",
        text: include_str!("assets/index.html"),
    },
    Asset {
        route: "/dashboard/app.js",
        file: "app.js",
        content_type: "text/javascript; charset=utf-8",
        text: include_str!("assets/app.js"),
    },
    Asset {
        route: "/dashboard/style.css",
        file: "style.css",
        content_type: "text/css; charset=utf-8",
        text: include_str!("assets/style.css"),
    },
];

/// The page may load nothing but its own script and style, and talk to
/// nothing but this host.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The routes of the dashboard's files.
pub fn router() -> Router {
    let from_disk = std::env::var_os("REPRISE_DASHBOARD_ASSETS").map(PathBuf::from);
    let from_disk = from_disk.map(Arc::new);
    ASSETS.iter().fold(Router::new(), |router, asset| {
        let from_disk = from_disk.clone();
        router.route(
            asset.route,
            get(move || async move {
                match from_disk {
                    Some(dir) => serve_from_disk(&dir, asset),
                    None => serve(asset, asset.text.to_owned()),
                }
            }),
        )
    })
}

/// For development only: a small file read on the runtime's thread.
fn serve_from_disk(dir: &std::path::Path, asset: &Asset) -> Response {
    match std::fs::read_to_string(dir.join(asset.file)) {
        Ok(text) => serve(asset, text),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {}: {error}", dir.join(asset.file).display()),
        )
            .into_response(),
    }
}

fn serve(asset: &Asset, text: String) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A key in the page's address (`?code=`) goes nowhere else.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new host may serve new files under the same names.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
