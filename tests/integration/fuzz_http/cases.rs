//! The bad bodies: the expected answer of each kind, and every case built
//! from the fixed lists and the fixed-seed generator.

use super::*;

/// What a bad body must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// 400 `invalid_request_error`.
    Invalid,
    /// 413 (`request_too_large` in Anthropic's dialect).
    TooLarge,
    /// 415: the content type is not JSON.
    NotJson,
}

impl Expect {
    pub(super) fn status(self) -> u16 {
        match self {
            Expect::Invalid => 400,
            Expect::TooLarge => 413,
            Expect::NotJson => 415,
        }
    }

    pub(super) fn anthropic_type(self) -> &'static str {
        match self {
            Expect::TooLarge => "request_too_large",
            Expect::Invalid | Expect::NotJson => "invalid_request_error",
        }
    }
}

pub(super) struct Case {
    pub(super) route: Route,
    pub(super) name: String,
    pub(super) body: Vec<u8>,
    pub(super) content_type: Option<&'static str>,
    /// Sent without a length (chunked), so only the reader can stop it.
    pub(super) chunked: bool,
    pub(super) expect: Expect,
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

pub(super) fn to_bytes(value: &Value) -> Vec<u8> {
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

pub(super) fn all_cases() -> Vec<Case> {
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
