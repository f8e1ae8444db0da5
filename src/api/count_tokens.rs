//! A local estimate of the input tokens of a Messages request, for
//! `count_tokens`. The pool has no tokenizer and does not spend a model turn
//! on counting; [`estimate`] says how the number is made.

use serde_json::Value;

use super::anthropic::{MessageContent, MessagesRequest, SystemPrompt};

/// Fixed cost of any request: the turn markers around the conversation.
const REQUEST_OVERHEAD: f64 = 7.0;
/// Fixed cost of each message (role marker and separators).
const MESSAGE_OVERHEAD: f64 = 4.0;
/// Fixed cost of a non-empty system prompt.
const SYSTEM_OVERHEAD: f64 = 3.0;
/// The tool-use system prompt the API adds when tools are given, per
/// Anthropic's pricing documentation for Claude 4 models: 346 tokens with
/// `tool_choice` auto or none, 313 with `any` or a named tool.
const TOOLS_PREAMBLE_AUTO: f64 = 346.0;
const TOOLS_PREAMBLE_FORCED: f64 = 313.0;
/// Fixed cost of each tool_use / tool_result block's wrapping.
const TOOL_BLOCK_OVERHEAD: f64 = 5.0;
/// An image whose size cannot be read (a URL, an unknown format): about the
/// cost of an image at the largest size the API keeps without resizing.
const IMAGE_UNKNOWN: f64 = 1_600.0;
/// The API scales images down to a long edge of 1568 px and to about
/// 1.19 megapixels (≈ 1,600 tokens), then charges `width × height / 750`.
const IMAGE_MAX_EDGE: f64 = 1_568.0;
const IMAGE_MAX_PIXELS: f64 = 1_190_000.0;
const PIXELS_PER_TOKEN: f64 = 750.0;
/// A PDF page: extracted text (1.5k–3k tokens by Anthropic's documentation)
/// plus the page's image. Rough.
const PDF_PAGE: f64 = 3_000.0;
/// Bytes of PDF per page when pages cannot be counted (compressed object
/// streams hide the page objects).
const PDF_BYTES_PER_PAGE: usize = 60_000;
/// Bytes of an image decoded to find its dimensions; JPEG headers with EXIF
/// thumbnails can put the frame header tens of KiB in.
const IMAGE_HEADER_BYTES: usize = 256 * 1024;

/// Estimated input tokens of a job as a fresh worker would send it: its
/// system prompt, the rendered conversation (one user message) and its
/// tools, by the same method as [`estimate`] (the Responses API's
/// `input_tokens`, whose request is translated to a job first).
pub fn estimate_spec(spec: &crate::job::JobSpec) -> u64 {
    let mut total = REQUEST_OVERHEAD + MESSAGE_OVERHEAD;
    if !spec.system.is_empty() {
        total += SYSTEM_OVERHEAD + text_tokens(&spec.system);
    }
    total += spec.prompt.iter().map(block_tokens).sum::<f64>();
    if let Some(tools) = spec.tools.as_ref().filter(|t| !t.tools.is_empty()) {
        total += TOOLS_PREAMBLE_AUTO;
        total += tools
            .tools
            .iter()
            .map(|t| text_tokens(&t.to_string()))
            .sum::<f64>();
    }
    total.ceil().max(1.0) as u64
}

/// Estimated input tokens of a Messages request.
///
/// # Method
/// - **Text** (system prompt, text blocks, tool inputs and results, tool
///   definitions as compact JSON): see [`text_tokens`].
/// - **Structure**: 7 tokens per request, 4 per message, 3 for a system
///   prompt, 5 per tool_use / tool_result block; these reproduce the API's
///   count of 14 for a lone "Hello, world" message.
/// - **Tools**: the definitions' JSON text plus the API's tool-use system
///   prompt (346 tokens, 313 when `tool_choice` forces a tool).
/// - **Images**: dimensions read from the base64 PNG, JPEG, GIF or WebP
///   header, scaled as the API scales them, at `w × h / 750` tokens (at most
///   about 1,600); 1,600 when the size cannot be read (URL images).
/// - **PDFs**: 3,000 tokens a page; pages counted from the page objects,
///   else guessed from the size. Plain-text documents count as text.
/// - Thinking blocks of earlier turns count nothing: the API drops them.
///
/// On English prose the text estimate was within −3…+18 % of Anthropic's
/// published (Claude 2 era) tokenizer, which yields somewhat fewer tokens
/// than the tokenizers of current models, so it should land within about
/// 15 % of the real count. Code, other languages and images are rougher.
pub fn estimate(request: &MessagesRequest, raw: &Value) -> u64 {
    let mut total = REQUEST_OVERHEAD;
    match &request.system {
        Some(SystemPrompt::Text(text)) if !text.is_empty() => {
            total += SYSTEM_OVERHEAD + text_tokens(text);
        }
        None | Some(SystemPrompt::Text(_)) => {}
        Some(SystemPrompt::Blocks(blocks)) => {
            if !blocks.is_empty() {
                total += SYSTEM_OVERHEAD;
            }
            total += blocks.iter().map(|b| text_tokens(&b.text)).sum::<f64>();
        }
    }
    for message in &request.messages {
        total += MESSAGE_OVERHEAD;
        total += match &message.content {
            MessageContent::Text(text) => text_tokens(text),
            MessageContent::Blocks(blocks) => blocks.iter().map(block_tokens).sum(),
        };
    }
    if let Some(tools) = raw.get("tools").and_then(Value::as_array) {
        if !tools.is_empty() {
            let forced = matches!(
                raw.pointer("/tool_choice/type").and_then(Value::as_str),
                Some("any" | "tool")
            );
            total += if forced {
                TOOLS_PREAMBLE_FORCED
            } else {
                TOOLS_PREAMBLE_AUTO
            };
            total += tools
                .iter()
                .map(|t| text_tokens(&t.to_string()))
                .sum::<f64>();
        }
    }
    total.ceil().max(1.0) as u64
}

/// Estimated tokens of a text.
///
/// For ASCII, the mean of two rules of thumb: one token per 4 visible
/// characters, and 4/3 tokens per word. Punctuation and symbols beyond one
/// in 20 visible characters (code, JSON) add half a token each; each line
/// break half a token and each run of indentation one. Characters outside
/// ASCII count by script: U+0080–U+07FF (accented Latin, Greek, Cyrillic,
/// Hebrew, Arabic) half a token each, anything above (CJK, …) one each.
pub fn text_tokens(text: &str) -> f64 {
    let (mut visible, mut symbols, mut narrow, mut wide, mut newlines) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut indents = 0u64;
    let mut blank_run = 0u32;
    for c in text.chars() {
        if c == ' ' || c == '\t' {
            blank_run += 1;
            continue;
        }
        if blank_run >= 2 {
            indents += 1;
        }
        blank_run = 0;
        if c == '\n' {
            newlines += 1;
        } else if c.is_ascii_whitespace() {
        } else if c.is_ascii() {
            visible += 1;
            if !c.is_ascii_alphanumeric() {
                symbols += 1;
            }
        } else if (c as u32) < 0x800 {
            narrow += 1;
        } else {
            wide += 1;
        }
    }
    if blank_run >= 2 {
        indents += 1;
    }
    let words = text.split_whitespace().count() as f64;
    let visible = visible as f64;
    let base = (visible / 4.0 + words * 4.0 / 3.0) / 2.0;
    let dense_symbols = (symbols as f64 - visible / 20.0).max(0.0) * 0.5;
    base + dense_symbols
        + newlines as f64 * 0.5
        + indents as f64
        + narrow as f64 * 0.5
        + wide as f64
}

fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Estimated tokens of one content block.
fn block_tokens(block: &Value) -> f64 {
    match str_at(block, "type") {
        "text" => text_tokens(str_at(block, "text")),
        "image" => image_tokens(block.get("source").unwrap_or(&Value::Null)),
        "document" => document_tokens(block),
        "tool_use" => {
            let input = block.get("input").map(Value::to_string).unwrap_or_default();
            TOOL_BLOCK_OVERHEAD + text_tokens(str_at(block, "name")) + text_tokens(&input)
        }
        "tool_result" => {
            TOOL_BLOCK_OVERHEAD
                + match block.get("content") {
                    Some(Value::String(text)) => text_tokens(text),
                    Some(Value::Array(parts)) => parts.iter().map(block_tokens).sum(),
                    _ => 0.0,
                }
        }
        "thinking" | "redacted_thinking" => 0.0,
        _ => text_tokens(&block.to_string()),
    }
}

fn image_tokens(source: &Value) -> f64 {
    if str_at(source, "type") != "base64" {
        return IMAGE_UNKNOWN;
    }
    let header = decode_base64(str_at(source, "data"), IMAGE_HEADER_BYTES);
    match image_dimensions(&header) {
        Some((w, h)) if w > 0 && h > 0 => image_tokens_for(f64::from(w), f64::from(h)),
        _ => IMAGE_UNKNOWN,
    }
}

/// Tokens of a `w × h` image after the API's downscaling.
fn image_tokens_for(mut w: f64, mut h: f64) -> f64 {
    let long = w.max(h);
    if long > IMAGE_MAX_EDGE {
        let s = IMAGE_MAX_EDGE / long;
        w *= s;
        h *= s;
    }
    let area = w * h;
    if area > IMAGE_MAX_PIXELS {
        let s = (IMAGE_MAX_PIXELS / area).sqrt();
        w *= s;
        h *= s;
    }
    (w * h / PIXELS_PER_TOKEN).ceil().max(1.0)
}

fn document_tokens(block: &Value) -> f64 {
    let source = block.get("source").unwrap_or(&Value::Null);
    let labels = text_tokens(str_at(block, "title")) + text_tokens(str_at(block, "context"));
    labels
        + match str_at(source, "type") {
            "text" => text_tokens(str_at(source, "data")),
            "content" => match source.get("content") {
                Some(Value::String(text)) => text_tokens(text),
                Some(Value::Array(parts)) => parts.iter().map(block_tokens).sum(),
                _ => 0.0,
            },
            "base64" => {
                let pdf = decode_base64(str_at(source, "data"), usize::MAX);
                pdf_pages(&pdf) as f64 * PDF_PAGE
            }
            // A URL or file reference: assume one page.
            _ => PDF_PAGE,
        }
}

/// Pages of a PDF: its `/Type /Page` objects, else a guess from its size.
fn pdf_pages(pdf: &[u8]) -> usize {
    let mut pages = 0;
    for needle in [&b"/Type/Page"[..], &b"/Type /Page"[..]] {
        let mut rest = pdf;
        while let Some(at) = find(rest, needle) {
            rest = &rest[at + needle.len()..];
            if rest.first() != Some(&b's') {
                pages += 1;
            }
        }
    }
    if pages == 0 {
        pages = pdf.len().div_ceil(PDF_BYTES_PER_PAGE).max(1);
    }
    pages
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes up to `limit` bytes of (standard or URL-safe) base64, stopping
/// quietly at padding or anything that is not base64.
fn decode_base64(data: &str, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in data.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            c if c.is_ascii_whitespace() => continue,
            _ => break,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
            if out.len() >= limit {
                break;
            }
        }
    }
    out
}

/// Width and height from the header of a PNG, GIF, WebP or JPEG file.
fn image_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| Some(u32::from(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])));
    let le16 = |i: usize| Some(u32::from(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?])));
    let le24 = |i: usize| {
        Some(
            u32::from(*b.get(i)?)
                | u32::from(*b.get(i + 1)?) << 8
                | u32::from(*b.get(i + 2)?) << 16,
        )
    };
    let be32 = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((be32(16)?, be32(20)?));
    }
    if b.starts_with(b"GIF8") {
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return match b.get(12..16)? {
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            b"VP8L" => {
                let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
                Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
            }
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            _ => None,
        };
    }
    if b.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 3 < b.len() {
            if b[i] != 0xFF {
                return None;
            }
            let marker = b[i + 1];
            match marker {
                0xFF => i += 1,
                0x01 | 0xD0..=0xD9 => i += 2,
                0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                    return Some((be16(i + 7)?, be16(i + 5)?));
                }
                _ => i += 2 + be16(i + 2)? as usize,
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn count(body: Value) -> u64 {
        let text = body.to_string();
        let request = MessagesRequest::parse(text.as_bytes()).unwrap();
        estimate(&request, &body)
    }

    /// A paragraph the Claude 2 tokenizer splits into 80 tokens.
    const PROSE: &str =
        "The old lighthouse stood at the edge of the cliff for more than a century, \
        watching ships come and go through storms and calm seas alike. Its keeper, a quiet man \
        named Thomas, climbed the spiral stairs every evening to light the lamp, and every morning \
        he wrote a short note in the logbook about the weather, the tides, and any vessels that \
        had passed in the night.";

    #[test]
    fn english_prose_lands_near_the_real_count() {
        let t = text_tokens(PROSE);
        assert!((72.0..=100.0).contains(&t), "{t}");
    }

    #[test]
    fn a_lone_greeting_costs_what_the_api_says() {
        let n = count(
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello, world"}]}),
        );
        assert_eq!(n, 14);
    }

    #[test]
    fn without_max_tokens_system_and_tools_count() {
        let plain = count(json!({"messages": [{"role": "user", "content": PROSE}]}));
        let with_system = count(
            json!({"system": [{"type": "text", "text": PROSE}], "messages": [{"role": "user", "content": PROSE}]}),
        );
        assert!(with_system > plain + 70, "{plain} {with_system}");
        let tools = json!([{"name": "get_weather", "description": "Get the current weather in a given location",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}]);
        let with_tools =
            count(json!({"tools": tools, "messages": [{"role": "user", "content": PROSE}]}));
        assert!(
            (plain + 346 + 20..plain + 346 + 80).contains(&with_tools),
            "{with_tools}"
        );
    }

    #[test]
    fn code_and_other_scripts_are_not_counted_as_prose() {
        let code =
            "fn main() { let x = vec![1, 2, 3]; for i in x.iter() { println!(\"{}\", i * 2); } }";
        let t = text_tokens(code);
        assert!((25.0..45.0).contains(&t), "{t}");
        let t = text_tokens("東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。");
        assert!((25.0..45.0).contains(&t), "{t}");
    }

    #[test]
    fn image_sizes_are_read_from_headers() {
        // A 1000 × 500 PNG header (IHDR only).
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(1000u32.to_be_bytes());
        png.extend(500u32.to_be_bytes());
        png.extend([8, 2, 0, 0, 0]);
        assert_eq!(image_dimensions(&png), Some((1000, 500)));
        // A JPEG with an APP0 segment before its SOF0 (h 300, w 400).
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 1, 44, 1, 144, 3,
        ];
        assert_eq!(image_dimensions(&jpeg), Some((400, 300)));
        let gif = b"GIF89a\x40\x01\xf0\x00";
        assert_eq!(image_dimensions(gif), Some((320, 240)));
        assert_eq!(image_tokens_for(1000.0, 500.0), 667.0);
        assert!((1_500.0..=1_600.0).contains(&image_tokens_for(4000.0, 3000.0)));
    }

    #[test]
    fn base64_images_and_url_images_are_counted() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(200u32.to_be_bytes());
        png.extend(200u32.to_be_bytes());
        let data = encode_base64(&png);
        let small = count(json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
            {"type": "text", "text": "what?"}]}]}));
        assert!((60..90).contains(&small), "{small}");
        let url = count(json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}]}]}));
        assert_eq!(url, 7 + 4 + 1600);
    }

    #[test]
    fn pdf_pages_are_counted() {
        let pdf = b"%PDF-1.4 1 0 obj << /Type /Pages /Count 2 >> 2 0 obj << /Type /Page >> 3 0 obj <</Type/Page>>";
        assert_eq!(pdf_pages(pdf), 2);
        assert_eq!(decode_base64(&encode_base64(pdf), usize::MAX), pdf.to_vec());
    }

    fn encode_base64(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
