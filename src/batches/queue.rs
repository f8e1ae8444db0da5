//! The runner's side of the batch store: handing out queued requests,
//! recording how they ended (exactly once), recovery after a crash, expiry
//! and retention. Each function is one transaction; times are Unix
//! milliseconds chosen by the caller.

use rusqlite::{params, Connection, Transaction};

use super::store::{end_if_done, finish_all, Claim, Outcome};

/// How many times a request may be started: once, and once more after a
/// crash or restart interrupted it.
pub const MAX_ATTEMPTS: i64 = 2;

/// Up to `limit` queued requests, oldest batch first, in request order.
pub fn next_queued(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Claim>> {
    let mut statement = conn.prepare_cached(
        "SELECT r.batch_seq, r.idx, r.custom_id, r.params, b.id, b.owner \
         FROM batch_requests r JOIN batches b ON b.seq = r.batch_seq \
         WHERE r.state = 'queued' ORDER BY r.batch_seq, r.idx LIMIT ?1",
    )?;
    let claims = statement
        .query_map([limit as i64], |row| {
            Ok(Claim {
                batch_seq: row.get(0)?,
                idx: row.get(1)?,
                custom_id: row.get(2)?,
                params: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                batch_id: row.get(4)?,
                owner: row.get(5)?,
            })
        })?
        .collect();
    claims
}

/// Records that a worker took the request. False if it is no longer queued
/// (canceled or expired meanwhile): its result will not be recorded.
pub fn mark_running(conn: &Connection, batch_seq: i64, idx: i64) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE batch_requests SET state = 'running', attempts = attempts + 1 \
         WHERE batch_seq = ?1 AND idx = ?2 AND state = 'queued'",
        params![batch_seq, idx],
    )?;
    Ok(changed == 1)
}

/// Records how a running request ended, exactly once: false if it was not
/// running (its result already recorded, or it was never marked running).
pub fn record(
    conn: &mut Connection,
    batch_seq: i64,
    idx: i64,
    outcome: &Outcome,
    now: i64,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction()?;
    let recorded = record_in(&tx, batch_seq, idx, outcome, now)?;
    tx.commit()?;
    Ok(recorded)
}

/// [`record`], inside the caller's transaction.
pub fn record_in(
    tx: &Transaction<'_>,
    batch_seq: i64,
    idx: i64,
    outcome: &Outcome,
    now: i64,
) -> rusqlite::Result<bool> {
    let (state, result) = match outcome {
        Outcome::Succeeded(r) => ("succeeded", r),
        Outcome::Errored(r) => ("errored", r),
    };
    let changed = tx.execute(
        "UPDATE batch_requests SET state = ?3, result = ?4, params = NULL \
         WHERE batch_seq = ?1 AND idx = ?2 AND state = 'running'",
        params![batch_seq, idx, state, result],
    )?;
    if changed == 1 {
        tx.execute(
            &format!("UPDATE batches SET {state} = {state} + 1 WHERE seq = ?1"),
            [batch_seq],
        )?;
        end_if_done(tx, batch_seq, now)?;
    }
    Ok(changed == 1)
}

/// Puts a running request back in the queue, its attempt not counted (the
/// daemon stopped it, not the request).
pub fn requeue(conn: &Connection, batch_seq: i64, idx: i64) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE batch_requests SET state = 'queued', attempts = max(attempts - 1, 0) \
         WHERE batch_seq = ?1 AND idx = ?2 AND state = 'running'",
        params![batch_seq, idx],
    )?;
    Ok(changed == 1)
}

/// At startup: requests left `running` by a crash or restart are queued to
/// run once more, or, if they already had their second start, errored with
/// `errored` (a result object as JSON text). Returns (queued, errored).
pub fn recover(conn: &mut Connection, errored: &str, now: i64) -> rusqlite::Result<(usize, usize)> {
    let tx = conn.transaction()?;
    let seqs: Vec<i64> = tx
        .prepare(
            "SELECT DISTINCT batch_seq FROM batch_requests \
             WHERE state = 'running' AND attempts >= ?1",
        )?
        .query_map([MAX_ATTEMPTS], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut failed = 0;
    for seq in seqs {
        let n = tx.execute(
            "UPDATE batch_requests SET state = 'errored', result = ?3, params = NULL \
             WHERE batch_seq = ?1 AND state = 'running' AND attempts >= ?2",
            params![seq, MAX_ATTEMPTS, errored],
        )?;
        tx.execute(
            "UPDATE batches SET errored = errored + ?2 WHERE seq = ?1",
            params![seq, n as i64],
        )?;
        end_if_done(&tx, seq, now)?;
        failed += n;
    }
    let queued = tx.execute(
        "UPDATE batch_requests SET state = 'queued' WHERE state = 'running'",
        [],
    )?;
    tx.commit()?;
    Ok((queued, failed))
}

/// Expires the queued requests of every batch whose `expires_at` has
/// passed. Returns how many requests expired.
pub fn expire_due(conn: &mut Connection, now: i64) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let seqs: Vec<i64> = tx
        .prepare("SELECT seq FROM batches WHERE ended_at IS NULL AND expires_at <= ?1")?
        .query_map([now], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut expired = 0;
    for seq in seqs {
        expired += finish_all(&tx, seq, "queued", "expired", now)?;
    }
    tx.commit()?;
    Ok(expired)
}

/// Removes the requests and results of batches that ended before `cutoff`,
/// marking them archived; the batch rows stay. Returns how many batches.
pub fn archive_ended_before(
    conn: &mut Connection,
    cutoff: i64,
    now: i64,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM batch_requests WHERE batch_seq IN (SELECT seq FROM batches \
         WHERE archived_at IS NULL AND ended_at IS NOT NULL AND ended_at < ?1)",
        [cutoff],
    )?;
    let archived = tx.execute(
        "UPDATE batches SET archived_at = ?2 \
         WHERE archived_at IS NULL AND ended_at IS NOT NULL AND ended_at < ?1",
        params![cutoff, now],
    )?;
    tx.commit()?;
    Ok(archived)
}
