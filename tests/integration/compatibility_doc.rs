//! docs/compatibility.md names every field the daemon reads of a request:
//! each field of `MessagesRequest`, `ChatRequest` and `ResponsesRequest`
//! (read from their source) has a row in its endpoint's section, so a field
//! added to a dialect cannot go undocumented.

use std::path::PathBuf;

fn read(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The wire names of struct `name`'s fields in `source`: `pub field:` lines
/// of its body, minus those serde skips.
fn fields(source: &str, name: &str) -> Vec<String> {
    let start = source
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name}"));
    let body = &source[start..];
    let body = &body[..body.find("\n}").expect("the struct ends")];
    let mut out = Vec::new();
    let mut skipped = false;
    for line in body.lines().skip(1).map(str::trim) {
        if line.starts_with("#[serde(skip") {
            skipped = true;
        } else if let Some(rest) = line.strip_prefix("pub") {
            // `pub field:` or `pub(super) field:`
            let rest = match rest.strip_prefix('(') {
                Some(vis) => vis.split_once(')').map_or("", |(_, r)| r),
                None => rest,
            };
            let field = rest.split(':').next().unwrap().trim().to_string();
            if !skipped {
                out.push(field);
            }
            skipped = false;
        }
    }
    out
}

/// The text of the doc's section whose heading starts with `heading`.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n## {heading}"))
        .unwrap_or_else(|| panic!("docs/compatibility.md has no section `## {heading}`"));
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

#[test]
fn every_request_field_has_a_row_in_the_compatibility_matrix() {
    let doc = read("docs/compatibility.md");
    let cases = [
        (
            "src/api/anthropic/request.rs",
            "MessagesRequest",
            "`POST /v1/messages`",
        ),
        (
            "src/api/openai/request.rs",
            "ChatRequest",
            "`POST /v1/chat/completions`",
        ),
        (
            "src/api/responses/mod.rs",
            "ResponsesRequest",
            "`POST /v1/responses`",
        ),
    ];
    let mut missing = Vec::new();
    for (path, name, heading) in cases {
        let source = read(path);
        let found = fields(&source, name);
        assert!(
            found.len() >= 10,
            "{name}: only {found:?}: is the parser broken?"
        );
        let text = section(&doc, heading);
        for field in found {
            let named =
                text.contains(&format!("`{field}`")) || text.contains(&format!("`{field}."));
            if !named {
                missing.push(format!("{heading}: `{field}` ({name} in {path})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields without a row in docs/compatibility.md:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_field_reader_skips_what_serde_skips() {
    let source = "pub struct S {\n    #[serde(default)]\n    pub a: u8,\n    #[serde(skip)]\n    pub(super) b: u8,\n    pub c: Option<u8>,\n}\n";
    assert_eq!(fields(source, "S"), ["a", "c"]);
}
