//! The web console at `/ui/`: plain ES modules, a style sheet and one HTML
//! page, compiled into the binary (`console/`), so nothing is fetched from
//! anywhere but this host and nothing needs building but the binary.
//!
//! The files themselves hold no data and are served without the token (a
//! browser cannot send a bearer header when it opens a page); every number
//! the console shows comes from the API, which the page calls with the token
//! the operator signs in with.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

use super::error::ApiError;

/// One file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! assets {
    ($($name:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("console/", $name)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "app.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "chart.js" => JS,
    "format.js" => JS,
    "overview.js" => JS,
    "event_type.js" => JS,
    "dead_letters.js" => JS,
    "queue.js" => JS,
    "plugins.js" => JS,
];

/// The assets' common validator: they change only with the binary.
static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| {
    let mut digest = Sha256::new();
    for asset in ASSETS {
        digest.update(asset.name);
        digest.update(asset.body);
    }
    let hex: String = digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    HeaderValue::try_from(format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
});

/// Scripts, styles and API calls from this host only; no frames.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// `/ui` (redirected to `/ui/`), `/ui/` and `/ui/<file>`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/ui/{*file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move {
                serve(&file, &headers)
            }),
        )
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::NotFound(format!("no console file `{name}`: open /ui/")).into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag == *ETAG);
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        // Revalidate every time (cheap: a 304 when the binary is the same),
        // so an upgraded host never runs a stale console.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, ETAG.clone()),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, asset.body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&HeaderValue>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(request.body(Body::empty()).expect("a request"))
            .await
            .expect("infallible")
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_served_with_their_types() {
        let page = get("/ui/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("ASCII")
                .contains("script-src 'self'")
        );
        let html = text(page).await;
        assert!(
            html.contains("<script type=\"module\" src=\"app.js\">"),
            "{html}"
        );

        let script = get("/ui/app.js", None).await;
        assert_eq!(script.status(), StatusCode::OK);
        assert_eq!(script.headers()[header::CONTENT_TYPE], JS);
        let style = get("/ui/style.css", None).await;
        assert_eq!(
            style.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );

        let redirect = get("/ui", None).await;
        assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(redirect.headers()[header::LOCATION], "/ui/");
    }

    #[tokio::test]
    async fn every_module_an_asset_imports_is_served() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in asset.body.lines().filter(|l| l.starts_with("import ")) {
                let file = line
                    .rsplit("'./")
                    .next()
                    .and_then(|rest| rest.split('\'').next())
                    .unwrap_or_else(|| panic!("{}: an import not of './x.js': {line}", asset.name));
                let response = get(&format!("/ui/{file}"), None).await;
                assert_eq!(response.status(), StatusCode::OK, "{}: {line}", asset.name);
            }
        }
    }

    #[tokio::test]
    async fn a_known_version_is_not_sent_again_and_unknown_files_are_404() {
        let first = get("/ui/app.js", None).await;
        let tag = first.headers()[header::ETAG].clone();
        let again = get("/ui/app.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(text(again).await.is_empty());

        for path in ["/ui/nope.js", "/ui/../Cargo.toml", "/ui/console/app.js"] {
            let missing = get(path, None).await;
            assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}
