//! Images and extended thinking end to end, with the real CLI: what the
//! fake upstream receives (real `image` blocks, the `thinking` parameter) and
//! what the client gets back (`thinking` blocks with their signatures, in the
//! body and as stream deltas).

use crate::common::*;
use serde_json::{json, Value};

/// The model on which the CLI honours a thinking budget (on opus it sends
/// adaptive thinking whatever the budget).
const MODEL: &str = "claude-haiku-4-5";

fn post_ok(daemon: &Daemon, path: &str, body: &Value) -> Value {
    let res = daemon.post_to(path, body);
    let status = res.status();
    let body: Value = res.json().unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// A valid `width × height` RGB PNG filled with one colour, built here so
/// the bytes are known: signature, IHDR, one stored-deflate IDAT, IEND.
fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    // Each row: filter byte 0 (none), then the pixels.
    let row: Vec<u8> = std::iter::once(0)
        .chain(rgb.iter().copied().cycle().take(3 * width as usize))
        .collect();
    let raw = row.repeat(height as usize);
    assert!(raw.len() <= 0xffff, "one stored block only");
    // zlib: header, one final stored block, Adler-32.
    let mut zlib = vec![0x78, 0x01, 0x01];
    let len = raw.len() as u16;
    zlib.extend(len.to_le_bytes());
    zlib.extend((!len).to_le_bytes());
    zlib.extend(&raw);
    zlib.extend(adler32(&raw).to_be_bytes());

    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit, truecolour, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every `image` block anywhere in `value`.
fn image_blocks(value: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if map.get("type") == Some(&json!("image")) {
                    found.push(v.clone());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// The body of the last upstream `/v1/messages` call.
fn last_body(upstream: &FakeUpstream) -> Value {
    upstream
        .message_calls()
        .last()
        .expect("an upstream call")
        .body
        .clone()
}

/// Asserts that the last upstream call carried exactly one image block with
/// `data`, as an image and not as text.
fn assert_image_upstream(upstream: &FakeUpstream, data: &str) {
    let calls = upstream.message_calls();
    let call = calls.last().expect("an upstream call");
    let images = image_blocks(&call.body["messages"]);
    assert_eq!(images.len(), 1, "{}", call.body["messages"]);
    assert_eq!(
        images[0]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": data}),
    );
    assert!(
        !call.all_text().contains(data),
        "the image data also reached the model as text"
    );
}

#[test]
fn png_self_check() {
    // A 1×1 red PNG as Python's zlib (level 0) and struct encode it.
    assert_eq!(
        base64(&png(1, 1, [255, 0, 0])),
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAAD0lEQVR4AQEEAPv/AP8AAAMBAQCNHeWCAAAAAElFTkSuQmCC"
    );
    assert_eq!(base64(b"Ma"), "TWE=");
    assert_eq!(base64(b"M"), "TQ==");
}

#[test]
fn images_reach_the_upstream_as_image_blocks() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);

    // In the latest user message.
    let red = base64(&png(2, 2, [255, 0, 0]));
    let image = |data: &str| json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}});
    let reply = post_ok(
        &daemon,
        "/v1/messages",
        &json!({
            "model": MODEL, "max_tokens": 100,
            "messages": [{"role": "user", "content": [image(&red), {"type": "text", "text": "what colour?"}]}]
        }),
    );
    assert_eq!(reply["content"][0]["text"], "Hello! You said: what colour?");
    assert_image_upstream(&upstream, &red);

    // In an earlier turn of the conversation.
    let blue = base64(&png(3, 1, [0, 0, 255]));
    post_ok(
        &daemon,
        "/v1/messages",
        &json!({
            "model": MODEL, "max_tokens": 100,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "look at this"}, image(&blue)]},
                {"role": "assistant", "content": "A blue strip."},
                {"role": "user", "content": "and its colour again?"}
            ]
        }),
    );
    assert_image_upstream(&upstream, &blue);
    let history = upstream.message_calls().last().unwrap().all_text();
    assert!(
        history.contains("look at this") && history.contains("A blue strip."),
        "{history}"
    );

    // OpenAI: an image_url part with a data: URL.
    let green = base64(&png(1, 2, [0, 255, 0]));
    let reply = post_ok(
        &daemon,
        "/v1/chat/completions",
        &json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "and this one?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{green}"), "detail": "low"}}
            ]}]
        }),
    );
    assert_eq!(reply["choices"][0]["finish_reason"], "stop", "{reply}");
    assert_image_upstream(&upstream, &green);
}

#[test]
fn thinking_budget_reaches_the_upstream_and_thinking_comes_back() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let ask = |text: &str, thinking: Option<Value>, stream: bool| {
        let mut body = json!({
            "model": MODEL, "max_tokens": 4096, "stream": stream,
            "messages": [{"role": "user", "content": text}]
        });
        if let Some(thinking) = thinking {
            body["thinking"] = thinking;
        }
        body
    };
    let enabled = json!({"type": "enabled", "budget_tokens": 2048});

    // Non-streaming.
    let reply = post_ok(
        &daemon,
        "/v1/messages",
        &ask("think first", Some(enabled.clone()), false),
    );
    let sent = last_body(&upstream);
    assert_eq!(sent["thinking"]["type"], "enabled", "{}", sent["thinking"]);
    assert_eq!(sent["thinking"]["budget_tokens"], 2048);
    let content = reply["content"].as_array().unwrap();
    assert_eq!(
        content[0],
        json!({"type": "thinking", "thinking": "Let me think.", "signature": "sig-fake"}),
        "{reply}"
    );
    assert_eq!(content[1]["type"], "text");
    assert_eq!(content[1]["text"], "Hello! You said: think first");

    // Streaming: the thinking block arrives as its own deltas.
    let res = daemon.post_to("/v1/messages", &ask("think aloud", Some(enabled), true));
    assert_eq!(res.status(), 200);
    let events = parse_sse(&res.text().unwrap());
    let sent = last_body(&upstream);
    assert_eq!(sent["thinking"]["budget_tokens"], 2048);
    let start = events
        .iter()
        .find(|(name, d)| name == "content_block_start" && d["content_block"]["type"] == "thinking")
        .unwrap_or_else(|| panic!("no thinking block start: {events:?}"));
    let index = &start.1["index"];
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|(name, d)| name == "content_block_delta" && &d["index"] == index)
        .map(|(_, d)| &d["delta"])
        .collect();
    let thinking: String = deltas
        .iter()
        .filter(|d| d["type"] == "thinking_delta")
        .filter_map(|d| d["thinking"].as_str())
        .collect();
    assert_eq!(thinking, "Let me think.", "{deltas:?}");
    let signatures: Vec<&Value> = deltas
        .iter()
        .filter(|d| d["type"] == "signature_delta")
        .map(|d| &d["signature"])
        .collect();
    assert_eq!(signatures, [&json!("sig-fake")], "{deltas:?}");
    assert!(
        events
            .iter()
            .any(|(name, d)| name == "content_block_stop" && &d["index"] == index),
        "thinking block never stopped"
    );
    assert_eq!(sse_text(&events), "Hello! You said: think aloud");

    // Without `thinking`, and with it disabled, thinking is off upstream
    // (the CLI's own default would be on).
    for thinking in [None, Some(json!({"type": "disabled"}))] {
        let reply = post_ok(
            &daemon,
            "/v1/messages",
            &ask("no thoughts", thinking, false),
        );
        let sent = last_body(&upstream);
        assert_eq!(sent["thinking"]["type"], "disabled", "{}", sent["thinking"]);
        assert_eq!(reply["content"][0]["type"], "text", "{reply}");
        assert_eq!(reply["content"].as_array().unwrap().len(), 1, "{reply}");
    }
}
