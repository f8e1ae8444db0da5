//! Reading the ledger back: usage grouped over a period (the rollups for
//! whole hours, rows for the hours the period only partly covers), and
//! rows newest first with cursor paging.

use std::collections::BTreeMap;

use rusqlite::types::Value as Sql;
use rusqlite::Connection;
use serde::Serialize;

use super::record::Record;
use super::schema::Rollup;
use super::windows::{Tally, DAY_MS, HOUR_MS};
use crate::job::Usage;

/// The period usage is grouped by, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    fn ms(self) -> i64 {
        match self {
            Period::Hour => HOUR_MS,
            Period::Day => DAY_MS,
        }
    }
}

/// What usage is grouped by: any of key, model, account, and an hour or a
/// day (UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupBy {
    pub key: bool,
    pub model: bool,
    pub account: bool,
    pub period: Option<Period>,
}

impl GroupBy {
    /// Parses `key,model,account,hour|day` (any subset, in any order).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by = GroupBy::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let period = |by: &mut GroupBy, p| match by.period {
                Some(_) => Err("group_by takes one of hour and day".to_string()),
                None => {
                    by.period = Some(p);
                    Ok(())
                }
            };
            match part {
                "key" => by.key = true,
                "model" => by.model = true,
                "account" => by.account = true,
                "hour" => period(&mut by, Period::Hour)?,
                "day" => period(&mut by, Period::Day)?,
                other => {
                    return Err(format!(
                        "group_by: unknown `{other}`; expected key, model, account, hour or day"
                    ))
                }
            }
        }
        Ok(by)
    }
}

/// A usage report's question.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageQuery {
    /// Requests that arrived in `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    pub group_by: GroupBy,
    /// Only this key's usage.
    pub key: Option<String>,
}

/// One group of a usage report; the fields not grouped by are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Start of the hour or day, Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_start_ms: Option<i64>,
    #[serde(flatten)]
    pub tally: Tally,
    pub errors: u64,
    pub duration_ms: u64,
}

type GroupKey = (Option<i64>, Option<String>, Option<String>, Option<String>);

/// Usage in `q`'s period, grouped as asked, in the groups' order (period,
/// key, model, account): whole days from the daily rollups (unless grouped
/// by the hour), whole hours from the hourly ones, the rest from rows.
pub fn usage(conn: &Connection, q: &UsageQuery) -> rusqlite::Result<Vec<UsageGroup>> {
    let mut groups: BTreeMap<GroupKey, Rollup> = BTreeMap::new();
    let first_day = ceil(q.from_ms, DAY_MS);
    let last_day = floor(q.to_ms, DAY_MS);
    // Whole days from the daily rollups, unless grouped by the hour.
    if first_day < last_day && q.group_by.period != Some(Period::Hour) {
        add_groups(conn, q, &DAILY, first_day, last_day, &mut groups)?;
        add_hours(conn, q, q.from_ms, first_day, &mut groups)?;
        add_hours(conn, q, last_day, q.to_ms, &mut groups)?;
    } else {
        add_hours(conn, q, q.from_ms, q.to_ms, &mut groups)?;
    }
    Ok(groups
        .into_iter()
        .map(|((period, key, model, account), r)| UsageGroup {
            key,
            model,
            account,
            period_start_ms: period,
            tally: r.tally,
            errors: r.errors,
            duration_ms: r.duration_ms,
        })
        .collect())
}

/// Usage of `[from, to)` into `groups`: whole hours from the hourly
/// rollups, the partial hours at either end from the rows.
fn add_hours(
    conn: &Connection,
    q: &UsageQuery,
    from: i64,
    to: i64,
    groups: &mut BTreeMap<GroupKey, Rollup>,
) -> rusqlite::Result<()> {
    if from >= to {
        return Ok(());
    }
    let first_hour = ceil(from, HOUR_MS);
    let last_hour = floor(to, HOUR_MS);
    if first_hour < last_hour {
        add_groups(conn, q, &HOURLY, first_hour, last_hour, groups)?;
        add_groups(conn, q, &ROWS, from, first_hour, groups)?;
        add_groups(conn, q, &ROWS, last_hour, to, groups)
    } else {
        add_groups(conn, q, &ROWS, from, to, groups)
    }
}

/// How a table's columns read as a rollup.
struct Source {
    table: &'static str,
    time: &'static str,
    /// What `time` is rounded to (the rollups' hour or day), if anything.
    unit_ms: Option<i64>,
    model: &'static str,
    account: &'static str,
    sums: &'static str,
}

/// What the rollup tables (hourly and daily) add up, in the order a report reads them.
const ROLLUP_SUMS: &str = "sum(requests), sum(errors), sum(input_tokens), sum(output_tokens),
           sum(cache_read_tokens), sum(cache_creation_tokens), sum(duration_ms)";

const DAILY: Source = Source {
    table: "ledger_daily",
    time: "day_ms",
    unit_ms: Some(DAY_MS),
    model: "model",
    account: "account",
    sums: ROLLUP_SUMS,
};

const HOURLY: Source = Source {
    table: "ledger_hourly",
    time: "hour_ms",
    unit_ms: Some(HOUR_MS),
    model: "model",
    account: "account",
    sums: ROLLUP_SUMS,
};

const ROWS: Source = Source {
    table: "ledger_requests",
    time: "at_ms",
    unit_ms: None,
    model: "coalesce(model_served, model_asked, '')",
    account: "coalesce(account, '')",
    sums: "count(*), sum(status >= 400), sum(input_tokens), sum(output_tokens),
           sum(cache_read_tokens), sum(cache_creation_tokens), sum(duration_ms)",
};

fn add_groups(
    conn: &Connection,
    q: &UsageQuery,
    source: &Source,
    from: i64,
    to: i64,
    groups: &mut BTreeMap<GroupKey, Rollup>,
) -> rusqlite::Result<()> {
    if from >= to {
        return Ok(());
    }
    let sql = group_sql(q.group_by, source);
    let mut stmt = conn.prepare_cached(&sql)?;
    let key = q.key.clone().map_or(Sql::Null, Sql::Text);
    let mut rows = stmt.query(rusqlite::params![from, to, key])?;
    while let Some(row) = rows.next()? {
        let n = |i: usize| -> rusqlite::Result<u64> {
            Ok(row.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
        };
        let rollup = Rollup {
            tally: Tally {
                requests: n(4)?,
                input_tokens: n(6)?,
                output_tokens: n(7)?,
                cache_read_input_tokens: n(8)?,
                cache_creation_input_tokens: n(9)?,
            },
            errors: n(5)?,
            duration_ms: n(10)?,
        };
        let group = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        groups.entry(group).or_default().add(&rollup);
    }
    Ok(())
}

/// The query summing `source`'s rows in `[?1, ?2)` (of key `?3`, if not
/// null) into `by`'s groups, as (period, key, model, account, sums).
fn group_sql(by: GroupBy, source: &Source) -> String {
    let period = match by.period {
        // Already rounded to the period: the bare column, so that SQLite
        // can group in the primary key's (or an index's) order, unsorted.
        Some(p) if source.unit_ms == Some(p.ms()) => source.time.to_string(),
        Some(p) => format!("{} / {ms} * {ms}", source.time, ms = p.ms()),
        None => "NULL".into(),
    };
    let pick = |on: bool, column: &str| {
        if on {
            column.to_string()
        } else {
            "NULL".into()
        }
    };
    // Group by what is asked only: a constant among the terms keeps SQLite
    // from grouping in index order, and it sorts every row instead.
    let terms: Vec<&str> = [
        (by.period.is_some(), "1"),
        (by.key, "2"),
        (by.model, "3"),
        (by.account, "4"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, term)| *term)
    .collect();
    // With no terms, the old constant grouping still yields no row at all
    // (rather than one of zeros) when nothing was used.
    let group_by = if terms.is_empty() {
        "1, 2, 3, 4".to_string()
    } else {
        terms.join(", ")
    };
    format!(
        "SELECT {period}, {key}, {model}, {account}, {sums} FROM {table}
         WHERE {time} >= ?1 AND {time} < ?2 AND (?3 IS NULL OR key = ?3)
         GROUP BY {group_by}",
        key = pick(by.key, "key"),
        model = pick(by.model, source.model),
        account = pick(by.account, source.account),
        sums = source.sums,
        table = source.table,
        time = source.time,
    )
}

/// The hourly rollups' query for `by` (for tests of its plan).
#[cfg(test)]
pub(super) fn hourly_sql(by: GroupBy) -> String {
    group_sql(by, &HOURLY)
}

/// Which statuses a request listing keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// This status.
    Exact(u16),
    /// `4xx`: 400–499, and so on.
    Class(u16),
    /// `error`: 400 and above.
    Errors,
}

impl StatusFilter {
    /// Parses `200`, `4xx` or `error`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "error" {
            return Ok(Self::Errors);
        }
        if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            if let Ok(c @ 1..=5) = class.parse::<u16>() {
                return Ok(Self::Class(c));
            }
        }
        match text.parse::<u16>() {
            Ok(code @ 100..=599) => Ok(Self::Exact(code)),
            _ => Err(format!(
                "status: `{text}` is not a status (200), a class (4xx) nor `error`"
            )),
        }
    }

    fn range(self) -> (u16, u16) {
        match self {
            Self::Exact(code) => (code, code),
            Self::Class(c) => (c * 100, c * 100 + 99),
            Self::Errors => (400, 999),
        }
    }
}

/// A request listing's question: newest first, `limit` rows older than the
/// cursor (`before_id`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestsQuery {
    pub key: Option<String>,
    pub status: Option<StatusFilter>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: usize,
    pub before_id: Option<i64>,
}

/// A row as listed, with the id the cursor is made of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    pub id: i64,
    #[serde(flatten)]
    pub record: Record,
}

/// Up to `q.limit` rows, newest first, and whether more follow.
pub fn requests(conn: &Connection, q: &RequestsQuery) -> rusqlite::Result<(Vec<Listed>, bool)> {
    let (lo, hi) = q.status.map_or((0, 999), StatusFilter::range);
    let mut stmt = conn.prepare_cached(
        "SELECT id, at_ms, request_id, key, method, route, dialect, model_asked, model_served,
             account, worker, node, status, error_type, input_tokens, output_tokens,
             cache_read_tokens, cache_creation_tokens, queue_ms, ttft_ms, duration_ms, stream,
             batch_id, client_addr, user_agent, content
         FROM ledger_requests
         WHERE (?1 IS NULL OR key = ?1) AND status BETWEEN ?2 AND ?3
             AND (?4 IS NULL OR at_ms >= ?4) AND (?5 IS NULL OR at_ms < ?5)
             AND (?6 IS NULL OR id < ?6)
         ORDER BY id DESC LIMIT ?7",
    )?;
    let key = q.key.clone().map_or(Sql::Null, Sql::Text);
    let mut rows = stmt.query(rusqlite::params![
        key,
        lo,
        hi,
        q.from_ms,
        q.to_ms,
        q.before_id,
        (q.limit + 1) as i64
    ])?;
    let mut listed = Vec::new();
    while let Some(row) = rows.next()? {
        let n = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
        let opt = |i: usize| -> rusqlite::Result<Option<u64>> {
            Ok(row.get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
        };
        listed.push(Listed {
            id: row.get(0)?,
            record: Record {
                at_ms: row.get(1)?,
                request_id: row.get(2)?,
                key: row.get(3)?,
                method: row.get(4)?,
                route: row.get(5)?,
                dialect: row.get(6)?,
                model_asked: row.get(7)?,
                model_served: row.get(8)?,
                account: row.get(9)?,
                worker: opt(10)?,
                node: row.get(11)?,
                status: row.get(12)?,
                error_type: row.get(13)?,
                usage: Usage {
                    input_tokens: n(14)?,
                    output_tokens: n(15)?,
                    cache_read_input_tokens: n(16)?,
                    cache_creation_input_tokens: n(17)?,
                },
                queue_ms: opt(18)?,
                ttft_ms: opt(19)?,
                duration_ms: n(20)?,
                stream: row.get(21)?,
                batch_id: row.get(22)?,
                client_addr: row.get(23)?,
                user_agent: row.get(24)?,
                content: row.get(25)?,
            },
        });
    }
    let more = listed.len() > q.limit;
    listed.truncate(q.limit);
    Ok((listed, more))
}

fn floor(ms: i64, unit: i64) -> i64 {
    ms.div_euclid(unit) * unit
}

fn ceil(ms: i64, unit: i64) -> i64 {
    floor(ms + unit - 1, unit)
}
