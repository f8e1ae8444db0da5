//! Prometheus metrics and `GET /metrics`.
//!
//! Everything is registered on a [`Registry`] of this daemon's own (several
//! daemons run in one test process, so nothing global). Three sources:
//! - the access middleware: requests by route, dialect and status, and
//!   their latency, measured until the response body is done (a stream's
//!   latency is its whole duration);
//! - the handlers (a stream through [`super::stream_metrics`]): time to
//!   first token, tokens of completed jobs, failures
//!   of jobs (also those that arrive mid-stream);
//! - the dispatcher's [`Health`] snapshot, read at scrape time: workers by
//!   state, queue, job outcomes, restarts and recycles; and the store's
//!   health report (failing writes, what waits in memory).

use std::net::SocketAddr;
use std::sync::Mutex;

use actix_web::dev::ServiceResponse;
use actix_web::{web, HttpRequest, HttpResponse};
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::access::started;
use super::auth::{ProbeCaller, ProbeRoute};
use super::error::{ApiError, ErrorKind};
use super::{host, AppState};
use crate::api::Dialect;
use crate::config::Settings;
use crate::dispatch::health::{Health, Status};
use crate::dispatch::messages::GetHealth;
use crate::job::Usage;

/// Latency buckets (seconds): from a fast local answer to a long generation.
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// `claude_pool_tokens_total`, shareable with whoever runs jobs.
#[derive(Clone)]
pub struct TokenCounter(IntCounterVec);

impl TokenCounter {
    /// Adds a job's usage.
    pub fn count(&self, usage: &Usage) {
        for (direction, n) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_input_tokens),
            ("cache_creation", usage.cache_creation_input_tokens),
        ] {
            self.0.with_label_values(&[direction]).inc_by(n);
        }
    }
}

/// This daemon's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub(super) first_token: HistogramVec,
    tokens: IntCounterVec,
    upstream_errors: IntCounterVec,
    workers: IntGaugeVec,
    status: IntGaugeVec,
    queue_depth: IntGauge,
    queue_capacity: IntGauge,
    workers_rss: IntGauge,
    jobs: IntCounterVec,
    restarts: IntCounter,
    recycles: IntCounter,
    waited_for_boot: IntCounter,
    spare_target: IntGauge,
    spares_auto: IntGauge,
    accounts: super::account_metrics::AccountMetrics,
    ledger: super::ledger_metrics::LedgerMetrics,
    store: super::store_metrics::StoreMetrics,
    /// Serialises scrapes: counters copied from the dispatcher are advanced
    /// by the difference to its figures, which must not be applied twice.
    refresh: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            registered(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            registered(&registry, HistogramVec::new(opts, labels))
        };
        let gauge = |name: &str, help: &str| registered(&registry, IntGauge::new(name, help));
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            registered(&registry, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let single = |name: &str, help: &str| registered(&registry, IntCounter::new(name, help));
        Self {
            requests: counter(
                "claude_pool_http_requests_total",
                "HTTP requests answered, by route pattern, API dialect and status.",
                &["route", "dialect", "status"],
            ),
            latency: histogram(
                "claude_pool_http_request_duration_seconds",
                "Time from request to the end of the response body (whole stream for SSE).",
                &["route", "dialect"],
            ),
            first_token: histogram(
                "claude_pool_time_to_first_token_seconds",
                "Time from request to the first content of a completed job: the first content event of a stream, the whole answer otherwise.",
                &["dialect", "stream"],
            ),
            tokens: counter(
                "claude_pool_tokens_total",
                "Tokens of completed jobs as the upstream reported them: input, output, cache_read, cache_creation.",
                &["direction"],
            ),
            upstream_errors: counter(
                "claude_pool_upstream_errors_total",
                "Requests that failed beyond the client's control (upstream API, worker or pool), by error kind.",
                &["kind"],
            ),
            workers: gauges(
                "claude_pool_workers",
                "Workers by state (disjoint: busy excludes parked).",
                &["state"],
            ),
            status: gauges(
                "claude_pool_status",
                "1 for the pool's current /health status, 0 for the others.",
                &["status"],
            ),
            queue_depth: gauge(
                "claude_pool_queue_depth",
                "Jobs waiting for a worker.",
            ),
            queue_capacity: gauge(
                "claude_pool_queue_capacity",
                "Jobs allowed to wait (pool.max_queue).",
            ),
            workers_rss: gauge(
                "claude_pool_workers_rss_bytes",
                "Resident memory of all worker processes.",
            ),
            jobs: counter(
                "claude_pool_jobs_total",
                "Jobs by outcome: completed, failed, rejected (refused at admission or timed out in the queue), abandoned (the client left while the job was queued).",
                &["outcome"],
            ),
            restarts: single(
                "claude_pool_worker_restarts_total",
                "Workers started to replace others (retired, crashed or failed to boot).",
            ),
            recycles: single(
                "claude_pool_worker_recycles_total",
                "Workers retired on purpose (job count or memory limit) and replaced.",
            ),
            waited_for_boot: single(
                "claude_pool_jobs_waited_for_boot_total",
                "Jobs given to a worker that finished booting after they arrived: a cold start on their critical path (pool.blank_spares keeps blank workers ready for new system prompts).",
            ),
            spare_target: gauge(
                "claude_pool_blank_spares_target",
                "Blank workers the pool keeps ready or booting for new system prompts now (pool.blank_spares, or what \"auto\" worked out).",
            ),
            spares_auto: gauge(
                "claude_pool_blank_spares_auto",
                "1 when pool.blank_spares is \"auto\" (the target follows demand), else 0.",
            ),
            accounts: super::account_metrics::AccountMetrics::new(&registry),
            ledger: super::ledger_metrics::LedgerMetrics::new(&registry),
            store: super::store_metrics::StoreMetrics::new(&registry),
            registry,
            refresh: Mutex::new(()),
        }
    }

    /// Counts a response as its head goes out, and returns what to run when
    /// its body is done (latency). Called by the access middleware.
    pub(super) fn on_response<B>(&self, res: &ServiceResponse<B>) -> impl FnOnce() + 'static {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let dialect = dialect_label(&route);
        let status = res.status().as_u16().to_string();
        self.requests
            .with_label_values(&[route.as_str(), dialect, status.as_str()])
            .inc();
        if let Some(error) = res
            .response()
            .error()
            .and_then(|e| e.as_error::<ApiError>())
        {
            self.count_error(error.kind);
        }
        let latency = self.latency.with_label_values(&[route.as_str(), dialect]);
        let started = started(res.request());
        move || latency.observe(started.elapsed().as_secs_f64())
    }

    /// Records a completed non-streaming job: its whole latency as time to
    /// first token, and its tokens.
    pub fn completed(&self, req: &HttpRequest, dialect: Dialect, usage: &Usage) {
        self.first_token
            .with_label_values(&[dialect_name(dialect), "false"])
            .observe(started(req).elapsed().as_secs_f64());
        self.count_tokens(usage);
    }

    pub(super) fn count_tokens(&self, usage: &Usage) {
        self.token_counter().count(usage);
    }

    /// The token counter alone, for jobs no HTTP request waits on (message
    /// batches).
    pub fn token_counter(&self) -> TokenCounter {
        TokenCounter(self.tokens.clone())
    }

    pub(super) fn count_error(&self, kind: ErrorKind) {
        if let Some(kind) = upstream_kind(kind) {
            self.upstream_errors.with_label_values(&[kind]).inc();
        }
    }

    /// Copies the dispatcher's figures into the gauges and counters.
    pub fn refresh(&self, health: &Health) {
        let _guard = self
            .refresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let w = &health.workers;
        for (state, n) in [
            ("ready", w.ready),
            ("busy", w.busy.saturating_sub(w.parked)),
            ("parked", w.parked),
            ("bound", w.bound),
            ("starting", w.starting),
            ("stopping", w.stopping),
        ] {
            self.workers.with_label_values(&[state]).set(n as i64);
        }
        for status in [
            Status::Ok,
            Status::Starting,
            Status::Degraded,
            Status::ShuttingDown,
        ] {
            self.status
                .with_label_values(&[status_name(status)])
                .set(i64::from(status == health.status));
        }
        self.queue_depth.set(health.queue.depth as i64);
        self.queue_capacity.set(health.queue.capacity as i64);
        self.workers_rss
            .set((w.rss_mb_total * 1024 * 1024).min(i64::MAX as u64) as i64);
        let advance = |counter: &IntCounter, now: u64| {
            counter.inc_by(now.saturating_sub(counter.get()));
        };
        for (outcome, n) in [
            ("completed", health.jobs.completed),
            ("failed", health.jobs.failed),
            ("rejected", health.jobs.rejected),
            ("abandoned", health.jobs.abandoned),
        ] {
            advance(&self.jobs.with_label_values(&[outcome]), n);
        }
        advance(&self.restarts, health.restarts);
        advance(&self.recycles, health.recycles);
        advance(&self.waited_for_boot, health.jobs.waited_for_boot);
        self.spare_target.set(health.spares.target as i64);
        self.spares_auto.set(i64::from(health.spares.auto));
        self.accounts.refresh(&health.accounts);
    }

    /// Copies the usage ledger's figures into its metrics.
    pub fn refresh_ledger(&self, ledger: &crate::ledger::Ledger) {
        let _guard = self
            .refresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.ledger.refresh(ledger);
    }

    /// Copies the store's health into its metrics.
    pub fn refresh_store(&self, report: &crate::store::health::StoreReport) {
        let _guard = self
            .refresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.store.refresh(report);
    }

    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics: cannot encode: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Registers a newly made metric on `registry` and returns it (its clones
/// share its value). Names and labels are fixed in the code, so failing
/// either step is a bug.
pub(super) fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

/// `GET /metrics` is open when `server.metrics_public`, else to loopback
/// peers that address a local name (see [`host`]), else with a key.
pub struct MetricsProbe;

impl ProbeRoute for MetricsProbe {
    fn open(req: &HttpRequest, settings: &Settings) -> bool {
        open_to(settings, req.peer_addr(), host::is_local(req, settings))
    }
}

pub async fn scrape(
    _: ProbeCaller<MetricsProbe>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Ok(health) = state.dispatcher.send(GetHealth).await {
        state.metrics.refresh(&health);
    }
    state.metrics.refresh_ledger(&state.ledger);
    state.metrics.refresh_store(&state.store.health().report());
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(state.metrics.encode()))
}

/// Whether `peer` may read `/metrics` without a key. A loopback peer must
/// also have addressed a local name: a web page reaching the daemon through
/// DNS rebinding comes from loopback too, but under its own name.
pub(super) fn open_to(settings: &Settings, peer: Option<SocketAddr>, local_host: bool) -> bool {
    settings.server.metrics_public || (local_host && peer.is_some_and(|a| a.ip().is_loopback()))
}

/// The dialect a route pattern serves, as a label.
pub(super) fn dialect_label(route: &str) -> &'static str {
    if route.contains("chat/completions") {
        "openai"
    } else if route.contains("responses") {
        "responses"
    } else if route.contains("messages") {
        "anthropic"
    } else {
        "none"
    }
}

pub(super) fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Anthropic => "anthropic",
        Dialect::ChatCompletions => "openai",
        Dialect::Responses => "responses",
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Starting => "starting",
        Status::Degraded => "degraded",
        Status::ShuttingDown => "shutting_down",
    }
}

/// The label of an error the client could not have avoided; `None` for
/// errors in the request itself.
fn upstream_kind(kind: ErrorKind) -> Option<&'static str> {
    Some(match kind {
        ErrorKind::InvalidRequest
        | ErrorKind::Authentication
        | ErrorKind::HostNotAllowed
        | ErrorKind::PermissionDenied
        | ErrorKind::Conflict
        | ErrorKind::NotFound
        | ErrorKind::PayloadTooLarge
        | ErrorKind::UnsupportedMediaType => return None,
        ErrorKind::UpstreamInvalid => "upstream_invalid",
        ErrorKind::UpstreamAuth => "upstream_auth",
        ErrorKind::UpstreamConnection => "upstream_connection",
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::Overloaded => "overloaded",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Api => "api",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::health::{JobStats, QueueStats, WorkerCounts};

    fn health(completed: u64, restarts: u64) -> Health {
        Health {
            status: Status::Ok,
            reason: None,
            version: "test",
            uptime_secs: 1,
            workers: WorkerCounts {
                total: 3,
                ready: 1,
                busy: 2,
                parked: 1,
                ..WorkerCounts::default()
            },
            queue: QueueStats {
                depth: 4,
                capacity: 32,
            },
            jobs: JobStats {
                completed,
                failed: 1,
                rejected: 0,
                abandoned: 0,
                waited_for_boot: 3,
            },
            restarts,
            recycles: 0,
            accounts: vec![crate::accounts::AccountHealth {
                name: "team-a".into(),
                status: "limited",
                reason: None,
                workers: 2,
                jobs: completed,
                limited_until: None,
                utilization: Some(0.5),
                rate_limited: restarts,
                failovers: 1,
            }],
            spares: crate::dispatch::health::SpareHealth {
                target: 2,
                auto: true,
                blank: 1,
                held_back: false,
            },
        }
    }

    #[test]
    fn dispatcher_figures_become_gauges_and_counters() {
        let m = Metrics::new();
        m.refresh(&health(5, 2));
        m.refresh(&health(7, 2));
        let text = m.encode();
        assert!(
            text.contains("claude_pool_jobs_total{outcome=\"completed\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("claude_pool_worker_restarts_total 2"),
            "{text}"
        );
        assert!(
            text.contains("claude_pool_workers{state=\"busy\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("claude_pool_workers{state=\"parked\"} 1"),
            "{text}"
        );
        assert!(text.contains("claude_pool_queue_depth 4"), "{text}");
        assert!(
            text.contains("claude_pool_jobs_waited_for_boot_total 3"),
            "{text}"
        );
        assert!(text.contains("claude_pool_blank_spares_target 2"), "{text}");
        assert!(text.contains("claude_pool_blank_spares_auto 1"), "{text}");
        for line in [
            "claude_pool_account_jobs_total{account=\"team-a\"} 7",
            "claude_pool_account_status{account=\"team-a\",status=\"limited\"} 1",
            "claude_pool_account_status{account=\"team-a\",status=\"ok\"} 0",
            "claude_pool_account_workers{account=\"team-a\"} 2",
            "claude_pool_account_utilization{account=\"team-a\"} 0.5",
            "claude_pool_account_rate_limited_total{account=\"team-a\"} 2",
            "claude_pool_account_failovers_total{account=\"team-a\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            text.contains("claude_pool_status{status=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("claude_pool_status{status=\"degraded\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn metrics_are_open_to_loopback_or_when_public() {
        let mut settings = Settings::default();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert!(open_to(&settings, Some(local), true));
        assert!(!open_to(&settings, Some(local), false));
        assert!(!open_to(&settings, Some(remote), true));
        assert!(!open_to(&settings, None, true));
        settings.server.metrics_public = true;
        assert!(open_to(&settings, Some(remote), false));
    }

    #[test]
    fn client_errors_are_not_upstream_errors() {
        assert_eq!(upstream_kind(ErrorKind::InvalidRequest), None);
        assert_eq!(upstream_kind(ErrorKind::Authentication), None);
        assert_eq!(
            upstream_kind(ErrorKind::UpstreamAuth),
            Some("upstream_auth")
        );
        assert_eq!(dialect_label("/v1/chat/completions"), "openai");
        assert_eq!(dialect_label("/messages/count_tokens"), "anthropic");
        assert_eq!(dialect_label("/health"), "none");
    }
}
