//! Model names: which requested names reach the CLI unchanged.

/// Aliases the CLI itself understands.
const CLI_ALIASES: &[&str] = &["opus", "sonnet", "haiku", "opusplan", "default"];

/// The model the CLI is asked for: a Claude model id or a CLI alias passes
/// through; anything else (a missing name, `gpt-4o`, …) becomes the default.
pub fn resolve_model(requested: Option<&str>, default_model: &str) -> String {
    match requested.map(str::trim) {
        Some(name) if is_claude_model(name) => name.to_string(),
        _ => default_model.to_string(),
    }
}

fn is_claude_model(name: &str) -> bool {
    let base = name.strip_suffix("[1m]").unwrap_or(name);
    (base.starts_with("claude-") && base.len() > "claude-".len()) || CLI_ALIASES.contains(&base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_names_pass_others_default() {
        assert_eq!(
            resolve_model(Some("claude-haiku-4-5"), "sonnet"),
            "claude-haiku-4-5"
        );
        assert_eq!(resolve_model(Some("opus"), "sonnet"), "opus");
        assert_eq!(resolve_model(Some("gpt-4o"), "sonnet"), "sonnet");
        assert_eq!(resolve_model(Some("claude-"), "sonnet"), "sonnet");
        assert_eq!(resolve_model(None, "sonnet"), "sonnet");
    }
}
