//! The ledger's tables: one row per request (`ledger_requests`) and hourly
//! rollups per key × model × account (`ledger_hourly`), written together in
//! one transaction so that they always agree.

use std::collections::HashMap;

use rusqlite::{params, Connection, Transaction};

use super::record::Record;
use super::windows::{Tally, Windows, DAY_MS, HORIZON_MS, HOUR_MS, MINUTE_MS};
use crate::store::Schema;

/// The ledger's tables in the store.
pub struct LedgerSchema;

impl Schema for LedgerSchema {
    const NAME: &'static str = "ledger";
    const MIGRATIONS: &'static [&'static str] = &[
        "
        CREATE TABLE ledger_requests (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            request_id TEXT NOT NULL,
            key TEXT NOT NULL,
            method TEXT NOT NULL,
            route TEXT NOT NULL,
            dialect TEXT,
            model_asked TEXT,
            model_served TEXT,
            account TEXT,
            worker INTEGER,
            node TEXT NOT NULL,
            status INTEGER NOT NULL,
            error_type TEXT,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            cache_creation_tokens INTEGER NOT NULL,
            queue_ms INTEGER,
            ttft_ms INTEGER,
            duration_ms INTEGER NOT NULL,
            stream INTEGER NOT NULL,
            batch_id TEXT,
            client_addr TEXT,
            user_agent TEXT,
            content TEXT
        );
        CREATE INDEX ledger_requests_at ON ledger_requests (at_ms);
        CREATE INDEX ledger_requests_key ON ledger_requests (key, id);
        CREATE TABLE ledger_hourly (
            hour_ms INTEGER NOT NULL,
            key TEXT NOT NULL,
            model TEXT NOT NULL,
            account TEXT NOT NULL,
            requests INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            cache_creation_tokens INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            PRIMARY KEY (hour_ms, key, model, account)
        ) WITHOUT ROWID;
    ",
        // Daily rollups: a month's report reads thousands of rows, not the
        // tens of thousands of its hours. Filled from the hourly ones.
        "
        CREATE TABLE ledger_daily (
            day_ms INTEGER NOT NULL,
            key TEXT NOT NULL,
            model TEXT NOT NULL,
            account TEXT NOT NULL,
            requests INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            cache_creation_tokens INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            PRIMARY KEY (day_ms, key, model, account)
        ) WITHOUT ROWID;
        INSERT INTO ledger_daily
            SELECT hour_ms / 86400000 * 86400000, key, model, account, sum(requests),
                sum(errors), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
                sum(cache_creation_tokens), sum(duration_ms)
            FROM ledger_hourly GROUP BY 1, 2, 3, 4;
    ",
        // Usage by account and hour over a month reads every key × model
        // row of every hour; in (hour, account) order with the sums beside
        // it, the report groups as it scans instead of sorting them all
        // (83 -> 27 ms of SQLite CPU for a month of 20 keys × 3 models).
        "
        CREATE INDEX ledger_hourly_account ON ledger_hourly (hour_ms, account, requests,
            errors, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
            duration_ms);
    ",
    ];
}

/// The rollup a row counts in: its hour, key, model (served, else asked,
/// else empty) and account (empty for none).
pub type RollupKey = (i64, String, String, String);

/// What a rollup adds up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rollup {
    pub tally: Tally,
    pub errors: u64,
    pub duration_ms: u64,
}

impl Rollup {
    pub fn of(record: &Record) -> Self {
        Self {
            tally: Tally::one(&record.usage),
            errors: u64::from(record.is_error()),
            duration_ms: record.duration_ms,
        }
    }

    pub fn add(&mut self, o: &Rollup) {
        self.tally += o.tally;
        self.errors += o.errors;
        self.duration_ms += o.duration_ms;
    }
}

pub fn rollup_key(record: &Record) -> RollupKey {
    let model = record
        .model_served
        .as_deref()
        .or(record.model_asked.as_deref())
        .unwrap_or_default();
    (
        record.at_ms.div_euclid(HOUR_MS) * HOUR_MS,
        record.key.clone(),
        model.to_string(),
        record.account.clone().unwrap_or_default(),
    )
}

/// Writes `records` and their rollups in one transaction.
pub fn write(conn: &mut Connection, records: &[Record]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    insert_rows(&tx, records)?;
    let mut hourly: HashMap<RollupKey, Rollup> = HashMap::new();
    for record in records {
        hourly
            .entry(rollup_key(record))
            .or_default()
            .add(&Rollup::of(record));
    }
    let mut daily: HashMap<RollupKey, Rollup> = HashMap::new();
    for ((hour, key, model, account), rollup) in &hourly {
        let day = hour.div_euclid(DAY_MS) * DAY_MS;
        daily
            .entry((day, key.clone(), model.clone(), account.clone()))
            .or_default()
            .add(rollup);
    }
    add_rollups(&tx, "ledger_hourly", "hour_ms", &hourly)?;
    add_rollups(&tx, "ledger_daily", "day_ms", &daily)?;
    tx.commit()
}

fn insert_rows(tx: &Transaction, records: &[Record]) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO ledger_requests (at_ms, request_id, key, method, route, dialect,
             model_asked, model_served, account, worker, node, status, error_type,
             input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
             queue_ms, ttft_ms, duration_ms, stream, batch_id, client_addr, user_agent, content)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
             ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    )?;
    for r in records {
        insert.execute(params![
            r.at_ms,
            r.request_id,
            r.key,
            r.method,
            r.route,
            r.dialect,
            r.model_asked,
            r.model_served,
            r.account,
            r.worker.map(|w| w as i64),
            r.node,
            r.status,
            r.error_type,
            r.usage.input_tokens as i64,
            r.usage.output_tokens as i64,
            r.usage.cache_read_input_tokens as i64,
            r.usage.cache_creation_input_tokens as i64,
            r.queue_ms.map(|v| v as i64),
            r.ttft_ms.map(|v| v as i64),
            r.duration_ms as i64,
            r.stream,
            r.batch_id,
            r.client_addr,
            r.user_agent,
            r.content,
        ])?;
    }
    Ok(())
}

/// Adds `rollups` to the rollup table `table` (hourly or daily, whose
/// period column is `period`).
fn add_rollups(
    tx: &Transaction,
    table: &str,
    period: &str,
    rollups: &HashMap<RollupKey, Rollup>,
) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT INTO {table} ({period}, key, model, account, requests, errors,
             input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT ({period}, key, model, account) DO UPDATE SET
             requests = requests + excluded.requests,
             errors = errors + excluded.errors,
             input_tokens = input_tokens + excluded.input_tokens,
             output_tokens = output_tokens + excluded.output_tokens,
             cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
             cache_creation_tokens = cache_creation_tokens + excluded.cache_creation_tokens,
             duration_ms = duration_ms + excluded.duration_ms"
    ))?;
    for ((period, key, model, account), r) in rollups {
        let t = &r.tally;
        upsert.execute(params![
            period,
            key,
            model,
            account,
            t.requests as i64,
            r.errors as i64,
            t.input_tokens as i64,
            t.output_tokens as i64,
            t.cache_read_input_tokens as i64,
            t.cache_creation_input_tokens as i64,
            r.duration_ms as i64,
        ])?;
    }
    Ok(())
}

/// Deletes rows older than `rows_before_ms` and rollups of hours before
/// `rollups_before_ms` (`None`: kept). Returns the rows deleted.
pub fn prune(
    conn: &Connection,
    rows_before_ms: Option<i64>,
    rollups_before_ms: Option<i64>,
) -> rusqlite::Result<usize> {
    let mut deleted = 0;
    if let Some(before) = rows_before_ms {
        deleted = conn.execute("DELETE FROM ledger_requests WHERE at_ms < ?1", [before])?;
    }
    if let Some(before) = rollups_before_ms {
        conn.execute("DELETE FROM ledger_hourly WHERE hour_ms < ?1", [before])?;
        conn.execute("DELETE FROM ledger_daily WHERE day_ms < ?1", [before])?;
    }
    Ok(deleted)
}

/// Fills `windows` with the usage of the last [`HORIZON_MS`] before
/// `now_ms`: by the minute from rows, and by the hour from rollups for the
/// hours older than the oldest rows kept (`rows_kept_ms`: the rows'
/// retention, if any).
pub fn load_windows(
    conn: &Connection,
    windows: &mut Windows,
    now_ms: i64,
    rows_kept_ms: Option<i64>,
) -> rusqlite::Result<()> {
    let horizon = now_ms - HORIZON_MS;
    // Hours from rollups end where the rows (all of an hour's rows) begin.
    let rows_from = match rows_kept_ms {
        Some(kept) if now_ms - kept > horizon => {
            (now_ms - kept).div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS
        }
        _ => horizon,
    };
    let mut rows = conn.prepare(
        "SELECT key, (at_ms + duration_ms) / ?3 * ?3 AS minute, count(*), sum(input_tokens),
             sum(output_tokens), sum(cache_read_tokens), sum(cache_creation_tokens)
         FROM ledger_requests WHERE at_ms >= ?1 AND at_ms + duration_ms >= ?2
         GROUP BY key, minute",
    )?;
    let tally = |row: &rusqlite::Row, first: usize| -> rusqlite::Result<Tally> {
        Ok(Tally {
            requests: row.get::<_, i64>(first)? as u64,
            input_tokens: row.get::<_, i64>(first + 1)? as u64,
            output_tokens: row.get::<_, i64>(first + 2)? as u64,
            cache_read_input_tokens: row.get::<_, i64>(first + 3)? as u64,
            cache_creation_input_tokens: row.get::<_, i64>(first + 4)? as u64,
        })
    };
    let mut found = rows.query(params![rows_from, horizon, MINUTE_MS])?;
    while let Some(row) = found.next()? {
        windows.load(&row.get::<_, String>(0)?, row.get(1)?, tally(row, 2)?);
    }
    if rows_from > horizon {
        let mut hours = conn.prepare(
            "SELECT key, hour_ms, sum(requests), sum(input_tokens), sum(output_tokens),
                 sum(cache_read_tokens), sum(cache_creation_tokens)
             FROM ledger_hourly WHERE hour_ms >= ?1 AND hour_ms < ?2 GROUP BY key, hour_ms",
        )?;
        let mut found = hours.query(params![horizon.div_euclid(HOUR_MS) * HOUR_MS, rows_from])?;
        while let Some(row) = found.next()? {
            windows.load(&row.get::<_, String>(0)?, row.get(1)?, tally(row, 2)?);
        }
    }
    Ok(())
}
