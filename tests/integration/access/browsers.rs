//! Browser clients: CORS preflights and allowed origins, and a POST without
//! a JSON content type (a browser's simple request) starting no job.

use super::*;

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
