//! The shipped balancer config and a keyless node's local-caller check.

use super::*;

/// What a keyless node behind the shipped config sees of a remote client's
/// `Host`: nothing. Every request reaches it addressed to the balancer's
/// name, so a node that does not list that name refuses them all, however
/// the client names the host (`localhost`, a loopback address, an
/// absolute-form request line, no `Host` at all).
#[test]
fn a_client_of_the_balancer_cannot_pass_for_a_local_caller() {
    use std::io::{Read, Write};
    let upstream = FakeUpstream::start();
    let node = Node::with_toml("n1", &upstream, 1, "");
    node.wait_ready();
    let cluster = Cluster::with_nodes(upstream, vec![node]);
    let body = r#"{"model":"claude-haiku-4-5","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#;
    let address = cluster.base.trim_start_matches("http://").to_string();
    let raw = |request_line: &str, host: Option<&str>| -> String {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
        let request = format!(
            "{request_line}\r\n{host}content-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    // Answers from our node through the balancer, by the same way as the
    // cases below, before they are sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !raw("GET /health HTTP/1.1", Some(address.as_str())).contains("x-claude-pool-node: n1") {
        assert!(Instant::now() < deadline, "the balancer never reached n1");
        thread::sleep(Duration::from_millis(200));
    }
    let cases = [
        ("POST /v1/messages HTTP/1.1", Some("localhost")),
        ("POST /v1/messages HTTP/1.1", Some("localhost:8787")),
        ("POST /v1/messages HTTP/1.1", Some("127.0.0.1")),
        ("POST /v1/messages HTTP/1.1", Some("[::1]:8787")),
        ("POST /v1/messages HTTP/1.1", Some(address.as_str())),
        (
            "POST http://localhost/v1/messages HTTP/1.1",
            Some("localhost"),
        ),
        ("POST /v1/messages HTTP/1.0", None),
    ];
    for (line, host) in cases {
        let answer = raw(line, host);
        let status = answer.split_whitespace().nth(1).unwrap_or_default();
        assert_eq!(status, "403", "{line} / Host {host:?}:\n{answer}");
        assert!(
            answer.contains(BALANCER),
            "refused as addressed to the balancer: {answer}"
        );
    }
    assert_eq!(cluster.upstream.message_calls().len(), 0, "no job ran");
}
