//! Who may call what: API keys (inline and from a key file) on every API
//! route in each dialect's error shape, the open `/health` and loopback
//! `/metrics`, and CORS for browser clients.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};

fn chat_body(text: &str) -> Value {
    json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": text}]})
}

/// A daemon with key `k1` inline and `kf` in a key file (with comments),
/// not yet waited for.
fn keyed_daemon_unready(upstream: &FakeUpstream, extra: &str) -> (Daemon, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("api-keys");
    std::fs::write(&file, "# clients of team A\n\nkf\n#retired-key\n").unwrap();
    let cfg = DaemonConfig::fake(1)
        .with_toml("server.api_keys = [\"k1\"]")
        .with_toml(&format!(
            "server.api_keys_file = {:?}",
            file.display().to_string()
        ))
        .with_toml(extra);
    (Daemon::start_unready(cfg, upstream), keys)
}

fn keyed_daemon(upstream: &FakeUpstream, extra: &str) -> (Daemon, tempfile::TempDir) {
    let (daemon, keys) = keyed_daemon_unready(upstream, extra);
    daemon.wait_ready(Duration::from_secs(30));
    (daemon, keys)
}

fn send(request: RequestBuilder) -> (u16, Value) {
    let res = request.send().expect("request");
    let status = res.status().as_u16();
    (status, res.json().unwrap_or(Value::Null))
}

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

fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

fn preflight(daemon: &Daemon, origin: &str) -> Response {
    client()
        .request(Method::OPTIONS, daemon.url("/v1/messages"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-api-key,anthropic-version,anthropic-beta,x-request-id",
        )
        .send()
        .unwrap()
}

#[test]
fn cors_answers_preflights_and_marks_responses_for_allowed_origins() {
    const APP: &str = "https://app.example.com";
    let upstream = FakeUpstream::start();
    let (daemon, _keys) = keyed_daemon(
        &upstream,
        &format!("server.cors_allowed_origins = [\"{APP}\"]"),
    );

    // The preflight is answered without a key.
    let res = preflight(&daemon, APP);
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let methods = header(&res, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = header(&res, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in [
        "x-api-key",
        "authorization",
        "anthropic-version",
        "content-type",
    ] {
        assert!(allowed.contains(name), "{name} not in {allowed}");
    }

    // The actual request carries the headers, and exposes the request id.
    let res = client()
        .post(daemon.url("/v1/messages"))
        .header("origin", APP)
        .header("x-api-key", "k1")
        .json(&message_body("hi"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let exposed = header(&res, "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("request-id"), "{exposed}");
    // An error response too, so the browser can read why.
    let res = client()
        .post(daemon.url("/v1/messages"))
        .header("origin", APP)
        .json(&message_body("hi"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(APP)
    );

    // Another origin gets no CORS headers (the browser then blocks it).
    let res = preflight(&daemon, "https://evil.example.net");
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    let res = client()
        .post(daemon.url("/v1/messages"))
        .header("origin", "https://evil.example.net")
        .header("x-api-key", "k1")
        .json(&message_body("hi"))
        .send()
        .unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), None);
}

#[test]
fn cors_is_off_by_default_and_any_origin_with_a_star() {
    let upstream = FakeUpstream::start();
    let plain = Daemon::start(DaemonConfig::fake(1), &upstream);
    let res = preflight(&plain, "https://app.example.com");
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    let res = client()
        .post(plain.url("/v1/messages"))
        .header("origin", "https://app.example.com")
        .json(&message_body("hi"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin"), None);

    let any = Daemon::start(
        DaemonConfig::fake(1)
            .with_toml("server.cors_allowed_origins = [\"*\"]")
            .with_toml("server.allow_keyless_cors = true"),
        &upstream,
    );
    let res = preflight(&any, "http://localhost:5173");
    assert!(res.status().is_success(), "{}", res.status());
    assert!(header(&res, "access-control-allow-origin").is_some());
}

/// `(status, body)` of `request` sent with `Host: host`.
fn send_as(host: &str, request: RequestBuilder) -> (u16, Value) {
    send(request.header("host", host))
}

#[test]
fn a_keyless_daemon_serves_only_requests_addressed_to_loopback() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    let port = daemon.base.rsplit(':').next().unwrap().to_string();
    let messages = || {
        client()
            .post(daemon.url("/v1/messages"))
            .json(&message_body("hi"))
    };
    let chat = || {
        client()
            .post(daemon.url("/v1/chat/completions"))
            .json(&chat_body("hi"))
    };

    // A DNS-rebinding page addresses the daemon by the attacker's name.
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("localhost.evil.example:{port}"),
    ] {
        let (status, body) = send_as(&host, messages());
        assert_eq!(status, 403, "{host}: {body}");
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "permission_error", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("server.allowed_hosts"), "{message}");
        let (status, body) = send_as(&host, chat());
        assert_eq!(status, 403, "{host}: {body}");
        assert_eq!(body["error"]["code"], "host_not_allowed", "{body}");
        for path in ["/v1/models", "/metrics"] {
            let (status, _) = send_as(&host, client().get(daemon.url(path)));
            assert_eq!(status, 403, "{host} {path}");
        }
        // /health stays open: it starts nothing and reveals no conversation.
        let (status, _) = send_as(&host, client().get(daemon.url("/health")));
        assert_eq!(status, 200, "{host} /health");
    }
    let health = daemon.health();
    assert_eq!(
        health["jobs"]["completed"], 0,
        "a refused request ran: {health}"
    );

    // Loopback names and addresses, with or without a port.
    let local = [
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    for host in &local {
        let (status, body) = send_as(host, messages());
        assert_eq!(status, 200, "{host}: {body}");
        let (status, body) = send_as(host, client().get(daemon.url("/metrics")));
        assert_eq!(status, 200, "{host}: {body}");
    }
    let health = daemon.health();
    assert_eq!(health["jobs"]["completed"], local.len(), "{health}");
}

#[test]
fn a_post_without_a_json_content_type_starts_no_job() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    let body = serde_json::to_vec(&message_body("hi")).unwrap();
    // What `fetch(url, {method: "POST", body: new Blob([json])})` sends.
    for path in ["/v1/messages", "/v1/chat/completions"] {
        let res = client()
            .post(daemon.url(path))
            .body(body.clone())
            .send()
            .unwrap();
        let status = res.status().as_u16();
        let error: Value = res.json().unwrap();
        assert_eq!(status, 415, "{path}: {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    }
    daemon.assert_no_jobs("a refused body became a job");
}

#[test]
fn allowed_hosts_add_names_and_keys_lift_the_host_rule() {
    let upstream = FakeUpstream::start();
    let proxied = Daemon::start(
        DaemonConfig::fake(1).with_toml("server.allowed_hosts = [\"pool.internal\"]"),
        &upstream,
    );
    let messages = |daemon: &Daemon| {
        client()
            .post(daemon.url("/v1/messages"))
            .json(&message_body("hi"))
    };
    for host in ["pool.internal", "pool.internal:443", "POOL.INTERNAL"] {
        let (status, body) = send_as(host, messages(&proxied));
        assert_eq!(status, 200, "{host}: {body}");
    }
    let (status, _) = send_as("other.internal", messages(&proxied));
    assert_eq!(status, 403);

    // With keys, the key is what counts, whatever the name.
    let (keyed, _keys) = keyed_daemon(&upstream, "");
    let (status, body) = send_as("evil.example", messages(&keyed).bearer_auth("k1"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = send_as("evil.example", messages(&keyed));
    assert_eq!(status, 401, "{body}");
    // ...but /metrics, open to loopback without a key, wants a local name.
    let (status, _) = send_as("evil.example", client().get(keyed.url("/metrics")));
    assert_eq!(status, 401);
    let (status, _) = send_as(
        "evil.example",
        client().get(keyed.url("/metrics")).bearer_auth("k1"),
    );
    assert_eq!(status, 200);
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
