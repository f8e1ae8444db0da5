//! API keys: every route needs one in either header, in its dialect's error
//! shape; `/health` may require one; a missing key file stops the daemon.

use super::*;

#[test]
fn every_api_route_needs_a_key_in_either_header() {
    let upstream = FakeUpstream::start();
    let (daemon, _keys) = keyed_daemon(&upstream, "");
    let messages = || {
        client()
            .post(daemon.url("/v1/messages"))
            .json(&message_body("hi"))
    };

    // Anthropic routes: 401 authentication_error without or with a wrong key.
    for request in [
        messages(),
        messages().header("x-api-key", "nope"),
        messages().bearer_auth("nope"),
        client()
            .post(daemon.url("/v1/messages/count_tokens"))
            .json(&message_body("hi")),
        client().get(daemon.url("/v1/models")),
        client().get(daemon.url("/models/claude-sonnet-4-5")),
    ] {
        let (status, body) = send(request);
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    }
    // OpenAI route: OpenAI's shape with code invalid_api_key.
    let chat = || {
        client()
            .post(daemon.url("/v1/chat/completions"))
            .json(&chat_body("hi"))
    };
    for request in [
        chat(),
        chat().bearer_auth("nope"),
        chat().header("x-api-key", "k"),
    ] {
        let (status, body) = send(request);
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }

    // Both headers work, with the inline key and with the file's key.
    for request in [
        messages().header("x-api-key", "k1"),
        messages().bearer_auth("k1"),
        messages().header("x-api-key", "kf"),
        messages().bearer_auth("kf"),
    ] {
        let (status, body) = send(request);
        assert_eq!(status, 200, "{body}");
        assert!(body["content"][0]["text"].is_string(), "{body}");
    }
    let (status, body) = send(chat().bearer_auth("kf"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
    // A commented-out line of the key file is no key.
    let (status, _) = send(messages().header("x-api-key", "#retired-key"));
    assert_eq!(status, 401);
    let (status, _) = send(client().get(daemon.url("/v1/models")).bearer_auth("k1"));
    assert_eq!(status, 200);

    // /health is open; /metrics is open to loopback peers.
    let (status, body) = send(client().get(daemon.url("/health")));
    assert_eq!(status, 200, "{body}");
    let res = client().get(daemon.url("/metrics")).send().unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn health_can_require_a_key() {
    let upstream = FakeUpstream::start();
    let (daemon, _keys) = keyed_daemon_unready(&upstream, "server.health_requires_key = true");
    let (status, body) = send(client().get(daemon.url("/health")));
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = send(client().get(daemon.url("/health")).bearer_auth("kf"));
        if status == 200 && body["workers"]["ready"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_missing_key_file_stops_the_daemon_at_startup_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\napi_keys_file = \"/nonexistent/claude-pool-keys\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_claude-pool"))
        .arg("--config")
        .arg(&config)
        .env_remove("CLAUDE_POOL_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.api_keys_file"), "{stderr}");
    assert!(stderr.contains("/nonexistent/claude-pool-keys"), "{stderr}");
}

/// Walks the route table: every route that needs a client key refuses a
/// request without one, with a wrong one and with an admin key, in its
/// dialect's error shape; every admin route refuses a client key (403)
/// and a request without a key (401); every probe route, asked for a key
/// (`/health` by `server.health_requires_key`, `/metrics` to a request not
/// addressed to a local name), refuses a request without one or with a
/// wrong one and takes a client or an admin key. A route added to the
/// table is checked here without a line more.
#[test]
fn every_declared_route_refuses_a_caller_without_the_right_key() {
    use claude_pool::api::Dialect;
    use claude_pool::http::routes::{Access, ROUTES};
    let upstream = FakeUpstream::start();
    let (daemon, _keys) = keyed_daemon_unready(
        &upstream,
        "server.admin_keys = [\"admin-key-1\"]\nserver.health_requires_key = true",
    );
    let (mut checked, mut probes) = (0, 0);
    for route in ROUTES {
        for path in route.paths() {
            let path = path
                .replace("{id}", "x1")
                .replace("{item}", "i1")
                .replace("{name}", "n1");
            let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
            let request = || {
                let req = client().request(method.clone(), daemon.url(&path));
                if method == Method::POST || method == Method::PATCH {
                    req.json(&json!({}))
                } else {
                    req
                }
            };
            let what = format!("{method} {path}");
            match route.access {
                Access::Client => {
                    for (who, req) in [
                        ("no key", request()),
                        ("a wrong key", request().header("x-api-key", "nope")),
                        ("an admin key", request().bearer_auth("admin-key-1")),
                    ] {
                        let (status, body) = send(req);
                        assert_eq!(status, 401, "{what} with {who}: {body}");
                        match route.dialect {
                            Dialect::Anthropic => {
                                assert_eq!(body["type"], "error", "{what}: {body}");
                                assert_eq!(
                                    body["error"]["type"], "authentication_error",
                                    "{what}: {body}"
                                );
                            }
                            Dialect::ChatCompletions | Dialect::Responses => {
                                assert_eq!(
                                    body["error"]["code"], "invalid_api_key",
                                    "{what}: {body}"
                                );
                            }
                        }
                    }
                    checked += 1;
                }
                Access::Admin => {
                    let (status, body) = send(request().header("x-api-key", "k1"));
                    assert_eq!(status, 403, "{what} with a client key: {body}");
                    assert_eq!(body["error"]["type"], "permission_error", "{body}");
                    let (status, body) = send(request());
                    assert_eq!(status, 401, "{what} without a key: {body}");
                    checked += 1;
                }
                Access::Probe => {
                    let request = || request().header("host", "probe.example");
                    for (who, req) in [
                        ("no key", request()),
                        ("a wrong key", request().header("x-api-key", "nope")),
                    ] {
                        let (status, body) = send(req);
                        assert_eq!(status, 401, "{what} with {who}: {body}");
                    }
                    for (who, req) in [
                        ("a client key", request().header("x-api-key", "k1")),
                        ("an admin key", request().bearer_auth("admin-key-1")),
                    ] {
                        let (status, body) = send(req);
                        // 503 is /health's answer while the pool boots.
                        assert!(
                            [200, 503].contains(&status),
                            "{what} with {who}: {status} {body}"
                        );
                    }
                    probes += 1;
                }
                Access::Open => {}
            }
        }
    }
    // GET and HEAD /health, GET /metrics.
    assert_eq!(probes, 3, "probe routes checked");
    // Messages, count_tokens, 6 batch routes, chat, 7 responses routes,
    // 8 conversations routes, 2 models, usage: each with and without /v1.
    assert!(checked >= 2 * 26 + 7, "only {checked} routes checked");

    // A path no route takes: 404 in the dialect of the routes nearest it.
    let (status, body) = send(client().get(daemon.url("/v1/responses/x1/nope")));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(body["type"].is_null(), "OpenAI's shape: {body}");
    let (status, body) = send(client().get(daemon.url("/v1/messages/x/y/z")));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
    // `/` lists the table.
    let (status, root) = send(client().get(daemon.url("/")));
    assert_eq!(status, 200);
    let listed = root["routes"].as_array().unwrap();
    assert_eq!(listed.len(), ROUTES.len(), "{root}");
    assert!(
        listed
            .iter()
            .any(|r| r["path"] == "/v1/responses/{id}/cancel"
                && r["method"] == "POST"
                && r["access"] == "client_key"),
        "{root}"
    );
}
