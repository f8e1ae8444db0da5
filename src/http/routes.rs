//! Every route, declared once as data: its path, method, dialect, who may
//! call it and its handler. The server registers [`ROUTES`]; `GET /` lists
//! them; a request no route takes gets its 404 in the dialect of the
//! routes nearest its path; and a test walks the table to check that each
//! route refuses a caller it must not serve.

use actix_web::http::Method;
use actix_web::{guard, web, HttpRequest, HttpResponse};

use super::error::{ApiError, ErrorKind};
use super::{
    admin, batches, conversations, count_tokens, dashboard, health, jobs, metrics, models,
    responses, root, usage, websocket,
};
use crate::api::anthropic::Anthropic;
use crate::api::openai::ChatCompletions;
use crate::api::Dialect;

/// Who may call a route. The handler's signature enforces it (an
/// `auth::ClientKey`, `auth::AdminCaller` or `auth::ProbeCaller` argument);
/// this says it for the route listing and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: it names no secret (`/`).
    Open,
    /// Open unless the settings ask for a key there (`/health`,
    /// `/metrics`); then a client or an admin key.
    Probe,
    /// A client key (or, on a daemon without keys, the host rule).
    Client,
    /// An admin key (`server.admin_keys`).
    Admin,
}

/// One route.
pub struct Route {
    /// The path as actix matches it (`{id}` a segment). A route under
    /// `/v1/` is served without the prefix too (`/messages`), as clients
    /// configured with a base URL that already ends in `/v1` send it.
    pub path: &'static str,
    pub method: Method,
    /// The API the route speaks: the shape of its errors.
    pub dialect: Dialect,
    pub access: Access,
    /// The handler, as an actix route without its method guard.
    pub handler: fn() -> actix_web::Route,
}

impl Route {
    /// The paths the route answers on: its own, and without `/v1`.
    pub fn paths(&self) -> impl Iterator<Item = &'static str> {
        let bare = self.path.strip_prefix("/v1");
        std::iter::once(self.path).chain(bare)
    }
}

const fn route(
    method: Method,
    path: &'static str,
    dialect: Dialect,
    access: Access,
    handler: fn() -> actix_web::Route,
) -> Route {
    Route {
        path,
        method,
        dialect,
        access,
        handler,
    }
}

use Access::{Admin, Client, Open, Probe};
use Dialect::{Anthropic as A, ChatCompletions as C, Responses as R};

/// Every route of the daemon, in the order they are matched.
pub static ROUTES: &[Route] = &[
    route(Method::GET, "/", A, Open, || web::to(root::root)),
    route(Method::HEAD, "/", A, Open, || web::to(root::root)),
    route(Method::GET, "/health", A, Probe, || web::to(health::health)),
    // Load balancers often probe with HEAD; the status is the answer.
    route(Method::HEAD, "/health", A, Probe, || {
        web::to(health::health)
    }),
    route(Method::GET, "/metrics", A, Probe, || {
        web::to(metrics::scrape)
    }),
    // The admin API.
    route(Method::GET, "/admin/usage", A, Admin, || {
        web::to(usage::admin_usage)
    }),
    route(Method::GET, "/admin/requests", A, Admin, || {
        web::to(usage::admin_requests)
    }),
    route(Method::POST, "/admin/keys", A, Admin, || {
        web::to(admin::create)
    }),
    route(Method::GET, "/admin/keys", A, Admin, || {
        web::to(admin::list)
    }),
    route(Method::GET, "/admin/keys/{name}", A, Admin, || {
        web::to(admin::get)
    }),
    route(Method::PATCH, "/admin/keys/{name}", A, Admin, || {
        web::to(admin::update)
    }),
    route(Method::DELETE, "/admin/keys/{name}", A, Admin, || {
        web::to(admin::revoke)
    }),
    route(Method::POST, "/admin/events/ticket", A, Admin, || {
        web::to(dashboard::stream::ticket)
    }),
    // With an admin key in a header, or the ticket the route above gave.
    route(Method::GET, "/admin/events", A, Admin, || {
        web::to(dashboard::stream::events)
    }),
    route(Method::GET, "/admin/batches", A, Admin, || {
        web::to(dashboard::batches::list)
    }),
    route(Method::POST, "/admin/batches/{id}/cancel", A, Admin, || {
        web::to(dashboard::batches::cancel)
    }),
    // The dashboard's page and files: they name no secret (the page asks
    // for an admin key and calls the routes above with it).
    route(Method::GET, "/admin", A, Open, || web::to(dashboard::page)),
    route(Method::GET, "/admin/assets/{file}", A, Open, || {
        web::to(dashboard::file)
    }),
    // Anthropic Messages, its token counting and batches.
    route(Method::GET, "/v1/usage", A, Client, || {
        web::to(usage::client_usage)
    }),
    route(Method::POST, "/v1/messages", A, Client, || {
        web::to(jobs::create::<Anthropic>)
    }),
    route(Method::POST, "/v1/messages/count_tokens", A, Client, || {
        web::to(count_tokens::count)
    }),
    route(Method::POST, "/v1/messages/batches", A, Client, || {
        web::to(batches::create)
    }),
    route(Method::GET, "/v1/messages/batches", A, Client, || {
        web::to(batches::list)
    }),
    route(Method::GET, "/v1/messages/batches/{id}", A, Client, || {
        web::to(batches::get)
    }),
    route(
        Method::DELETE,
        "/v1/messages/batches/{id}",
        A,
        Client,
        || web::to(batches::delete),
    ),
    route(
        Method::POST,
        "/v1/messages/batches/{id}/cancel",
        A,
        Client,
        || web::to(batches::cancel),
    ),
    route(
        Method::GET,
        "/v1/messages/batches/{id}/results",
        A,
        Client,
        || web::to(batches::results),
    ),
    // OpenAI Chat Completions.
    route(Method::POST, "/v1/chat/completions", C, Client, || {
        web::to(jobs::create::<ChatCompletions>)
    }),
    // OpenAI Responses, over HTTP and WebSocket, and conversations.
    route(Method::POST, "/v1/responses", R, Client, || {
        web::to(responses::create)
    }),
    route(
        Method::POST,
        "/v1/responses/input_tokens",
        R,
        Client,
        || web::to(responses::input_tokens),
    ),
    route(Method::GET, "/v1/responses", R, Client, || {
        web::to(websocket::upgrade)
    }),
    route(Method::GET, "/v1/responses/{id}", R, Client, || {
        web::to(responses::get)
    }),
    route(Method::DELETE, "/v1/responses/{id}", R, Client, || {
        web::to(responses::delete)
    }),
    route(Method::POST, "/v1/responses/{id}/cancel", R, Client, || {
        web::to(responses::cancel)
    }),
    route(
        Method::GET,
        "/v1/responses/{id}/input_items",
        R,
        Client,
        || web::to(responses::input_items),
    ),
    route(Method::POST, "/v1/conversations", R, Client, || {
        web::to(conversations::create)
    }),
    route(Method::GET, "/v1/conversations/{id}", R, Client, || {
        web::to(conversations::get)
    }),
    route(Method::POST, "/v1/conversations/{id}", R, Client, || {
        web::to(conversations::update)
    }),
    route(Method::DELETE, "/v1/conversations/{id}", R, Client, || {
        web::to(conversations::delete)
    }),
    route(
        Method::GET,
        "/v1/conversations/{id}/items",
        R,
        Client,
        || web::to(conversations::list_items),
    ),
    route(
        Method::POST,
        "/v1/conversations/{id}/items",
        R,
        Client,
        || web::to(conversations::add_items),
    ),
    route(
        Method::GET,
        "/v1/conversations/{id}/items/{item}",
        R,
        Client,
        || web::to(conversations::get_item),
    ),
    route(
        Method::DELETE,
        "/v1/conversations/{id}/items/{item}",
        R,
        Client,
        || web::to(conversations::delete_item),
    ),
    // Models, for every dialect's clients.
    route(Method::GET, "/v1/models", A, Client, || {
        web::to(models::list)
    }),
    route(Method::GET, "/v1/models/{id}", A, Client, || {
        web::to(models::get)
    }),
];

/// The dialect a route declares, for extractors that run before its
/// handler (set on each route's resource by [`register`]).
#[derive(Debug, Clone, Copy)]
pub struct RouteDialect(pub Dialect);

/// Registers every route of [`ROUTES`], each on its paths.
pub fn register(cfg: &mut web::ServiceConfig) {
    for route in ROUTES {
        for path in route.paths() {
            cfg.service(
                web::resource(path)
                    .guard(guard::Method(route.method.clone()))
                    .app_data(RouteDialect(route.dialect))
                    .route((route.handler)()),
            );
        }
    }
}

/// The dialect of a request's route: the one it matched, or else (before a
/// route matched, or for a path no route takes) that of the declared route
/// sharing the most leading path segments with it.
pub fn dialect_of(req: &HttpRequest) -> Dialect {
    if let Some(RouteDialect(dialect)) = req.app_data::<RouteDialect>() {
        return *dialect;
    }
    nearest(req.path())
}

/// The dialect of the declared route nearest `path` (see [`dialect_of`]);
/// Anthropic's when none shares a segment.
pub fn nearest(path: &str) -> Dialect {
    let segments = |p: &'static str| p.split('/').filter(|s| !s.is_empty());
    let wanted: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let shared = |declared: &'static str| {
        segments(declared)
            .zip(&wanted)
            .take_while(|(d, w)| d.starts_with('{') || d == *w)
            .count()
    };
    ROUTES
        .iter()
        .flat_map(|r| r.paths().map(move |p| (shared(p), r.dialect)))
        .filter(|(n, _)| *n > 0)
        // The first of the longest: the table's order breaks ties.
        .fold(None, |best: Option<(usize, Dialect)>, (n, d)| match best {
            Some((m, _)) if m >= n => best,
            _ => Some((n, d)),
        })
        .map_or(Dialect::Anthropic, |(_, d)| d)
}

/// Unknown routes: 404 in the dialect of the routes nearest the path.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorKind::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
        nearest(req.path()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_is_declared_once_and_guarded_as_its_path_says() {
        let mut seen = std::collections::HashSet::new();
        for route in ROUTES {
            assert!(
                seen.insert((route.method.clone(), route.path)),
                "{} {} is declared twice",
                route.method,
                route.path
            );
            if route.path.starts_with("/v1/") {
                assert_eq!(route.access, Access::Client, "{}", route.path);
            }
            if route.path.starts_with("/admin") {
                let page = route.path == "/admin" || route.path.starts_with("/admin/assets/");
                let access = if page { Access::Open } else { Access::Admin };
                assert_eq!(route.access, access, "{}", route.path);
            }
        }
    }

    #[test]
    fn an_unknown_path_gets_the_dialect_of_its_nearest_route() {
        assert_eq!(nearest("/v1/responses/x/nope"), Dialect::Responses);
        assert_eq!(nearest("/responses/x/nope"), Dialect::Responses);
        assert_eq!(nearest("/v1/conversations/c/x/y"), Dialect::Responses);
        assert_eq!(nearest("/v1/chat/completions/x"), Dialect::ChatCompletions);
        assert_eq!(nearest("/chat/nope"), Dialect::ChatCompletions);
        assert_eq!(nearest("/v1/messages/x/y/z"), Dialect::Anthropic);
        assert_eq!(nearest("/nowhere"), Dialect::Anthropic);
        // A shared `/v1` alone is the first route under it: Anthropic.
        assert_eq!(nearest("/v1/nowhere"), Dialect::Anthropic);
    }
}
