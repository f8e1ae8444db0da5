//! A keyless daemon serves only requests addressed to loopback; allowed
//! hosts add names, and keys lift the rule.

use super::*;

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
