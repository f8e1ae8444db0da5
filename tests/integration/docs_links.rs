//! The documentation's relative links lead somewhere: every `[text](target)`
//! in README.md, ARCHITECTURE.md and docs/*.md that is not a URL names a
//! file of the repository, and its `#fragment`, when it has one and the file
//! is Markdown, names a heading of that file (GitHub's anchor rules). And
//! every repository path they name in backticks (`src/…`, `tests/…`, …)
//! exists, so a moved file cannot leave the docs pointing at nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose links are checked.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Lines outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut inside = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                inside = !inside;
                return false;
            }
            !inside
        })
        .collect()
}

/// GitHub's anchor of a heading: lower case, punctuation dropped (letters,
/// digits, `-`, `_` and spaces kept), spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown file defines; a repeated heading gets `-1`, `-2`….
fn anchors(text: &str) -> HashSet<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = HashSet::new();
    for line in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.iter().filter(|s| **s == base).count();
        out.insert(if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        seen.push(base);
    }
    out
}

/// The targets of inline links `[text](target)` in a line.
fn link_targets(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                let target = &after[..end];
                if !target.contains(char::is_whitespace) {
                    out.push(target);
                }
                rest = &after[end..];
            }
            None => break,
        }
    }
    out
}

/// What is wrong with one link of `doc`, if anything.
fn broken(doc: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        doc.to_path_buf()
    } else {
        doc.parent().unwrap().join(path)
    };
    if !file.exists() {
        return Some(format!("{target}: no such file"));
    }
    let markdown = file.extension().is_some_and(|e| e == "md");
    if fragment.is_empty() || !markdown {
        return None;
    }
    let text = std::fs::read_to_string(&file).unwrap();
    (!anchors(&text).contains(fragment)).then(|| format!("{target}: no heading #{fragment}"))
}

#[test]
fn every_relative_link_of_the_docs_leads_to_a_file_and_heading() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text =
            std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        for line in prose(&text) {
            for target in link_targets(line) {
                checked += 1;
                if let Some(problem) = broken(&doc, target) {
                    let name = doc.strip_prefix(root()).unwrap_or(&doc).display();
                    problems.push(format!("{name}: {problem}"));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// Paths of the repository named in backticks: `` `src/job.rs` ``.
fn repository_paths(text: &str) -> Vec<&str> {
    const ROOTS: [&str; 8] = [
        "src/", "tests/", "scripts/", "benches/", "config/", "deploy/", "systemd/", "assets/",
    ];
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| ROOTS.iter().any(|root| span.starts_with(root)))
        .filter(|span| {
            span.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        })
        .collect()
}

#[test]
fn every_repository_path_the_docs_name_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        // Outside fenced blocks, whose ``` would pair backticks wrongly.
        let text = prose(&text).join("\n");
        for path in repository_paths(&text) {
            checked += 1;
            if !root().join(path).exists() {
                let name = doc.strip_prefix(root()).unwrap_or(&doc).display();
                missing.push(format!("{name}: `{path}`"));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} paths found: is the reader broken?"
    );
    assert!(
        missing.is_empty(),
        "paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn anchors_follow_githubs_rules() {
    assert_eq!(
        slug("The sandbox (`agent.sandbox = \"bwrap\"`, the default)"),
        "the-sandbox-agentsandbox--bwrap-the-default"
    );
    assert_eq!(slug("Teams: keys, limits"), "teams-keys-limits");
    let defined = anchors("# A\n```\n# not a heading\n```\n## A\n### B b\n");
    let expected: HashSet<String> = ["a", "a-1", "b-b"].map(String::from).into();
    assert_eq!(defined, expected);
    assert_eq!(
        link_targets("see [x](a.md#b) and [y](https://e.com) or [z](c d)"),
        ["a.md#b", "https://e.com"]
    );
    assert_eq!(
        repository_paths("`src/a.rs` and `x` and `tests/*.rs` and `docs/b.md` `scripts/t.sh`"),
        ["src/a.rs", "scripts/t.sh"]
    );
}
