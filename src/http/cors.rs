//! CORS for browser clients (`server.cors_allowed_origins`): preflights are
//! answered and actual responses carry the `Access-Control-*` headers for
//! allowed origins. With no origins configured the middleware is left out,
//! so responses carry no CORS headers at all.

use actix_cors::Cors;

/// Request headers a browser may send: those of the API dialects and of the
/// official SDKs (which add `x-stainless-*` telemetry headers and, for the
/// Anthropic SDK in a browser, `anthropic-dangerous-direct-browser-access`).
const ALLOWED_HEADERS: &[&str] = &[
    "content-type",
    "x-api-key",
    "authorization",
    "anthropic-version",
    "anthropic-beta",
    "x-request-id",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
    "x-stainless-arch",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
    "x-stainless-helper-method",
];

/// Response headers scripts may read.
const EXPOSED_HEADERS: &[&str] = &["request-id", "x-request-id"];

/// How long browsers may cache a preflight answer (seconds).
const MAX_AGE: usize = 3600;

/// The CORS middleware for `origins` (validated by the settings: `*` or
/// `scheme://host[:port]`). Requests from other origins are served as
/// usual, without CORS headers, so the browser blocks them.
pub fn middleware(origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "POST", "OPTIONS"])
        .allowed_headers(ALLOWED_HEADERS.iter().copied())
        .expose_headers(EXPOSED_HEADERS.iter().copied())
        .max_age(MAX_AGE);
    if origins.iter().any(|o| o == "*") {
        cors.allow_any_origin()
    } else {
        origins
            .iter()
            .fold(cors, |cors, origin| cors.allowed_origin(origin))
    }
}
