//! Model names: which requested names reach the CLI unchanged, and the
//! catalogue that `GET /v1/models` lists (the facts about known models are
//! in [`crate::config::catalogue`], the default of `claude.models`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::anthropic::InvalidRequest;
use crate::config::catalogue::CATALOGUE;

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

/// The model name a response reports: the one the client asked for, else
/// the default.
pub fn reported_model(requested: Option<&str>, default_model: &str) -> String {
    requested
        .filter(|m| !m.is_empty())
        .unwrap_or(default_model)
        .to_string()
}

fn is_claude_model(name: &str) -> bool {
    let base = name.strip_suffix("[1m]").unwrap_or(name);
    (base.starts_with("claude-") && base.len() > "claude-".len()) || CLI_ALIASES.contains(&base)
}

/// One model the daemon lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: String,
    pub display_name: String,
    /// Release date (year, month, day), UTC midnight; the source of both
    /// Anthropic's `created_at` and OpenAI's `created`.
    pub released: (i32, u32, u32),
}

/// The listed models, in the configured order. Ids the daemon has no facts
/// about are listed under their own name, dated 2025-01-01.
pub fn listed(ids: &[String]) -> Vec<ModelInfo> {
    ids.iter()
        .map(|id| match CATALOGUE.iter().find(|m| m.id == id) {
            Some(known) => ModelInfo {
                id: id.clone(),
                display_name: known.display_name.to_string(),
                released: known.released,
            },
            None => ModelInfo {
                id: id.clone(),
                display_name: id.clone(),
                released: (2025, 1, 1),
            },
        })
        .collect()
}

/// The listed entry for `id`, if listed.
pub fn find_model(id: &str, ids: &[String]) -> Option<ModelInfo> {
    listed(ids).into_iter().find(|m| m.id == id)
}

impl ModelInfo {
    /// Unix seconds of the release date.
    pub fn created(&self) -> i64 {
        let (y, m, d) = self.released;
        days_from_civil(y, m, d) * 86_400
    }

    /// RFC 3339 release date.
    pub fn created_at(&self) -> String {
        let (y, m, d) = self.released;
        format!("{y:04}-{m:02}-{d:02}T00:00:00Z")
    }

    /// One entry that both SDKs accept: Anthropic reads `type`, `id`,
    /// `display_name`, `created_at`; OpenAI reads `object`, `id`, `created`,
    /// `owned_by`.
    pub fn to_json(&self) -> Value {
        json!({
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": self.created_at(),
            "object": "model",
            "created": self.created(),
            "owned_by": "anthropic",
        })
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Anthropic's paging parameters of `GET /v1/models` (OpenAI has none).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub after_id: Option<String>,
    #[serde(default)]
    pub before_id: Option<String>,
}

/// One page of the catalogue, shaped for both SDKs: `data`, `has_more`,
/// `first_id`, `last_id` (Anthropic) and `object: "list"` (OpenAI).
pub fn list_page(query: &ListQuery, ids: &[String]) -> Result<Value, InvalidRequest> {
    let models = listed(ids);
    let limit = query.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(InvalidRequest("limit: must be between 1 and 1000".into()));
    }
    let position = |field: &str, id: &str| {
        models
            .iter()
            .position(|m| m.id == id)
            .ok_or_else(|| InvalidRequest(format!("{field}: unknown model id `{id}`")))
    };
    let (start, end) = match (&query.after_id, &query.before_id) {
        (Some(_), Some(_)) => {
            return Err(InvalidRequest(
                "after_id: cannot be combined with before_id".into(),
            ))
        }
        (Some(after), None) => {
            let start = position("after_id", after)? + 1;
            (start, (start + limit).min(models.len()))
        }
        (None, Some(before)) => {
            let end = position("before_id", before)?;
            (end.saturating_sub(limit), end)
        }
        (None, None) => (0, limit.min(models.len())),
    };
    let page = &models[start..end];
    let has_more = if query.before_id.is_some() {
        start > 0
    } else {
        end < models.len()
    };
    Ok(json!({
        "object": "list",
        "data": page.iter().map(ModelInfo::to_json).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": page.first().map(|m| m.id.clone()),
        "last_id": page.last().map(|m| m.id.clone()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::catalogue::default_ids;

    #[test]
    fn list_satisfies_both_sdks() {
        let list = list_page(&ListQuery::default(), &default_ids()).unwrap();
        assert_eq!(list["object"], "list");
        assert_eq!(list["has_more"], false);
        let data = list["data"].as_array().unwrap();
        assert_eq!(data.len(), CATALOGUE.len());
        assert_eq!(list["first_id"], data[0]["id"]);
        assert_eq!(list["last_id"], data[data.len() - 1]["id"]);
        for id in [
            "claude-opus-4-8",
            "claude-sonnet-5",
            "claude-haiku-4-5",
            "opus",
            "sonnet",
            "haiku",
        ] {
            assert!(data.iter().any(|m| m["id"] == id), "{id} missing");
        }
        for m in data {
            assert_eq!(m["type"], "model");
            assert_eq!(m["object"], "model");
            assert_eq!(m["owned_by"], "anthropic");
            assert!(m["display_name"].is_string());
            assert!(m["created"].as_i64().unwrap() > 1_700_000_000);
            let at = m["created_at"].as_str().unwrap();
            assert!(at.len() == 20 && at.ends_with("T00:00:00Z"), "{at}");
            // Every listed id is one the CLI is handed unchanged.
            assert_eq!(resolve_model(m["id"].as_str(), "x"), m["id"]);
        }
    }

    #[test]
    fn dates_agree() {
        let m = find_model("claude-opus-4-1", &default_ids()).unwrap();
        assert_eq!(m.created_at(), "2025-08-05T00:00:00Z");
        assert_eq!(m.created(), 1_754_352_000);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert!(find_model("gpt-4o", &default_ids()).is_none());
        let custom = vec!["claude-new-9".to_string()];
        assert_eq!(
            find_model("claude-new-9", &custom).unwrap().display_name,
            "claude-new-9"
        );
        assert!(find_model("claude-opus-4-1", &custom).is_none());
    }

    #[test]
    fn pages() {
        let q = |limit, after: Option<&str>, before: Option<&str>| ListQuery {
            limit,
            after_id: after.map(String::from),
            before_id: before.map(String::from),
        };
        let q_ids = |limit, after, before| (q(limit, after, before), default_ids());
        let list_page = |(query, ids): (ListQuery, Vec<String>)| super::list_page(&query, &ids);
        let p = list_page(q_ids(Some(2), None, None)).unwrap();
        assert_eq!(p["data"].as_array().unwrap().len(), 2);
        assert_eq!(p["has_more"], true);
        let next = list_page(q_ids(Some(2), p["last_id"].as_str(), None)).unwrap();
        assert_eq!(next["first_id"], CATALOGUE[2].id);
        let back = list_page(q_ids(Some(2), None, next["first_id"].as_str())).unwrap();
        assert_eq!(back["data"], p["data"]);
        assert_eq!(back["has_more"], false);
        assert!(list_page(q_ids(Some(0), None, None)).is_err());
        assert!(list_page(q_ids(None, Some("nope"), None))
            .unwrap_err()
            .0
            .starts_with("after_id"));
    }

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
