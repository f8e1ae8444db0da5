//! Keys made through the admin API, in the durable store: the digest of the
//! secret (never the secret), the shown prefix, when it was made, and what
//! it may use as JSON (so new settings need no migration). Also when each
//! key (config or API) was last used, written at most once a minute a key.
//! Times are unix milliseconds.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::store::Schema;

/// The key tables, as a schema of the shared store.
pub struct KeySchema;

impl Schema for KeySchema {
    const NAME: &'static str = "keys";
    const MIGRATIONS: &'static [&'static str] = &["
        CREATE TABLE api_keys (
            name TEXT PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            spec TEXT NOT NULL
        );
        CREATE TABLE key_last_used (
            name TEXT PRIMARY KEY,
            at INTEGER NOT NULL
        );
    "];
}

/// What a key may use and how much: the part the admin API can change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeySpec {
    /// Unset limits fall back to `[limits]`; 0 is no limit.
    pub limits: Limits,
    pub weight: u32,
    pub models: Vec<String>,
    pub accounts: Vec<String>,
    pub agent: bool,
    /// Unix milliseconds.
    pub expires_at: Option<i64>,
}

/// A key made through the admin API, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub digest: String,
    /// The first characters of the secret (`cpk_1a2b3c4d`), to tell keys
    /// apart in lists.
    pub prefix: String,
    pub created_at: i64,
    pub spec: KeySpec,
}

fn spec_json(spec: &KeySpec) -> String {
    serde_json::to_string(spec).unwrap_or_else(|_| "{}".into())
}

/// Every stored key, by name.
pub fn all(c: &mut Connection) -> rusqlite::Result<Vec<ApiKey>> {
    let mut stmt =
        c.prepare("SELECT name, digest, prefix, created_at, spec FROM api_keys ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        let spec: String = r.get(4)?;
        Ok(ApiKey {
            name: r.get(0)?,
            digest: r.get(1)?,
            prefix: r.get(2)?,
            created_at: r.get(3)?,
            // A spec this daemon cannot read keeps the key usable with
            // defaults rather than locking its owner out.
            spec: serde_json::from_str(&spec).unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// Stores a new key; false if its name or digest is taken.
pub fn insert(c: &mut Connection, key: &ApiKey) -> rusqlite::Result<bool> {
    let inserted = c.execute(
        "INSERT INTO api_keys (name, digest, prefix, created_at, spec)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        params![
            key.name,
            key.digest,
            key.prefix,
            key.created_at,
            spec_json(&key.spec)
        ],
    )?;
    Ok(inserted == 1)
}

/// Replaces the spec of key `name`; false if there is none.
pub fn update(c: &mut Connection, name: &str, spec: &KeySpec) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE api_keys SET spec = ?2 WHERE name = ?1",
        params![name, spec_json(spec)],
    )?;
    Ok(n == 1)
}

/// Deletes key `name`; false if there is none.
pub fn delete(c: &mut Connection, name: &str) -> rusqlite::Result<bool> {
    let tx = c.transaction()?;
    let n = tx.execute("DELETE FROM api_keys WHERE name = ?1", [name])?;
    tx.execute("DELETE FROM key_last_used WHERE name = ?1", [name])?;
    tx.commit()?;
    Ok(n == 1)
}

/// Notes that key `name` was used at `at`.
pub fn touch(c: &mut Connection, name: &str, at: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO key_last_used (name, at) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET at = max(at, excluded.at)",
        params![name, at],
    )?;
    Ok(())
}

/// When each key was last used, as far as the store knows.
pub fn last_used(c: &mut Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = c.prepare("SELECT name, at FROM key_last_used")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The stored key `name`, if any.
pub fn get(c: &mut Connection, name: &str) -> rusqlite::Result<Option<ApiKey>> {
    Ok(all_where(c, name)?.into_iter().next())
}

fn all_where(c: &mut Connection, name: &str) -> rusqlite::Result<Vec<ApiKey>> {
    c.query_row(
        "SELECT name, digest, prefix, created_at, spec FROM api_keys WHERE name = ?1",
        [name],
        |r| {
            let spec: String = r.get(4)?;
            Ok(ApiKey {
                name: r.get(0)?,
                digest: r.get(1)?,
                prefix: r.get(2)?,
                created_at: r.get(3)?,
                spec: serde_json::from_str(&spec).unwrap_or_default(),
            })
        },
    )
    .optional()
    .map(|k| k.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn key(name: &str, digest: &str) -> ApiKey {
        ApiKey {
            name: name.into(),
            digest: digest.into(),
            prefix: "cpk_00000000".into(),
            created_at: 1,
            spec: KeySpec {
                weight: 2,
                models: vec!["sonnet".into()],
                ..KeySpec::default()
            },
        }
    }

    #[test]
    fn keys_are_stored_changed_and_deleted() {
        let store = Store::in_memory().unwrap();
        store.install::<KeySchema>().unwrap();
        store
            .with(|c| {
                assert!(insert(c, &key("a", "d1"))?);
                assert!(!insert(c, &key("a", "d2"))?, "name taken");
                assert!(!insert(c, &key("b", "d1"))?, "digest taken");
                let mut spec = key("a", "d1").spec;
                spec.limits.max_concurrent = Some(3);
                assert!(update(c, "a", &spec)?);
                assert!(!update(c, "zz", &spec)?);
                assert_eq!(get(c, "a")?.unwrap().spec.limits.max_concurrent, Some(3));
                touch(c, "a", 10)?;
                touch(c, "a", 5)?;
                assert_eq!(last_used(c)?, [("a".to_string(), 10)]);
                assert_eq!(all(c)?.len(), 1);
                assert!(delete(c, "a")?);
                assert!(!delete(c, "a")?);
                assert!(all(c)?.is_empty() && last_used(c)?.is_empty());
                Ok(())
            })
            .unwrap();
    }
}
