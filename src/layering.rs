//! Checks of the crate's layering, read from the source: no import cycle
//! among the top-level modules of `src/` (each can be read, tested and
//! changed knowing only what it imports), and `api` does no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each source file (relative to `src/`) and its code: not its comments,
/// not its `#[cfg(test)]` tail.
fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut files = vec![root.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let code: Vec<&str> = text
            .lines()
            .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        out.push((rel, code.join("\n")));
    }
    out
}

/// Each top-level module and the top-level modules its code names through
/// `crate::`, with a file that does.
fn imports() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (rel, code) in sources() {
        let module = rel.split(['/', '.']).next().unwrap().to_string();
        if matches!(module.as_str(), "lib" | "main" | "layering") {
            continue;
        }
        for line in code.lines() {
            for named in named_modules(line) {
                if named != module {
                    out.entry(module.clone())
                        .or_default()
                        .entry(named)
                        .or_insert_with(|| rel.clone());
                }
            }
        }
    }
    out
}

/// The top-level modules a line names: `crate::a::…` and
/// `crate::{a::…, b}`.
fn named_modules(line: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in line.match_indices("crate::") {
        let rest = &line[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: at brace depth 0, after `{` or `,`.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start => {
                        out.push(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

/// A cycle of the graph, if it has one, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn a_line_names_the_modules_it_imports() {
    assert_eq!(named_modules("use crate::api::Dialect;"), ["api"]);
    assert_eq!(
        named_modules("use crate::{job::{A, B}, keys, store::X};"),
        ["job", "keys", "store"]
    );
    assert_eq!(
        named_modules("let x = crate::ids::new(); crate::api::f()"),
        ["ids", "api"]
    );
}

#[test]
fn no_import_cycle_among_the_top_level_modules() {
    let graph = imports();
    assert!(graph.contains_key("http") && graph["http"].contains_key("api"));
    if let Some(cycle) = cycle(&graph) {
        let edges: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
            .collect();
        panic!("import cycle: {}", edges.join(", "));
    }
}

#[test]
fn api_does_no_io() {
    let graph = imports();
    for io in [
        "store", "stored", "batches", "ledger", "dispatch", "worker", "http",
    ] {
        if let Some(file) = graph["api"].get(io) {
            panic!("api imports `{io}` (in {file}): the codecs do no I/O");
        }
    }
    for (rel, code) in sources().iter().filter(|(rel, _)| rel.starts_with("api/")) {
        for io in [
            "rusqlite",
            "std::fs",
            "spawn_blocking",
            "Condvar",
            "tokio::",
        ] {
            assert!(!code.contains(io), "{rel} uses {io}: the codecs do no I/O");
        }
    }
}
