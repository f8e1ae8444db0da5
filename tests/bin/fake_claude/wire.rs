//! The pieces of the stream-json lines: text deltas, usage, ids, marker
//! arguments, and printing one line.

use super::*;

/// `text` cut before each word that follows whitespace, as the upstream
/// streams it ("Here ", "is ", "a ", "short ", "answer.").
pub(super) fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut after_space) = (0, false);
    for (i, c) in text.char_indices() {
        if !c.is_whitespace() && after_space {
            pieces.push(&text[start..i]);
            start = i;
        }
        after_space = c.is_whitespace();
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// The number in a `[[name:N]]` marker of `text`.
pub(super) fn marker_arg(text: &str, name: &str) -> Option<u64> {
    let start = text.find(&format!("[[{name}:"))? + name.len() + 3;
    let rest = &text[start..];
    rest[..rest.find("]]")?].trim().parse().ok()
}

pub(super) fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0, "output_tokens": output_tokens,
        "service_tier": "standard"})
}

pub(super) fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        std::process::exit(1); // the reader went away
    }
}

pub(super) static MESSAGES: AtomicU64 = AtomicU64::new(0);

/// A UUID-shaped id, unique across processes (pid) and within one (counter).
pub(super) fn uuid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:08x}-fa4e-4000-8000-{n:012x}", std::process::id())
}
