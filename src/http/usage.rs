//! Reading the usage ledger over HTTP: `GET /admin/usage` (usage grouped
//! by key, model, account, hour or day), `GET /admin/requests` (the audit
//! log, newest first, cursor paging) for admins, and `GET /v1/usage` for a
//! client key: its own usage windows and rows only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{AdminCaller, ClientKey};
use super::error::{ApiError, ErrorKind};
use super::AppState;
use crate::api::Dialect;
use crate::config::TokenWindow;
use crate::ledger::report::{self, GroupBy, Listed, RequestsQuery, StatusFilter, UsageQuery};
use crate::ledger::{record, Ledger, WindowUsage};

const DIALECT: Dialect = Dialect::Anthropic;
/// Rows a listing returns unless asked for fewer or more.
const DEFAULT_LIMIT: usize = 50;
/// Most rows one page may hold.
const MAX_LIMIT: usize = 1000;
/// What a report waits at most for rows still on their way to the store.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// `GET /admin/usage` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    key: Option<String>,
}

/// `GET /admin/requests` and `GET /v1/usage` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestParams {
    key: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /admin/usage?from&to&group_by=key,model,account,hour|day&key=`:
/// requests, errors, tokens (and weighted tokens) and time of the requests
/// that arrived in `[from, to)` (default: the last 24 hours), grouped.
pub async fn admin_usage(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    params: Result<web::Query<UsageParams>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let params = params.map_err(bad_query)?.into_inner();
    let to = params.to.as_deref().map(|t| instant(t, "to")).transpose()?;
    let to = to.unwrap_or_else(record::now_ms);
    let from = params
        .from
        .as_deref()
        .map(|t| instant(t, "from"))
        .transpose()?;
    let from = from.unwrap_or(to - 24 * 3600 * 1000);
    if from > to {
        return Err(ApiError::invalid("`from` is after `to`", DIALECT).with_param("from"));
    }
    let group_by = GroupBy::parse(params.group_by.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid(e, DIALECT).with_param("group_by"))?;
    let query = UsageQuery {
        from_ms: from,
        to_ms: to,
        group_by,
        key: params.key,
    };
    let ledger = state.ledger.clone();
    let weight = ledger.settings().cache_read_weight;
    let groups = read(&ledger, move |c| report::usage(c, &query)).await?;
    let mut total = report::UsageGroup {
        key: None,
        model: None,
        account: None,
        period_start_ms: None,
        tally: Default::default(),
        errors: 0,
        duration_ms: 0,
    };
    let data: Vec<Value> = groups
        .iter()
        .map(|g| {
            total.tally += g.tally;
            total.errors += g.errors;
            total.duration_ms += g.duration_ms;
            group_json(g, weight)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "from": rfc3339(from),
        "to": rfc3339(to),
        "group_by": group_names(group_by),
        "data": data,
        "total": group_json(&total, weight),
    })))
}

/// `GET /admin/requests?key&status&from&to&limit&cursor`: the audit log,
/// newest first; `next_cursor` continues after the page's last row.
pub async fn admin_requests(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    params: Result<web::Query<RequestParams>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let params = params.map_err(bad_query)?.into_inner();
    let key = params.key.clone();
    let page = requests_page(&state.ledger, params, key).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /v1/usage`: the calling key's use over the limit windows, its
/// limits with what is left of each, and its own rows (newest first, the
/// same paging as `/admin/requests`).
pub async fn client_usage(
    client: ClientKey,
    state: web::Data<AppState>,
    params: Result<web::Query<RequestParams>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let params = params.map_err(bad_query)?.into_inner();
    if params.key.is_some() {
        return Err(
            ApiError::invalid("a client key reads only its own usage", DIALECT).with_param("key"),
        );
    }
    let name = client.name.clone();
    let now = SystemTime::now();
    let windows: serde_json::Map<String, Value> = [
        TokenWindow::FiveHours,
        TokenWindow::Day,
        TokenWindow::Week,
        TokenWindow::Month,
    ]
    .iter()
    .map(|window| {
        let usage = state.ledger.usage_since(&name, now - window.length());
        (window_name(*window).to_string(), window_json(&usage))
    })
    .collect();
    let limits = limits_json(&client, &state, now);
    let mut page = requests_page(&state.ledger, params, Some(name.clone())).await?;
    page["key"] = json!(name);
    page["windows"] = Value::Object(windows);
    page["limits"] = limits;
    Ok(HttpResponse::Ok().json(page))
}

/// Each limit the key has: its value, what is used, what is left.
fn limits_json(client: &ClientKey, state: &AppState, now: SystemTime) -> Value {
    let limits = &client.limits;
    let mut out = serde_json::Map::new();
    let entry = |limit: u64, used: u64| json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used)});
    if let Some(limit) = limits.max_concurrent {
        out.insert(
            "max_concurrent".into(),
            entry(limit, state.limiter.in_flight(&client.name)),
        );
    }
    if let Some(limit) = limits.requests_per_minute {
        let window = state.settings().limits.request_window();
        let used = state
            .ledger
            .usage_since(&client.name, now - window)
            .requests;
        out.insert("requests_per_minute".into(), entry(limit, used));
    }
    for (window, limit) in limits.token_budgets() {
        let used = state
            .ledger
            .usage_since(&client.name, now - window.length());
        out.insert(
            window.limit_name().into(),
            entry(limit, used.weighted_tokens),
        );
    }
    Value::Object(out)
}

fn window_name(window: TokenWindow) -> &'static str {
    match window {
        TokenWindow::FiveHours => "5h",
        TokenWindow::Day => "day",
        TokenWindow::Week => "week",
        TokenWindow::Month => "month",
    }
}

/// A page of rows for `key` (any key when `None`).
async fn requests_page(
    ledger: &Ledger,
    params: RequestParams,
    key: Option<String>,
) -> Result<Value, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            format!("`limit` must be between 1 and {MAX_LIMIT}"),
            DIALECT,
        )
        .with_param("limit"));
    }
    let status = params
        .status
        .as_deref()
        .map(StatusFilter::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(e, DIALECT).with_param("status"))?;
    let before_id = params
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::invalid("unknown cursor", DIALECT).with_param("cursor"))
        })
        .transpose()?;
    let query = RequestsQuery {
        key,
        status,
        from_ms: params
            .from
            .as_deref()
            .map(|t| instant(t, "from"))
            .transpose()?,
        to_ms: params.to.as_deref().map(|t| instant(t, "to")).transpose()?,
        limit,
        before_id,
    };
    let (rows, more) = read(ledger, move |c| report::requests(c, &query)).await?;
    let next = rows.last().filter(|_| more).map(|r| r.id.to_string());
    Ok(json!({
        "data": rows.iter().map(row_json).collect::<Vec<_>>(),
        "has_more": more,
        "next_cursor": next,
    }))
}

/// Runs a report on the store, after the rows recorded so far are written.
async fn read<R: Send + 'static>(
    ledger: &Ledger,
    f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
) -> Result<R, ApiError> {
    let Some(store) = ledger.store().cloned() else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            "the usage ledger has no store",
            DIALECT,
        ));
    };
    let flushing = ledger.clone();
    let _ = web::block(move || flushing.flush(FLUSH_WAIT)).await;
    store.call(f).await.map_err(|e| {
        log::error!("ledger report failed: {e}");
        ApiError::new(
            ErrorKind::Api,
            "the usage ledger could not be read",
            DIALECT,
        )
    })
}

fn bad_query(e: actix_web::Error) -> ApiError {
    ApiError::invalid(format!("bad query: {e}"), DIALECT)
}

/// An instant given as Unix seconds, an RFC 3339 time, or a date (its
/// midnight, UTC); in Unix milliseconds.
fn instant(text: &str, param: &'static str) -> Result<i64, ApiError> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .map(record::to_ms)
        .map_err(|_| {
            ApiError::invalid(
                format!(
                    "`{param}`: expected Unix seconds, an RFC 3339 time or a date (2026-01-31)"
                ),
                DIALECT,
            )
            .with_param(param)
        })
}

fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

fn group_names(by: GroupBy) -> Vec<&'static str> {
    let mut names = Vec::new();
    for (on, name) in [
        (by.key, "key"),
        (by.model, "model"),
        (by.account, "account"),
    ] {
        if on {
            names.push(name);
        }
    }
    match by.period {
        Some(report::Period::Hour) => names.push("hour"),
        Some(report::Period::Day) => names.push("day"),
        None => {}
    }
    names
}

fn group_json(g: &report::UsageGroup, weight: f64) -> Value {
    let mut v = serde_json::to_value(g).unwrap_or_default();
    if let Some(start) = g.period_start_ms {
        v["period_start"] = json!(rfc3339(start));
    }
    v["weighted_tokens"] = json!(g.tally.weighted_tokens(weight));
    v
}

fn window_json(usage: &WindowUsage) -> Value {
    let mut v = serde_json::to_value(usage.tally).unwrap_or_default();
    v["weighted_tokens"] = json!(usage.weighted_tokens);
    v
}

fn row_json(row: &Listed) -> Value {
    let mut v = serde_json::to_value(row).unwrap_or_default();
    v["at"] = json!(rfc3339(row.record.at_ms));
    v
}
