//! What the admin API asks of the keys — a new key ([`NewKey`], the
//! fields a `[[keys]]` entry has, checked by the same rules), a change to
//! one ([`Patch`]) — and why a change is refused ([`KeyError`]).

use serde::Deserialize;

use super::now_ms;
use super::stored::KeySpec;
use crate::config::{
    check_use, is_key_name, parse_time, InvalidField, KeyFields, Settings, KEY_NAME_RULE,
};
use crate::store::StoreError;

/// Why a change to the keys was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A field of the request is missing or wrong.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no key named `{0}`")]
    NotFound(String),
    /// A name or secret is taken, or a config key was to be changed.
    #[error("{0}")]
    Conflict(String),
    #[error("keys cannot be made through the API without the store")]
    NoStore,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KeyError {
    pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        KeyError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// `POST /admin/keys`: a new key, with the fields a `[[keys]]` entry has
/// (but its secret, which the daemon makes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    #[serde(flatten)]
    pub fields: KeyFields,
}

impl From<InvalidField> for KeyError {
    fn from(e: InvalidField) -> Self {
        KeyError::invalid(e.field, e.message)
    }
}

impl NewKey {
    pub(super) fn validate(&self, settings: &Settings) -> Result<KeySpec, KeyError> {
        if !is_key_name(&self.name) {
            return Err(KeyError::invalid(
                "name",
                format!("a key name is {KEY_NAME_RULE}"),
            ));
        }
        let expires_at = self.fields.check(settings)?;
        if expires_at.is_some_and(|at| at <= now_ms()) {
            return Err(KeyError::invalid("expires_at", "is in the past"));
        }
        let fields = self.fields.clone();
        Ok(KeySpec {
            limits: fields.limits,
            weight: fields.weight,
            models: fields.models,
            accounts: fields.accounts,
            agent: fields.agent,
            expires_at,
        })
    }
}

fn parse_expiry(text: &str) -> Result<i64, KeyError> {
    let at = parse_time(text).map_err(|e| KeyError::invalid("expires_at", e))?;
    if at <= now_ms() {
        return Err(KeyError::invalid("expires_at", "is in the past"));
    }
    Ok(at)
}

/// Deserializes a present field, even `null`, as `Some`: tells "set to
/// null" from "absent" (`None` by `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `PATCH /admin/keys/{name}`: the fields to change; absent ones stay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// Each limit given replaces the key's; `null` returns it to the
    /// `[limits]` default.
    #[serde(default)]
    pub limits: Option<LimitsPatch>,
    #[serde(default)]
    pub weight: Option<u32>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub accounts: Option<Vec<String>>,
    #[serde(default)]
    pub agent: Option<bool>,
    /// `null` removes the expiry.
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<String>>,
}

/// Limits to change: a value sets one, `null` unsets it, absent keeps it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(default, deserialize_with = "present")]
    pub max_concurrent: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub requests_per_minute: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub tokens_5h: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub tokens_day: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub tokens_week: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub tokens_month: Option<Option<u64>>,
}

impl Patch {
    pub(super) fn apply(self, mut spec: KeySpec, settings: &Settings) -> Result<KeySpec, KeyError> {
        if let Some(l) = self.limits {
            let set = |slot: &mut Option<u64>, value: Option<Option<u64>>| {
                if let Some(value) = value {
                    *slot = value;
                }
            };
            set(&mut spec.limits.max_concurrent, l.max_concurrent);
            set(&mut spec.limits.requests_per_minute, l.requests_per_minute);
            set(&mut spec.limits.tokens_5h, l.tokens_5h);
            set(&mut spec.limits.tokens_day, l.tokens_day);
            set(&mut spec.limits.tokens_week, l.tokens_week);
            set(&mut spec.limits.tokens_month, l.tokens_month);
        }
        if let Some(weight) = self.weight {
            spec.weight = weight;
        }
        if let Some(models) = self.models {
            spec.models = models;
        }
        if let Some(accounts) = self.accounts {
            spec.accounts = accounts;
        }
        if let Some(agent) = self.agent {
            spec.agent = agent;
        }
        if let Some(expires_at) = self.expires_at {
            spec.expires_at = expires_at.as_deref().map(parse_expiry).transpose()?;
        }
        check_use(spec.weight, &spec.models, &spec.accounts, settings)?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The admin API's body is a `[[keys]]` entry's fields: the same names
    /// and defaults, unknown fields refused, and the same checks (the
    /// configuration's side is `config::keys`'
    /// `unknown_fields_and_bad_values_are_named`).
    #[test]
    fn a_new_key_has_the_config_keys_fields_and_checks() {
        let settings = Settings::from_toml("").unwrap();
        let body = json!({"name": "a", "models": ["sonnet"], "limits": {"tokens_day": 5}});
        let new: NewKey = serde_json::from_value(body).unwrap();
        assert_eq!(
            new.fields,
            KeyFields {
                models: vec!["sonnet".into()],
                ..new.fields.clone()
            }
        );
        assert_eq!(new.fields.weight, 1, "the configuration's default");
        assert_eq!(new.fields.limits.tokens_day, Some(5));
        assert_eq!(new.validate(&settings).unwrap().models, ["sonnet"]);
        let unknown = serde_json::from_value::<NewKey>(json!({"name": "a", "wieght": 2}));
        assert!(unknown.unwrap_err().to_string().contains("wieght"));
        for (body, wrong) in [
            (json!({"name": "a", "weight": 0}), "weight"),
            (json!({"name": "a", "models": [" "]}), "models"),
            (json!({"name": "a", "accounts": ["x"]}), "accounts"),
            (json!({"name": "a", "expires_at": "soon"}), "expires_at"),
            (
                json!({"name": "a", "expires_at": "2001-01-01T00:00:00Z"}),
                "expires_at",
            ),
            (json!({"name": "a b"}), "name"),
        ] {
            let new: NewKey = serde_json::from_value(body.clone()).unwrap();
            match new.validate(&settings) {
                Err(KeyError::Invalid { field, .. }) => assert_eq!(field, wrong, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
