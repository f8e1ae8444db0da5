//! The operator's dashboard: a page at `/admin` whose files (under
//! `/admin/assets/`) are compiled
//! into the binary (plain HTML, CSS and JavaScript from `assets/dashboard/`:
//! nothing to fetch, no build step), the admins' event stream it listens
//! to (`/admin/events`), and `/admin/batches`. The page holds no power of
//! its own: it signs in with an admin key kept in the tab and calls the
//! same admin API scripts do, so serving it needs no key.

pub mod batches;
pub mod hub;
pub mod sampler;
pub mod stream;
pub mod tickets;

use actix_web::{web, HttpResponse};

pub use hub::Hub;

/// The page's files: path under `/admin/assets` (the page itself first,
/// at `/admin`), content type, content.
pub const ASSETS: [(&str, &str, &str); 6] = [
    (
        "",
        HTML,
        include_str!("../../../assets/dashboard/index.html"),
    ),
    (
        "/app.css",
        CSS,
        include_str!("../../../assets/dashboard/app.css"),
    ),
    (
        "/format.js",
        JS,
        include_str!("../../../assets/dashboard/format.js"),
    ),
    (
        "/charts.js",
        JS,
        include_str!("../../../assets/dashboard/charts.js"),
    ),
    (
        "/views.js",
        JS,
        include_str!("../../../assets/dashboard/views.js"),
    ),
    (
        "/app.js",
        JS,
        include_str!("../../../assets/dashboard/app.js"),
    ),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Scripts and styles only from the page's own files (none inline, so an
/// injected string cannot run), requests only to this daemon, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// `GET /admin`: the page.
pub async fn page() -> HttpResponse {
    asset(ASSETS[0].1, ASSETS[0].2)
}

/// `GET /admin/assets/{file}`: the page's styles and scripts.
pub async fn file(name: web::Path<String>) -> HttpResponse {
    let wanted = format!("/{name}");
    match ASSETS[1..].iter().find(|(path, _, _)| *path == wanted) {
        Some((_, content_type, body)) => asset(content_type, body),
        None => HttpResponse::NotFound()
            .content_type("text/plain")
            .body("no such file"),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("content-security-policy", CONTENT_SECURITY_POLICY))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", "no-cache"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget for the whole page: HTML, CSS and script.
    const MAX_PAGE_BYTES: usize = 150 * 1024;

    #[test]
    fn the_page_weighs_under_150_kb() {
        let total: usize = ASSETS.iter().map(|(_, _, body)| body.len()).sum();
        assert!(total < MAX_PAGE_BYTES, "the dashboard weighs {total} bytes");
    }

    #[test]
    fn the_page_runs_no_inline_script_and_loads_nothing_from_elsewhere() {
        let html = ASSETS[0].2;
        for (path, _, _) in &ASSETS[1..] {
            assert!(
                html.contains(&format!("\"/admin/assets{path}\"")),
                "{path} is not linked"
            );
        }
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "inline code"
        );
        let handler = html.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "an inline event handler");
        for (path, _, body) in ASSETS {
            let elsewhere = body
                .match_indices("http")
                .any(|(at, _)| !body[at..].starts_with("http://www.w3.org/2000/svg"));
            assert!(!elsewhere, "{path} names another site");
        }
    }
}
