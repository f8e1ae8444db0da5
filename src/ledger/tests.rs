use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::report::{self, GroupBy, Period, RequestsQuery, StatusFilter, UsageQuery};
use super::windows::{DAY_MS, HOUR_MS, MINUTE_MS};
use super::*;
use crate::job::Usage;

fn settings() -> LedgerSettings {
    LedgerSettings::default()
}

fn row(key: &str, at_ms: i64, input: u64, status: u16) -> Record {
    Record {
        at_ms,
        request_id: format!("req_{at_ms}"),
        key: key.into(),
        method: "POST".into(),
        route: "/v1/messages".into(),
        model_asked: Some("claude-x".into()),
        model_served: Some("claude-x-1".into()),
        account: Some("main".into()),
        node: "n1".into(),
        status,
        usage: Usage {
            input_tokens: input,
            output_tokens: 2 * input,
            cache_read_input_tokens: 10,
            cache_creation_input_tokens: 1,
        },
        duration_ms: 5,
        ..Record::default()
    }
}

fn count_rows(store: &Store) -> i64 {
    store
        .with(|c| c.query_row("SELECT count(*) FROM ledger_requests", [], |r| r.get(0)))
        .unwrap()
}

#[test]
fn rows_and_rollups_are_written_behind_and_flushed() {
    let store = Store::in_memory().unwrap();
    let ledger = Ledger::start(store.clone(), settings()).unwrap();
    let now = record::now_ms();
    for i in 0..50 {
        ledger.record(row(if i % 2 == 0 { "a" } else { "b" }, now - i, 1, 200));
    }
    assert!(ledger.flush(Duration::from_secs(10)));
    assert_eq!(count_rows(&store), 50);
    let stats = ledger.stats();
    assert_eq!((stats.written, stats.dropped, stats.pending), (50, 0, 0));
    let hourly: i64 = store
        .with(|c| c.query_row("SELECT sum(requests) FROM ledger_hourly", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(hourly, 50, "every row is in a rollup");
    let totals = ledger.totals();
    assert_eq!(totals[0].0, "a");
    assert_eq!(totals[0].1.requests, 25);
    ledger.close();
}

#[test]
fn a_full_queue_drops_rows_and_counts_them_without_blocking() {
    let store = Store::in_memory().unwrap();
    let ledger = Ledger::start(
        store.clone(),
        LedgerSettings {
            queue_capacity: 2,
            ..settings()
        },
    )
    .unwrap();
    let now = record::now_ms();
    // Holding the store's connection stalls the writer at its first commit.
    store
        .with(|_| {
            for i in 0..6 {
                ledger.record(row("a", now + i, 1, 200));
            }
            Ok(())
        })
        .unwrap();
    assert!(ledger.flush(Duration::from_secs(10)));
    let stats = ledger.stats();
    assert_eq!(stats.dropped, 4, "{stats:?}");
    assert_eq!(stats.written, 2, "{stats:?}");
    assert_eq!(count_rows(&store), 2);
    // Dropped rows still count in the windows limits read.
    let since = UNIX_EPOCH + Duration::from_millis((now - 1) as u64);
    assert_eq!(ledger.usage_since("a", since).requests, 6);
    ledger.close();
}

#[test]
fn windows_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let now = record::now_ms();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600 + 120);
    {
        let ledger = Ledger::start(Store::open(&path).unwrap(), settings()).unwrap();
        ledger.record(row("a", now - 3 * HOUR_MS, 100, 200));
        ledger.record(row("a", now - 10 * MINUTE_MS, 10, 200));
        ledger.record(row("b", now - 10 * MINUTE_MS, 7, 200));
        ledger.record(row("a", now - 40 * DAY_MS, 1000, 200));
        let before = ledger.usage_since("a", hour_ago);
        assert_eq!(before.requests, 1);
        // 10 in + 20 out + 1 creation + 10 reads × 0.1
        assert_eq!(before.weighted_tokens, 32);
        ledger.close();
    }
    let ledger = Ledger::start(Store::open(&path).unwrap(), settings()).unwrap();
    assert_eq!(ledger.usage_since("a", hour_ago).weighted_tokens, 32);
    let day = ledger.usage_since("a", SystemTime::now() - Duration::from_secs(86_400));
    assert_eq!((day.requests, day.tally.input_tokens), (2, 110));
    let b = ledger.usage_since("b", hour_ago);
    assert_eq!(b.tally.input_tokens, 7);
    ledger.close();
}

#[test]
fn windows_load_old_hours_from_rollups_when_rows_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let now = record::now_ms();
    let two_days = SystemTime::now() - Duration::from_secs(2 * 86_400);
    let short = LedgerSettings {
        retention_days: 1,
        ..settings()
    };
    {
        let ledger = Ledger::start(Store::open(&path).unwrap(), settings()).unwrap();
        ledger.record(row("a", now - 30 * HOUR_MS, 5, 200));
        ledger.record(row("a", now - 2 * HOUR_MS, 3, 200));
        ledger.close();
    }
    // Starting with a one-day retention prunes the older row; its rollup
    // still counts it.
    let ledger = Ledger::start(Store::open(&path).unwrap(), short).unwrap();
    assert!(ledger.flush(Duration::from_secs(10)));
    let usage = ledger.usage_since("a", two_days);
    assert_eq!((usage.requests, usage.tally.input_tokens), (2, 8));
    ledger.close();
    let rows: i64 = Store::open(&path)
        .unwrap()
        .with(|c| c.query_row("SELECT count(*) FROM ledger_requests", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(rows, 1, "the row past retention was deleted");
}

/// Reports mixing rollups (whole hours) and rows (partial hours) add up to
/// what the rows themselves say, for ranges cut anywhere.
#[test]
fn usage_reports_equal_the_sum_of_their_rows() {
    let store = Store::in_memory().unwrap();
    let ledger = Ledger::start(store.clone(), settings()).unwrap();
    let base = 1_800_000_000_000 / DAY_MS * DAY_MS;
    let mut records = Vec::new();
    let mut seed = 7u64;
    for i in 0..400 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = base + (seed >> 20) as i64 % (3 * DAY_MS);
        let key = ["a", "b", "c"][i % 3];
        let mut r = row(key, at, 1 + (seed >> 50) % 100, [200, 200, 429][i % 3]);
        r.account = Some(["x", "y"][(seed >> 40) as usize % 2].into());
        records.push(r.clone());
        ledger.record(r);
    }
    assert!(ledger.flush(Duration::from_secs(10)));
    let cuts = [
        (base, base + 3 * DAY_MS),
        (base + 1234567, base + 2 * DAY_MS + 7654321),
        (base + 100, base + 200_000),
        (base + HOUR_MS, base + 5 * HOUR_MS),
    ];
    for (from, to) in cuts {
        for by in [
            "",
            "key",
            "key,account,day",
            "model,hour",
            "account",
            "account,hour",
            "key,hour",
        ] {
            let q = UsageQuery {
                from_ms: from,
                to_ms: to,
                group_by: GroupBy::parse(by).unwrap(),
                key: None,
            };
            let groups = store.with(|c| report::usage(c, &q)).unwrap();
            let inside: Vec<_> = records
                .iter()
                .filter(|r| r.at_ms >= from && r.at_ms < to)
                .collect();
            let total: u64 = groups.iter().map(|g| g.tally.input_tokens).sum();
            let expected: u64 = inside.iter().map(|r| r.usage.input_tokens).sum();
            assert_eq!(total, expected, "{from}..{to} by {by}");
            let errors: u64 = groups.iter().map(|g| g.errors).sum();
            let expected_errors = inside.iter().filter(|r| r.status >= 400).count() as u64;
            assert_eq!(errors, expected_errors);
            if by == "account,hour" {
                for g in &groups {
                    let mine = inside.iter().filter(|r| {
                        r.account == g.account
                            && r.at_ms / HOUR_MS * HOUR_MS == g.period_start_ms.unwrap()
                    });
                    assert_eq!(g.tally.requests, mine.count() as u64, "{g:?}");
                }
            }
            if by == "key,account,day" {
                for g in &groups {
                    let mine = inside.iter().filter(|r| {
                        Some(&r.key) == g.key.as_ref()
                            && r.account == g.account
                            && r.at_ms / DAY_MS * DAY_MS == g.period_start_ms.unwrap()
                    });
                    assert_eq!(g.tally.requests, mine.count() as u64, "{g:?}");
                }
            }
        }
    }
    let only_b = UsageQuery {
        from_ms: base,
        to_ms: base + 3 * DAY_MS,
        group_by: GroupBy::parse("key").unwrap(),
        key: Some("b".into()),
    };
    let groups = store.with(|c| report::usage(c, &only_b)).unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].key.as_deref(), Some("b"));
    ledger.close();
}

#[test]
fn request_listings_page_newest_first_with_filters() {
    let store = Store::in_memory().unwrap();
    let ledger = Ledger::start(store.clone(), settings()).unwrap();
    for i in 0..25 {
        let status = if i % 5 == 0 { 429 } else { 200 };
        ledger.record(row(
            if i < 20 { "a" } else { "b" },
            1000 + i,
            i as u64,
            status,
        ));
    }
    assert!(ledger.flush(Duration::from_secs(10)));
    let page = |q: &RequestsQuery| store.with(|c| report::requests(c, q)).unwrap();
    let mut q = RequestsQuery {
        key: Some("a".into()),
        limit: 8,
        ..RequestsQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let (rows, more) = page(&q);
        seen.extend(rows.iter().map(|r| r.record.at_ms));
        if !more {
            break;
        }
        q.before_id = rows.last().map(|r| r.id);
    }
    let expected: Vec<i64> = (1000..1020).rev().collect();
    assert_eq!(seen, expected, "every row of key a once, newest first");
    let errors = RequestsQuery {
        status: Some(StatusFilter::parse("4xx").unwrap()),
        from_ms: Some(1005),
        to_ms: Some(1021),
        limit: 100,
        ..RequestsQuery::default()
    };
    let at: Vec<i64> = page(&errors).0.iter().map(|r| r.record.at_ms).collect();
    assert_eq!(at, [1020, 1015, 1010, 1005]);
    let (one, _) = page(&RequestsQuery {
        status: Some(StatusFilter::Exact(200)),
        limit: 1,
        ..RequestsQuery::default()
    });
    assert_eq!(
        one[0].record,
        row("b", 1024, 24, 200),
        "a row reads back whole"
    );
    ledger.close();
}

#[test]
fn group_by_and_status_filters_parse_or_say_why_not() {
    let by = GroupBy::parse("key, day,account").unwrap();
    assert!(by.key && by.account && !by.model && by.period == Some(Period::Day));
    assert!(GroupBy::parse("hour,day").unwrap_err().contains("one of"));
    assert!(GroupBy::parse("colour").unwrap_err().contains("colour"));
    assert_eq!(StatusFilter::parse("5xx"), Ok(StatusFilter::Class(5)));
    assert_eq!(StatusFilter::parse("error"), Ok(StatusFilter::Errors));
    assert_eq!(StatusFilter::parse("201"), Ok(StatusFilter::Exact(201)));
    assert!(StatusFilter::parse("9xx").is_err());
    assert!(StatusFilter::parse("abc").is_err());
}

#[test]
fn a_disabled_ledger_writes_nothing_but_keeps_windows() {
    let store = Store::in_memory().unwrap();
    let ledger = Ledger::start(
        store.clone(),
        LedgerSettings {
            enabled: false,
            ..settings()
        },
    )
    .unwrap();
    ledger.record(row("a", record::now_ms(), 4, 200));
    assert!(ledger.flush(Duration::from_secs(1)));
    assert_eq!(count_rows(&store), 0);
    let since = SystemTime::now() - Duration::from_secs(60);
    assert_eq!(ledger.usage_since("a", since).tally.input_tokens, 4);
}

/// A store written before daily rollups existed gets them from its hourly
/// ones, so month reports over old usage stay exact.
#[test]
fn daily_rollups_are_filled_from_hourly_ones_on_upgrade() {
    struct V1;
    impl crate::store::Schema for V1 {
        const NAME: &'static str = "ledger";
        const MIGRATIONS: &'static [&'static str] = &[schema::LedgerSchema::MIGRATIONS[0]];
    }
    let store = Store::in_memory().unwrap();
    store.install::<V1>().unwrap();
    let base = 1_800_000_000_000 / DAY_MS * DAY_MS;
    let rows: Vec<Record> = (0..48)
        .map(|h| row("a", base + h * HOUR_MS, 3, 200))
        .collect();
    store
        .with(|c| {
            let tx = c.transaction()?;
            let mut hourly = std::collections::HashMap::new();
            for r in &rows {
                hourly
                    .entry(schema::rollup_key(r))
                    .or_insert_with(schema::Rollup::default)
                    .add(&schema::Rollup::of(r));
            }
            for ((hour, key, model, account), r) in hourly {
                tx.execute(
                    "INSERT INTO ledger_hourly VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, 0, 0, 0, 0)",
                    rusqlite::params![
                        hour,
                        key,
                        model,
                        account,
                        r.tally.requests as i64,
                        r.tally.input_tokens as i64
                    ],
                )?;
            }
            tx.commit()
        })
        .unwrap();
    store.install::<schema::LedgerSchema>().unwrap();
    let q = UsageQuery {
        from_ms: base,
        to_ms: base + 2 * DAY_MS,
        group_by: GroupBy::parse("day").unwrap(),
        key: None,
    };
    let groups = store.with(|c| report::usage(c, &q)).unwrap();
    assert_eq!(groups.len(), 2);
    assert!(groups
        .iter()
        .all(|g| g.tally.requests == 24 && g.tally.input_tokens == 72));
}

/// A month of hours grouped by account or by key reads tens of thousands of
/// rollup rows: SQLite groups them as it scans, in the order of an index
/// (account) or the primary key (key), instead of sorting them all.
#[test]
fn hourly_reports_by_account_or_key_group_without_sorting() {
    let store = Store::in_memory().unwrap();
    let _ledger = Ledger::start(store.clone(), settings()).unwrap();
    for by in ["account,hour", "key,hour", "hour"] {
        let sql = report::hourly_sql(GroupBy::parse(by).unwrap());
        let plan: Vec<String> = store
            .with(|c| {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = stmt.query_map(rusqlite::params![0, 1, None::<String>], |r| {
                    r.get::<_, String>(3)
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap();
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{by}: {plan:?}"
        );
    }
}
