//! The shipped `config/claude-pool.toml` is a valid configuration equal to
//! the built-in defaults, and documents every setting: a key added to
//! `Settings` without a documented line in the file fails here.

use std::path::PathBuf;

use claude_pool::config::Settings;
use serde_json::Value;

fn shipped_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/claude-pool.toml")
}

fn shipped_text() -> String {
    std::fs::read_to_string(shipped_path()).expect("config/claude-pool.toml is readable")
}

/// One line of the file as far as this test cares.
#[derive(Debug, PartialEq)]
enum Line {
    /// `[section]` or `[section.sub]`.
    Header(String),
    /// `key = value`, or `# key = value` when `commented`.
    Entry {
        key: String,
        commented: bool,
    },
    /// Any other `#` line: documentation.
    Comment,
    Blank,
    Other,
}

fn classify(line: &str) -> Line {
    let line = line.trim();
    if line.is_empty() {
        return Line::Blank;
    }
    if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
        return Line::Header(name.trim().to_string());
    }
    let (body, commented) = match line.strip_prefix('#') {
        Some(rest) => (rest.trim_start(), true),
        None => (line, false),
    };
    // A key is a bare TOML key directly followed by ` =` (prose has spaces
    // between words, so "# Keys clients must send = ..." is not a key).
    let key_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(body.len());
    let key = &body[..key_end];
    let is_entry = !key.is_empty() && body[key_end..].trim_start().starts_with('=');
    match (is_entry, commented) {
        (true, _) => Line::Entry {
            key: key.to_string(),
            commented,
        },
        (false, true) => Line::Comment,
        (false, false) => Line::Other,
    }
}

/// The file's lines, each with the section it sits in ("" before any header).
fn lines(text: &str) -> Vec<(String, Line)> {
    let mut section = String::new();
    text.lines()
        .map(|raw| {
            // `[[accounts]]`, shipped commented out, opens its own section.
            let bare = raw.trim().trim_start_matches('#').trim();
            let line = match bare.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
                Some(name) => Line::Header(name.to_string()),
                None => classify(raw),
            };
            if let Line::Header(name) = &line {
                section = name.clone();
            }
            (section.clone(), line)
        })
        .collect()
}

/// Whether the line before `index` is a comment (documentation or an example).
fn documented(lines: &[(String, Line)], index: usize) -> bool {
    index > 0
        && matches!(
            lines[index - 1].1,
            Line::Comment
                | Line::Entry {
                    commented: true,
                    ..
                }
        )
}

/// `Settings::default()` as `section -> key -> value`, tables only
/// (`[[accounts]]`, a list, has its own test).
fn default_sections() -> serde_json::Map<String, Value> {
    match serde_json::to_value(Settings::default()).unwrap() {
        Value::Object(sections) => sections
            .into_iter()
            .filter(|(_, keys)| keys.is_object())
            .collect(),
        other => panic!("Settings serialized to {other}"),
    }
}

#[test]
fn shipped_config_parses_and_equals_the_defaults() {
    let text = shipped_text();
    let from_text = Settings::from_toml(&text).expect("the shipped config parses");
    let loaded = Settings::load(Some(&shipped_path())).expect("the shipped config loads");
    let defaults = serde_json::to_value(Settings::default()).unwrap();

    for (how, settings) in [("from_toml", from_text), ("load", loaded)] {
        let shipped = serde_json::to_value(settings).unwrap();
        let mut differences = Vec::new();
        for (section, keys) in default_sections() {
            for (key, default) in keys.as_object().unwrap() {
                let value = &shipped[&section][key];
                if value != default {
                    differences.push(format!(
                        "{section}.{key}: shipped {value}, default {default}"
                    ));
                }
            }
        }
        assert!(
            differences.is_empty(),
            "{how}: shipped values differ from the built-in defaults:\n{}",
            differences.join("\n")
        );
        assert_eq!(shipped, defaults, "{how}");
        assert!(shipped["accounts"].as_array().unwrap().is_empty(), "{how}");
    }
}

#[test]
fn every_setting_is_in_the_shipped_config_with_a_comment() {
    let text = shipped_text();
    let lines = lines(&text);
    let mut problems = Vec::new();

    for (section, keys) in default_sections() {
        if !lines
            .iter()
            .any(|(_, l)| *l == Line::Header(section.clone()))
        {
            problems.push(format!("[{section}]: section missing"));
            continue;
        }
        for (key, default) in keys.as_object().unwrap() {
            let name = format!("{section}.{key}");
            let find = |commented: bool| {
                lines.iter().position(|(s, l)| {
                    *s == section
                        && *l
                            == Line::Entry {
                                key: key.clone(),
                                commented,
                            }
                })
            };
            let found = match default {
                // A table of its own (`[claude.env]`): its header must exist.
                Value::Object(_) => {
                    let found = lines
                        .iter()
                        .position(|(_, l)| *l == Line::Header(name.clone()));
                    if found.is_none() {
                        problems.push(format!("{name}: no [{name}] table"));
                    }
                    found
                }
                // Unset by default: shown commented out with an example.
                Value::Null => {
                    if find(false).is_some() {
                        problems.push(format!(
                            "{name}: unset by default, so it must be commented out (`# {key} = ...`)"
                        ));
                    }
                    let found = find(true);
                    if found.is_none() {
                        problems.push(format!("{name}: missing `# {key} = <example>` line"));
                    }
                    found
                }
                _ => {
                    let found = find(false);
                    if found.is_none() {
                        problems.push(format!("{name}: missing `{key} = <default>` line"));
                    }
                    found
                }
            };
            if let Some(index) = found {
                if !documented(&lines, index) {
                    problems.push(format!("{name}: no comment line above it"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "config/claude-pool.toml does not document every setting:\n{}",
        problems.join("\n")
    );
}

/// The commented-out examples are valid too: uncommenting every one of them
/// (as the service install does for `claude.config_dir`/`working_dir`)
/// still gives a configuration that loads.
#[test]
fn commented_examples_of_unset_settings_are_valid() {
    let text = shipped_text();
    let lines = lines(&text);
    let unset: Vec<(String, String)> = default_sections()
        .into_iter()
        .flat_map(|(section, keys)| {
            keys.as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| (section.clone(), k.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!unset.is_empty());
    let uncommented: String = text
        .lines()
        .zip(&lines)
        .map(|(raw, (section, line))| match line {
            Line::Entry {
                key,
                commented: true,
            } if unset.contains(&(section.clone(), key.clone())) => {
                raw.trim_start().trim_start_matches('#').trim_start()
            }
            _ => raw,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let settings = Settings::from_toml(&uncommented).expect("the uncommented examples parse");
    let settings = serde_json::to_value(settings).unwrap();
    for (section, key) in &unset {
        assert!(
            !settings[section][key].is_null(),
            "{section}.{key}: the example did not take effect"
        );
    }
    // What the service install writes: everything under its StateDirectory.
    assert_eq!(
        settings["claude"]["config_dir"],
        "/var/lib/claude-pool/claude"
    );
    assert_eq!(
        settings["claude"]["working_dir"],
        "/var/lib/claude-pool/work"
    );
}

#[test]
fn the_classifier_tells_keys_from_prose() {
    assert_eq!(
        classify("# api_keys = [\"x\"]"),
        Line::Entry {
            key: "api_keys".into(),
            commented: true
        }
    );
    assert_eq!(
        classify("size = 2"),
        Line::Entry {
            key: "size".into(),
            commented: false
        }
    );
    assert_eq!(classify("# Number of workers = a count"), Line::Comment);
    assert_eq!(classify("[claude.env]"), Line::Header("claude.env".into()));
}

/// The configuration reference (docs/configuration.md) lists exactly the
/// settings of the shipped config, and its `reload` column agrees with what a
/// reload applies.
#[test]
fn the_configuration_reference_lists_every_setting_of_the_shipped_config() {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .expect("docs/configuration.md is readable");
    let reference = doc
        .split("\n## Configuration reference\n")
        .nth(1)
        .expect("docs/configuration.md has a `## Configuration reference` section");
    let reference = reference.split("\n## ").next().unwrap_or_default();
    // `| `section.key` | default | reload | what |`
    let mut table = Vec::new();
    for row in reference.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let key = cells[1].trim_matches('`').to_string();
        table.push((key, cells[3].to_string()));
    }
    let table_keys: Vec<&String> = table.iter().map(|(k, _)| k).collect();

    // Keys of the shipped file: entries (set or commented out) of the
    // top-level sections, and sub-tables such as [claude.env].
    let text = shipped_text();
    let mut shipped: Vec<String> = Vec::new();
    for (section, line) in lines(&text) {
        match line {
            Line::Entry { key, .. } if !section.is_empty() && !section.contains('.') => {
                shipped.push(format!("{section}.{key}"));
            }
            Line::Header(name) if name.contains('.') => shipped.push(name),
            _ => {}
        }
    }
    shipped.dedup();

    let missing: Vec<&String> = shipped.iter().filter(|k| !table_keys.contains(k)).collect();
    let extra: Vec<&&String> = table_keys.iter().filter(|k| !shipped.contains(k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/configuration.md reference vs config/claude-pool.toml:\n  not in the reference: {missing:?}\n  not in the shipped config: {extra:?}"
    );
    for (key, reload) in &table {
        // `[[accounts]]` and `[[keys]]` are reloaded whole (see
        // `reload::prepare`).
        let expected = if claude_pool::reload::RELOADABLE.contains(&key.as_str())
            || key.starts_with("accounts.")
            || key.starts_with("keys.")
        {
            "yes"
        } else {
            "restart"
        };
        assert_eq!(
            reload, expected,
            "{key}: docs/configuration.md says `{reload}`"
        );
    }
}

/// The commented `[[accounts]]` example documents every key of an account,
/// each with a comment above it, and loads once uncommented.
#[test]
fn the_accounts_example_is_complete_and_valid() {
    let text = shipped_text();
    let start = text
        .lines()
        .position(|l| l.trim() == "# [[accounts]]")
        .expect("a commented `# [[accounts]]` example");
    let block: Vec<&str> = text.lines().skip(start).collect();
    let all = lines(&block.join("\n"));
    let keys = [
        "name",
        "workers",
        "env",
        "env_file",
        "config_dir",
        "allow_overage",
    ];
    for key in keys {
        let index = all
            .iter()
            .position(|(_, l)| {
                *l == Line::Entry {
                    key: key.to_string(),
                    commented: true,
                }
            })
            .unwrap_or_else(|| panic!("accounts.{key}: missing `# {key} = <example>` line"));
        assert!(
            documented(&all, index),
            "accounts.{key}: no comment above it"
        );
    }
    let uncommented: String = block
        .iter()
        .zip(&all)
        .filter_map(|(raw, (_, line))| match line {
            Line::Entry { .. } => Some(raw.trim_start_matches(['#', ' '])),
            _ if raw.trim() == "# [[accounts]]" => Some("[[accounts]]"),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let settings = Settings::from_toml(&uncommented).expect("the uncommented example parses");
    assert_eq!(settings.accounts.len(), 1);
    let account = serde_json::to_value(&settings.accounts[0]).unwrap();
    for key in keys {
        assert!(
            !account[key].is_null(),
            "accounts.{key}: the example did not take effect"
        );
    }
}
