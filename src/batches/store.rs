//! Message batches in the durable store: their tables, and every change a
//! batch goes through, each one transaction. Times are Unix milliseconds,
//! passed in by the caller so that tests choose the clock.
//!
//! The runner's side (handing out queued requests, recording outcomes,
//! recovery, expiry, retention) is in [`super::queue`].
//!
//! A request is `queued`, then `running` once a worker has it, then one of
//! `succeeded`, `errored`, `canceled` or `expired`. The batch row keeps the
//! counts of finished requests, so reading a batch never scans its requests,
//! and its `ended_at` is set in the transaction that finishes its last one.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use crate::store::Schema;

/// The batch tables, as a schema of the shared store.
pub struct BatchSchema;

impl Schema for BatchSchema {
    const NAME: &'static str = "batches";
    const MIGRATIONS: &'static [&'static str] = &["
        CREATE TABLE batches (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            owner TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            cancel_initiated_at INTEGER,
            ended_at INTEGER,
            archived_at INTEGER,
            total INTEGER NOT NULL,
            succeeded INTEGER NOT NULL DEFAULT 0,
            errored INTEGER NOT NULL DEFAULT 0,
            canceled INTEGER NOT NULL DEFAULT 0,
            expired INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX batches_by_owner ON batches (owner, seq);
        CREATE TABLE batch_requests (
            batch_seq INTEGER NOT NULL REFERENCES batches (seq) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            custom_id TEXT NOT NULL,
            params TEXT,
            state TEXT NOT NULL DEFAULT 'queued',
            attempts INTEGER NOT NULL DEFAULT 0,
            result TEXT,
            PRIMARY KEY (batch_seq, idx)
        );
        CREATE INDEX batch_requests_queued ON batch_requests (batch_seq, idx)
            WHERE state = 'queued';
        CREATE INDEX batch_requests_running ON batch_requests (state)
            WHERE state = 'running';
    "];
}

/// A batch as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Insertion order: lists run newest first by it.
    pub seq: i64,
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub cancel_initiated_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// When its results were removed (retention).
    pub archived_at: Option<i64>,
    pub counts: Counts,
}

/// Requests of a batch by outcome; those not counted are still processing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: i64,
    pub succeeded: i64,
    pub errored: i64,
    pub canceled: i64,
    pub expired: i64,
}

impl Counts {
    pub fn processing(&self) -> i64 {
        self.total - self.succeeded - self.errored - self.canceled - self.expired
    }
}

/// A queued request handed to the runner.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub batch_seq: i64,
    /// The batch's id (`msgbatch_…`), for logs and the usage ledger.
    pub batch_id: String,
    /// Whose batch it is: the digest of the key that created it (its
    /// scope), which the runner resolves to the key's [`crate::keys::Caller`].
    pub owner: String,
    pub idx: i64,
    pub custom_id: String,
    /// The request's Messages parameters, as JSON text.
    pub params: String,
}

/// How a request that ran ended: the result object, as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(String),
    Errored(String),
}

/// One line of a batch's results.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub idx: i64,
    pub custom_id: String,
    pub state: String,
    /// The result object of a succeeded or errored request.
    pub result: Option<String>,
}

/// What deleting a batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Done,
    NotFound,
    /// Only ended batches may be deleted.
    NotEnded,
}

const BATCH_COLUMNS: &str = "seq, id, created_at, expires_at, cancel_initiated_at, ended_at, \
     archived_at, total, succeeded, errored, canceled, expired";

fn batch_from(row: &Row<'_>) -> rusqlite::Result<Batch> {
    Ok(Batch {
        seq: row.get(0)?,
        id: row.get(1)?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
        cancel_initiated_at: row.get(4)?,
        ended_at: row.get(5)?,
        archived_at: row.get(6)?,
        counts: Counts {
            total: row.get(7)?,
            succeeded: row.get(8)?,
            errored: row.get(9)?,
            canceled: row.get(10)?,
            expired: row.get(11)?,
        },
    })
}

/// Stores a new batch and its requests (`custom_id`, params JSON), queued.
pub fn create(
    conn: &mut Connection,
    owner: &str,
    id: &str,
    now: i64,
    expires_at: i64,
    requests: &[(String, String)],
) -> rusqlite::Result<Batch> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO batches (id, owner, created_at, expires_at, total) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, owner, now, expires_at, requests.len() as i64],
    )?;
    let seq = tx.last_insert_rowid();
    {
        let mut insert = tx.prepare(
            "INSERT INTO batch_requests (batch_seq, idx, custom_id, params) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (idx, (custom_id, params)) in requests.iter().enumerate() {
            insert.execute(params![seq, idx as i64, custom_id, params])?;
        }
    }
    let batch = by_seq(&tx, seq)?;
    tx.commit()?;
    Ok(batch)
}

fn by_seq(conn: &Connection, seq: i64) -> rusqlite::Result<Batch> {
    conn.query_row(
        &format!("SELECT {BATCH_COLUMNS} FROM batches WHERE seq = ?1"),
        [seq],
        batch_from,
    )
}

/// The batch `id` of `owner`.
pub fn get(conn: &Connection, owner: &str, id: &str) -> rusqlite::Result<Option<Batch>> {
    conn.query_row(
        &format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?1 AND owner = ?2"),
        params![id, owner],
        batch_from,
    )
    .optional()
}

/// The newest `limit` batches of every owner, with their owners: for the
/// admin API (`/admin/batches`), which sees all of them.
pub fn list_all(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<(String, Batch)>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {BATCH_COLUMNS}, owner FROM batches ORDER BY seq DESC LIMIT ?1"
    ))?;
    let rows = statement.query_map([limit as i64], |row| Ok((row.get(12)?, batch_from(row)?)))?;
    rows.collect()
}

/// The owner of batch `id`, whoever it is (the admin API acts for any).
pub fn owner_of_batch(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT owner FROM batches WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()
}

/// Which page of a list: newest first, `limit` long, after (older than) or
/// before (newer than) a batch of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor<'a> {
    Start,
    After(&'a str),
    Before(&'a str),
}

/// A page of `owner`'s batches, newest first, and whether more lie beyond
/// it in the direction of the cursor. `None` if the cursor names no batch
/// of the owner.
pub fn list(
    conn: &Connection,
    owner: &str,
    cursor: Cursor<'_>,
    limit: usize,
) -> rusqlite::Result<Option<(Vec<Batch>, bool)>> {
    let seq_of = |id: &str| {
        conn.query_row(
            "SELECT seq FROM batches WHERE id = ?1 AND owner = ?2",
            params![id, owner],
            |r| r.get::<_, i64>(0),
        )
        .optional()
    };
    let (condition, order, pivot) = match cursor {
        Cursor::Start => ("seq < ?2", "DESC", i64::MAX),
        Cursor::After(id) => match seq_of(id)? {
            Some(seq) => ("seq < ?2", "DESC", seq),
            None => return Ok(None),
        },
        Cursor::Before(id) => match seq_of(id)? {
            Some(seq) => ("seq > ?2", "ASC", seq),
            None => return Ok(None),
        },
    };
    let mut statement = conn.prepare(&format!(
        "SELECT {BATCH_COLUMNS} FROM batches WHERE owner = ?1 AND {condition} \
         ORDER BY seq {order} LIMIT ?3"
    ))?;
    let mut batches = statement
        .query_map(params![owner, pivot, limit as i64 + 1], batch_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = batches.len() > limit;
    batches.truncate(limit);
    if order == "ASC" {
        batches.reverse();
    }
    Ok(Some((batches, has_more)))
}

/// Ends the batch `seq` if none of its requests is left to process.
pub(super) fn end_if_done(tx: &Transaction<'_>, seq: i64, now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE batches SET ended_at = ?2 WHERE seq = ?1 AND ended_at IS NULL \
         AND succeeded + errored + canceled + expired = total",
        params![seq, now],
    )?;
    Ok(())
}

/// Moves `seq`'s requests in `from` to the final state `to` (`canceled`
/// or `expired`, also the name of its count column); ends the batch if that
/// finished it.
pub(super) fn finish_all(
    tx: &Transaction<'_>,
    seq: i64,
    from: &str,
    to: &str,
    now: i64,
) -> rusqlite::Result<usize> {
    let moved = tx.execute(
        "UPDATE batch_requests SET state = ?3, params = NULL WHERE batch_seq = ?1 AND state = ?2",
        params![seq, from, to],
    )?;
    tx.execute(
        &format!("UPDATE batches SET {to} = {to} + ?2 WHERE seq = ?1"),
        params![seq, moved as i64],
    )?;
    end_if_done(tx, seq, now)?;
    Ok(moved)
}

/// Starts canceling `owner`'s batch `id`: its queued requests are canceled
/// at once; running ones may finish. Canceling an ended or already
/// canceling batch changes nothing.
pub fn cancel(
    conn: &mut Connection,
    owner: &str,
    id: &str,
    now: i64,
) -> rusqlite::Result<Option<Batch>> {
    let tx = conn.transaction()?;
    let Some(batch) = get(&tx, owner, id)? else {
        return Ok(None);
    };
    if batch.ended_at.is_none() && batch.cancel_initiated_at.is_none() {
        tx.execute(
            "UPDATE batches SET cancel_initiated_at = ?2 WHERE seq = ?1",
            params![batch.seq, now],
        )?;
        finish_all(&tx, batch.seq, "queued", "canceled", now)?;
    }
    let batch = by_seq(&tx, batch.seq)?;
    tx.commit()?;
    Ok(Some(batch))
}

/// Deletes `owner`'s batch `id` with its requests and results, if ended.
pub fn delete(conn: &mut Connection, owner: &str, id: &str) -> rusqlite::Result<Deleted> {
    let tx = conn.transaction()?;
    let outcome = match get(&tx, owner, id)? {
        None => Deleted::NotFound,
        Some(batch) if batch.ended_at.is_none() => Deleted::NotEnded,
        Some(batch) => {
            tx.execute("DELETE FROM batches WHERE seq = ?1", [batch.seq])?;
            Deleted::Done
        }
    };
    tx.commit()?;
    Ok(outcome)
}

/// Up to `limit` results of batch `seq` after request `after_idx`, in
/// request order.
pub fn results(
    conn: &Connection,
    seq: i64,
    after_idx: i64,
    limit: usize,
) -> rusqlite::Result<Vec<ResultRow>> {
    let mut statement = conn.prepare_cached(
        "SELECT idx, custom_id, state, result FROM batch_requests \
         WHERE batch_seq = ?1 AND idx > ?2 ORDER BY idx LIMIT ?3",
    )?;
    let rows = statement
        .query_map(params![seq, after_idx, limit as i64], |row| {
            Ok(ResultRow {
                idx: row.get(0)?,
                custom_id: row.get(1)?,
                state: row.get(2)?,
                result: row.get(3)?,
            })
        })?
        .collect();
    rows
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
