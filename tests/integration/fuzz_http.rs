//! Bad request bodies against every body-taking route, with the fake CLI:
//! truncated and malformed JSON, a wrong type in every field, bodies over
//! `server.max_body_bytes` (declared and chunked), 10 000-level nesting,
//! bytes that are not UTF-8, empty bodies and non-JSON or missing content
//! types.
//!
//! Every answer must be the exact 4xx for its kind, with a JSON error body in
//! the route's dialect; none may reach the pool, cost a worker, or stop the
//! daemon from serving the next valid request. Cases come from fixed lists
//! and a fixed-seed generator ([`SEED`]), so a failure reproduces exactly.

use crate::common::*;
use serde_json::{json, Value};

/// Seed of the generated cases; change it to explore, keep it to reproduce.
const SEED: u64 = 0x5eed_c1a0_de00_f022;
/// The body limit the daemon runs with.
const MAX_BODY: usize = 64 * 1024;
const NEST: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Messages,
    CountTokens,
    Chat,
}

impl Route {
    const ALL: [Route; 3] = [Route::Messages, Route::CountTokens, Route::Chat];

    fn path(self) -> &'static str {
        match self {
            Route::Messages => "/v1/messages",
            Route::CountTokens => "/v1/messages/count_tokens",
            Route::Chat => "/v1/chat/completions",
        }
    }

    fn is_openai(self) -> bool {
        self == Route::Chat
    }

    /// A valid body exercising most fields, the base of the mutations.
    fn base(self) -> Value {
        match self {
            Route::Messages | Route::CountTokens => json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "system": [{"type": "text", "text": "Be terse."}],
                "stream": false,
                "thinking": {"type": "disabled"},
                "tools": [{"name": "lookup", "description": "Looks up",
                           "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "auto"},
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "fuzz hello"}]},
                    {"role": "assistant", "content": "hi"},
                    {"role": "user", "content": "fuzz again"}
                ]
            }),
            Route::Chat => json!({
                "model": "claude-haiku-4-5",
                "messages": [
                    {"role": "system", "content": "Be terse."},
                    {"role": "user", "content": [{"type": "text", "text": "fuzz hello"}]},
                    {"role": "assistant", "content": "hi"},
                    {"role": "user", "content": "fuzz again"}
                ],
                "stream": false,
                "stream_options": {"include_usage": true},
                "max_tokens": 64,
                "temperature": 0.5,
                "top_p": 1.0,
                "n": 1,
                "stop": ["STOP"],
                "seed": 7,
                "user": "fuzzer",
                "response_format": {"type": "text"},
                "reasoning_effort": "none"
            }),
        }
    }

    /// (JSON pointer, values of the wrong type or out of range) for every
    /// field the route reads.
    fn wrong_values(self) -> Vec<(&'static str, Vec<Value>)> {
        let long_name = "x".repeat(65);
        match self {
            Route::Messages | Route::CountTokens => vec![
                ("/model", vec![json!(42), json!(true), json!([]), json!({})]),
                (
                    "/messages",
                    vec![json!({}), json!("hello"), json!(42), json!(null), json!([])],
                ),
                (
                    "/messages/0",
                    vec![json!("hi"), json!(42), json!([]), json!(null)],
                ),
                (
                    "/messages/0/role",
                    vec![
                        json!(["user"]),
                        json!(42),
                        json!(null),
                        json!("robot"),
                        // `system` is a valid role: mid-conversation system context.
                        json!("developer"),
                        json!("User"),
                    ],
                ),
                (
                    "/messages/0/content",
                    vec![
                        json!(42),
                        json!({}),
                        json!(true),
                        json!(null),
                        json!([]),
                        json!([42]),
                        json!(["text"]),
                        json!([{}]),
                        json!([{"type": 42}]),
                        json!([{"type": "text"}]),
                        json!([{"type": "text", "text": 42}]),
                        json!([{"type": "image"}]),
                        json!([{"type": "image", "source": "x"}]),
                        json!([{"type": "image", "source": {}}]),
                        json!([{"type": "document", "source": []}]),
                        json!([{"type": "bogus", "text": "x"}]),
                    ],
                ),
                ("/messages/1/content", vec![json!(""), json!(7), json!([])]),
                ("/messages/2/role", vec![json!([]), json!(1.5)]),
                (
                    "/max_tokens",
                    vec![json!("64"), json!(-1), json!(1.5), json!([]), json!(0)],
                ),
                (
                    "/stream",
                    vec![json!("true"), json!(1), json!([]), json!({})],
                ),
                (
                    "/system",
                    vec![
                        json!(42),
                        json!({}),
                        json!(true),
                        json!([42]),
                        json!([{"text": "x"}]),
                        json!([{"type": "image", "text": "x"}]),
                        json!([{"type": "text", "text": 42}]),
                    ],
                ),
                (
                    "/tools",
                    vec![
                        json!("lookup"),
                        json!(42),
                        json!({}),
                        json!(["lookup"]),
                        json!([{}]),
                        json!([{"name": 42}]),
                        json!([{"name": ""}]),
                        json!([{"name": long_name}]),
                        json!([{"type": "web_search_20250305", "name": "web"}]),
                    ],
                ),
                (
                    "/thinking",
                    vec![
                        json!("enabled"),
                        json!(42),
                        json!({}),
                        json!({"type": "enabled"}),
                        json!({"type": "enabled", "budget_tokens": "2048"}),
                        json!({"type": "enabled", "budget_tokens": -1}),
                        json!({"type": "bogus"}),
                    ],
                ),
                (
                    "/tool_choice",
                    vec![
                        json!("auto"),
                        json!(42),
                        json!({"type": "tool"}),
                        json!({"type": "tool", "name": "nope"}),
                        json!({"type": "bogus"}),
                    ],
                ),
            ],
            Route::Chat => vec![
                ("/model", vec![json!(42), json!([]), json!({})]),
                (
                    "/messages",
                    vec![json!({}), json!("x"), json!(42), json!(null), json!([])],
                ),
                ("/messages/1", vec![json!("x"), json!(42), json!([])]),
                (
                    "/messages/1/role",
                    vec![json!(["user"]), json!(42), json!("robot"), json!(null)],
                ),
                (
                    "/messages/1/content",
                    vec![
                        json!(42),
                        json!({}),
                        json!(true),
                        json!([42]),
                        json!([{}]),
                        json!([{"type": "text"}]),
                        json!([{"type": "text", "text": 1}]),
                        json!([{"type": "bogus"}]),
                        json!([{"type": "input_audio", "input_audio": {}}]),
                        json!([{"type": "image_url"}]),
                        json!([{"type": "image_url", "image_url": 42}]),
                        json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]),
                        json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]),
                        json!([{"type": "image_url", "image_url": {"url": "data:text/html;base64,AAAA"}}]),
                        json!([{"type": "image_url", "image_url": {"url": "data:image/png,AAAA"}}]),
                        json!([{"type": "file"}]),
                    ],
                ),
                (
                    "/messages/0/content",
                    vec![json!(42), json!([42]), json!([{"type": "image_url"}])],
                ),
                (
                    "/messages/2/tool_calls",
                    vec![json!("x"), json!(42), json!([{}]), json!([{"id": "c"}])],
                ),
                (
                    "/max_tokens",
                    vec![json!("10"), json!(-1), json!(0), json!(1.5)],
                ),
                ("/max_completion_tokens", vec![json!("10"), json!(0)]),
                ("/stream", vec![json!("true"), json!(1), json!({})]),
                (
                    "/stream_options",
                    vec![json!("x"), json!(42), json!({"include_usage": "yes"})],
                ),
                ("/temperature", vec![json!("hot"), json!([])]),
                ("/top_p", vec![json!("x"), json!({})]),
                ("/n", vec![json!("1"), json!(0), json!(2), json!(-1)]),
                ("/stop", vec![json!(42), json!([42]), json!({})]),
                ("/seed", vec![json!("x"), json!(1.5)]),
                ("/user", vec![json!(42), json!([])]),
                ("/tools", vec![json!("t"), json!(42), json!({})]),
                (
                    "/response_format",
                    vec![
                        json!("json"),
                        json!(42),
                        json!({"type": "bogus"}),
                        json!({"type": "json_schema"}),
                    ],
                ),
                ("/reasoning_effort", vec![json!(42), json!("extreme")]),
            ],
        }
    }
}

/// What a bad body must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 400 `invalid_request_error`.
    Invalid,
    /// 413 (`request_too_large` in Anthropic's dialect).
    TooLarge,
    /// 415: the content type is not JSON.
    NotJson,
}

impl Expect {
    fn status(self) -> u16 {
        match self {
            Expect::Invalid => 400,
            Expect::TooLarge => 413,
            Expect::NotJson => 415,
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            Expect::TooLarge => "request_too_large",
            Expect::Invalid | Expect::NotJson => "invalid_request_error",
        }
    }
}

struct Case {
    route: Route,
    name: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    /// Sent without a length (chunked), so only the reader can stop it.
    chunked: bool,
    expect: Expect,
}

impl Case {
    fn json(route: Route, name: impl Into<String>, body: Vec<u8>, expect: Expect) -> Self {
        Self {
            route,
            name: name.into(),
            body,
            content_type: Some("application/json"),
            chunked: false,
            expect,
        }
    }
}

fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// `base` with the value at `pointer` replaced by `raw` JSON text.
fn splice(base: &Value, pointer: &str, raw: &[u8]) -> Vec<u8> {
    const HOLE: &str = "\"@@HOLE@@\"";
    let mut value = base.clone();
    *value.pointer_mut(pointer).expect(pointer) = json!("@@HOLE@@");
    let text = to_bytes(&value);
    let at = text
        .windows(HOLE.len())
        .position(|w| w == HOLE.as_bytes())
        .unwrap();
    [&text[..at], raw, &text[at + HOLE.len()..]].concat()
}

fn nested_arrays(depth: usize) -> Vec<u8> {
    [vec![b'['; depth], vec![b']'; depth]].concat()
}

fn nested_objects(depth: usize) -> Vec<u8> {
    let mut out = b"{\"a\":".repeat(depth);
    out.extend(b"1");
    out.extend(vec![b'}'; depth]);
    out
}

/// Random `[` / `{"k":` openings, closed in order or left open.
fn nested_mixed(rng: &mut Rng, depth: usize, close: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut closers = Vec::new();
    for _ in 0..depth {
        if rng.below(2) == 0 {
            out.push(b'[');
            closers.push(b']');
        } else {
            out.extend(b"{\"k\":");
            closers.push(b'}');
        }
    }
    if close {
        out.push(b'0');
        out.extend(closers.iter().rev());
    }
    out
}

fn all_cases() -> Vec<Case> {
    let mut rng = Rng(SEED);
    let mut cases = Vec::new();
    for route in Route::ALL {
        let base = route.base();
        let valid = to_bytes(&base);

        // Truncated: the valid body cut at every 7th byte.
        for cut in (0..valid.len()).step_by(7) {
            cases.push(Case::json(
                route,
                format!("truncated at {cut}"),
                valid[..cut].to_vec(),
                Expect::Invalid,
            ));
        }

        // Malformed and not a request at all.
        for raw in [
            &b""[..],
            b" \n\t ",
            b"null",
            b"42",
            b"\"messages\"",
            b"[]",
            b"{}",
            b"{",
            b"}",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}}",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},]}",
            b"{'messages':[]}",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} trailing",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"\\x41\"}]}",
            b"{\"messages\":NaN}",
            b"\xef\xbb\xbf{\"messages\":[{\"role\":\"user\",\"content\":\"bom\"}]}",
        ] {
            cases.push(Case::json(
                route,
                format!("malformed {:?}", String::from_utf8_lossy(raw)),
                raw.to_vec(),
                Expect::Invalid,
            ));
        }

        // A wrong type (or value) in every field.
        for (pointer, values) in route.wrong_values() {
            for value in values {
                let mut body = base.clone();
                set(&mut body, pointer, value.clone());
                cases.push(Case::json(
                    route,
                    format!("{pointer} = {value}"),
                    to_bytes(&body),
                    Expect::Invalid,
                ));
            }
        }

        // Not UTF-8: inside a string, and as the whole body.
        let text_pointer = if route.is_openai() {
            "/messages/3/content"
        } else {
            "/messages/2/content"
        };
        for raw in [
            &b"\"\xff\xfe\""[..],
            b"\"\xc0\xaf\"",
            b"\"\xed\xa0\x80\"",
            b"\"abc\x80\"",
            b"\"\xf8\x88\x80\x80\x80\"",
        ] {
            cases.push(Case::json(
                route,
                format!("non-UTF-8 text {raw:?}"),
                splice(&base, text_pointer, raw),
                Expect::Invalid,
            ));
        }
        for i in 0..6 {
            let len = 1 + rng.index(300);
            let mut bytes = rng.bytes(len);
            bytes[0] |= 0x80;
            cases.push(Case::json(
                route,
                format!("random bytes #{i}"),
                bytes,
                Expect::Invalid,
            ));
        }

        // Random byte edits of the valid body that break its JSON.
        let mut edits = 0;
        while edits < 12 {
            let mut body = valid.clone();
            let at = rng.index(body.len());
            body[at] = rng.next() as u8;
            if serde_json::from_slice::<Value>(&body).is_err() {
                cases.push(Case::json(
                    route,
                    format!("byte {at} set to {:#04x}", body[at]),
                    body,
                    Expect::Invalid,
                ));
                edits += 1;
            }
        }

        // Deep nesting, as the whole body and in fields.
        let deep_fields: &[&str] = if route.is_openai() {
            &["/messages", "/messages/1/content", "/model", "/stop"]
        } else {
            &[
                "/messages",
                "/messages/0/content",
                "/system",
                "/tools/0/input_schema",
            ]
        };
        cases.push(Case::json(
            route,
            "body: 10000 nested arrays",
            nested_arrays(NEST),
            Expect::Invalid,
        ));
        cases.push(Case::json(
            route,
            "body: 10000 nested objects",
            nested_objects(NEST),
            Expect::Invalid,
        ));
        cases.push(Case::json(
            route,
            "body: 10000 unclosed",
            nested_mixed(&mut rng, NEST, false),
            Expect::Invalid,
        ));
        for pointer in deep_fields {
            let depth = 200 + rng.index(NEST);
            for (shape, raw) in [
                ("arrays", nested_arrays(NEST)),
                ("objects", nested_objects(NEST)),
                ("mixed", nested_mixed(&mut rng, depth, true)),
            ] {
                cases.push(Case::json(
                    route,
                    format!("{pointer}: deep {shape}"),
                    splice(&base, pointer, &raw),
                    Expect::Invalid,
                ));
            }
        }

        // Over the body limit: declared, and chunked with no length.
        let huge = |len: usize| {
            let mut body = base.clone();
            *body.pointer_mut(text_pointer).unwrap() = json!("a".repeat(len));
            to_bytes(&body)
        };
        for (len, chunked) in [
            (MAX_BODY, false),
            (MAX_BODY, true),
            (4 * MAX_BODY, false),
            (4 * MAX_BODY, true),
        ] {
            cases.push(Case {
                chunked,
                ..Case::json(
                    route,
                    format!("{len}-byte string, chunked: {chunked}"),
                    huge(len),
                    Expect::TooLarge,
                )
            });
        }
        // No content type: what a page's `fetch` with a Blob body sends.
        for (name, body) in [
            ("valid body, no content type", valid.clone()),
            ("over the limit, no content type", vec![b' '; MAX_BODY + 1]),
        ] {
            cases.push(Case {
                content_type: None,
                ..Case::json(route, name, body, Expect::NotJson)
            });
        }

        // A valid body under a content type that is not JSON.
        for content_type in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
            "application/jsonx",
            "json",
        ] {
            cases.push(Case {
                content_type: Some(content_type),
                ..Case::json(
                    route,
                    format!("content-type {content_type}"),
                    valid.clone(),
                    Expect::NotJson,
                )
            });
        }
        // Bad JSON and a bad type at once: the type is judged first.
        cases.push(Case {
            content_type: Some("text/plain"),
            ..Case::json(
                route,
                "text/plain garbage",
                b"{nope".to_vec(),
                Expect::NotJson,
            )
        });
        // Chunked bad bodies are read like any other.
        cases.push(Case {
            chunked: true,
            ..Case::json(
                route,
                "chunked truncated",
                valid[..valid.len() / 2].to_vec(),
                Expect::Invalid,
            )
        });
    }
    cases
}

/// Sets the field at `pointer`, adding it to its parent object if missing.
fn set(body: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() {
        body
    } else {
        body.pointer_mut(parent).expect(pointer)
    };
    match parent {
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        other => panic!("{pointer}: parent is {other}"),
    }
}

/// Why `res` is not the error `case` expects, if it is not.
fn judge(case: &Case, res: reqwest::blocking::Response) -> Result<(), String> {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = res.text().map_err(|e| format!("reading the body: {e}"))?;
    if status != case.expect.status() {
        return Err(format!(
            "status {status}, expected {}: {text}",
            case.expect.status()
        ));
    }
    if !content_type.starts_with("application/json") {
        return Err(format!("content-type {content_type:?}: {text}"));
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let error = &body["error"];
    let message_ok = error["message"].as_str().is_some_and(|m| !m.is_empty());
    let shape_ok = if case.route.is_openai() {
        body.as_object().is_some_and(|o| o.len() == 1)
            && error.as_object().is_some_and(|o| o.len() == 4)
            && message_ok
            && error["type"] == "invalid_request_error"
            && error["param"].is_null()
            && (error["code"].is_null() || error["code"].is_string())
    } else {
        body.as_object().is_some_and(|o| o.len() == 2)
            && body["type"] == "error"
            && error.as_object().is_some_and(|o| o.len() == 2)
            && message_ok
            && error["type"] == case.expect.anthropic_type()
    };
    if shape_ok {
        Ok(())
    } else {
        Err(format!("not the route's error shape: {body}"))
    }
}

fn send(http: &reqwest::blocking::Client, daemon: &Daemon, case: &Case) -> Result<(), String> {
    let mut req = http.post(daemon.url(case.route.path()));
    if let Some(content_type) = case.content_type {
        req = req.header("content-type", content_type);
    }
    req = if case.chunked {
        req.body(reqwest::blocking::Body::new(std::io::Cursor::new(
            case.body.clone(),
        )))
    } else {
        req.body(case.body.clone())
    };
    let res = req.send().map_err(|e| format!("no response: {e}"))?;
    judge(case, res)
}

#[test]
fn bad_bodies_get_exact_4xx_in_the_route_dialect_and_cost_nothing() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml(&format!("server.max_body_bytes = {MAX_BODY}")),
        &upstream,
    );
    let http = client();
    // The bases are valid, so each mutation is what makes its case bad.
    let res = http
        .post(daemon.url(Route::CountTokens.path()))
        .json(&Route::Messages.base())
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().unwrap());

    let cases = all_cases();
    let mut failures = Vec::new();
    for route in Route::ALL {
        let n = cases.iter().filter(|c| c.route == route).count();
        assert!(n >= 150, "only {n} cases for {route:?}");
    }
    for (i, case) in cases.iter().enumerate() {
        if let Err(why) = send(&http, &daemon, case) {
            failures.push(format!(
                "#{i} {} [{}] ({} bytes): {why}",
                case.route.path(),
                case.name,
                case.body.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (seed {SEED:#x}):\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(40)].join("\n")
    );

    // Nothing reached the pool, and it is intact.
    let health = daemon.health();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["restarts"], 0, "{health}");
    daemon.assert_no_jobs("a bad body became a job");
    assert!(upstream.requests().is_empty());

    // Valid requests still succeed on every route.
    for route in Route::ALL {
        let res = http
            .post(daemon.url(route.path()))
            .header("content-type", "application/json; charset=utf-8")
            .body(to_bytes(&route.base()))
            .send()
            .unwrap();
        let status = res.status();
        let body: Value = res.json().unwrap();
        assert_eq!(status, 200, "{route:?}: {body}");
        match route {
            Route::Messages => {
                let text = body["content"][0]["text"].as_str().unwrap();
                assert!(text.contains("fuzz again"), "{body}");
            }
            Route::Chat => {
                let text = body["choices"][0]["message"]["content"].as_str().unwrap();
                assert!(text.contains("fuzz again"), "{body}");
            }
            Route::CountTokens => assert!(body["input_tokens"].as_u64().unwrap() > 0),
        }
    }
    let health = daemon.health();
    assert_eq!(health["restarts"], 0, "{health}");
    assert_eq!(health["jobs"]["completed"], 2, "{health}");
}
