//! Per-key limits at the HTTP edge: admission (429 in the dialect's shape,
//! naming the limit, with `Retry-After`), the rate-limit headers the SDKs
//! know on every answer of an admitted or refused request, and holding a
//! job's place among its key's concurrent jobs until its response is done.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest};

use super::error::{ApiError, ErrorKind};
use super::AppState;
use crate::api::{Dialect, EventEncoder, Frame};
use crate::job::JobEvent;
use crate::keys::limits::Bucket;
use crate::keys::{Admitted, Caller, LimitStatus, TokenUsage};

/// The usage ledger's per-key windows, as token budgets read them.
impl TokenUsage for crate::ledger::Ledger {
    fn tokens_since(&self, key: &str, since_ms: i64) -> u64 {
        let since = std::time::UNIX_EPOCH + Duration::from_millis(since_ms.max(0) as u64);
        self.usage_since(key, since).weighted_tokens
    }
}

/// The limits' state of a request, for its response's headers.
#[derive(Debug, Clone, Copy)]
struct Noted {
    status: LimitStatus,
    dialect: Dialect,
}

/// Admits a request of `caller` under its limits, noting the headers for
/// the response either way. `job`: it counts against `max_concurrent` for
/// as long as the returned [`Admitted`] (its permit) is held.
pub fn admit(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
    job: bool,
    dialect: Dialect,
) -> Result<Admitted, ApiError> {
    let (result, status) = check(state, caller, job, dialect);
    req.extensions_mut().insert(Noted { status, dialect });
    result
}

/// [`admit`] without a response to note headers on (a WebSocket's turns):
/// the outcome, and what the headers would say.
pub fn check(
    state: &AppState,
    caller: &Caller,
    job: bool,
    dialect: Dialect,
) -> (Result<Admitted, ApiError>, LimitStatus) {
    let window = state.settings().limits.request_window();
    match state.limiter.admit(caller, job, window) {
        Ok(admitted) => {
            let status = admitted.status;
            (Ok(admitted), status)
        }
        Err((refusal, status)) => {
            let message = refusal.message(&caller.name);
            log::info!("key `{}` refused: {message}", caller.name);
            let mut error = ApiError::new(ErrorKind::RateLimited, message, dialect);
            error.retry_after = Some(round_up(refusal.retry_after()));
            (Err(error), status)
        }
    }
}

/// Whole seconds, rounded up (Retry-After has no fractions).
fn round_up(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
}

/// Middleware step: adds the noted limits' headers to `res`.
pub fn add_headers<B: MessageBody>(res: &mut ServiceResponse<B>) {
    let noted = res.request().extensions().get::<Noted>().copied();
    if let Some(noted) = noted {
        write_headers(res.headers_mut(), &noted.status, noted.dialect);
    }
}

fn write_headers(headers: &mut HeaderMap, status: &LimitStatus, dialect: Dialect) {
    let mut put = |name: String, value: String| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    };
    let buckets = [("requests", status.requests), ("tokens", status.tokens)];
    for (what, bucket) in buckets {
        let Some(Bucket {
            limit,
            remaining,
            reset_in,
        }) = bucket
        else {
            continue;
        };
        match dialect {
            Dialect::Anthropic => {
                let reset = std::time::SystemTime::now() + reset_in;
                put(
                    format!("anthropic-ratelimit-{what}-limit"),
                    limit.to_string(),
                );
                put(
                    format!("anthropic-ratelimit-{what}-remaining"),
                    remaining.to_string(),
                );
                put(
                    format!("anthropic-ratelimit-{what}-reset"),
                    humantime::format_rfc3339_seconds(reset).to_string(),
                );
            }
            Dialect::ChatCompletions | Dialect::Responses => {
                put(format!("x-ratelimit-limit-{what}"), limit.to_string());
                put(
                    format!("x-ratelimit-remaining-{what}"),
                    remaining.to_string(),
                );
                put(
                    format!("x-ratelimit-reset-{what}"),
                    openai_duration(reset_in),
                );
            }
        }
    }
}

/// A duration as OpenAI writes its resets: `6m0s`, `1s`, `20ms`.
fn openai_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.subsec_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A stream's encoder that holds the job's admission (its place among the
/// key's concurrent jobs) until the stream's body is dropped.
pub struct Holding<E> {
    inner: E,
    _admitted: Admitted,
}

impl<E> Holding<E> {
    pub fn new(inner: E, admitted: Admitted) -> Self {
        Self {
            inner,
            _admitted: admitted,
        }
    }
}

impl<E: EventEncoder> EventEncoder for Holding<E> {
    fn encode(&mut self, event: JobEvent) -> Vec<Frame> {
        self.inner.encode(event)
    }

    fn keepalive(&mut self) -> Vec<Frame> {
        self.inner.keepalive()
    }

    fn finish(&mut self) -> Vec<Frame> {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_dialect() {
        let status = LimitStatus {
            requests: Some(Bucket {
                limit: 10,
                remaining: 3,
                reset_in: Duration::from_secs(75),
            }),
            tokens: None,
        };
        let mut headers = HeaderMap::new();
        write_headers(&mut headers, &status, Dialect::ChatCompletions);
        assert_eq!(headers.get("x-ratelimit-limit-requests").unwrap(), "10");
        assert_eq!(headers.get("x-ratelimit-remaining-requests").unwrap(), "3");
        assert_eq!(headers.get("x-ratelimit-reset-requests").unwrap(), "1m15s");
        assert!(headers.get("x-ratelimit-limit-tokens").is_none());
        let mut headers = HeaderMap::new();
        write_headers(&mut headers, &status, Dialect::Anthropic);
        assert_eq!(
            headers
                .get("anthropic-ratelimit-requests-remaining")
                .unwrap(),
            "3"
        );
        let reset = headers.get("anthropic-ratelimit-requests-reset").unwrap();
        assert!(humantime::parse_rfc3339(reset.to_str().unwrap()).is_ok());
        assert_eq!(openai_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(openai_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(
            round_up(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
    }
}
