//! The session driven by made-up inputs and a made-up clock: what it writes
//! to the CLI, tells the pool and sends the client, in order.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::timers::{CLEAR_TIMEOUT, INTERRUPT_GRACE};
use super::{Effect, Input, ProcessInfo, Session, RETIRE_GRACE};
use crate::affinity::ConversationKey;
use crate::config::Settings;
use crate::error::JobError;
use crate::job::{Job, JobEvent, JobSpec, ToolResult, ToolSet};
use crate::prompt::{Role, Turn};
use crate::worker::protocol::mcp::RpcResult;
use crate::worker::protocol::{CliLine, Outgoing, Reply, Request};
use crate::worker::report::{ExitReason, Holder, Outcome, WorkerReport, WorkerState};
use crate::worker::WorkerKind;

mod faults;
mod parked;

#[derive(Debug)]
struct FakeProcess {
    rss: Cell<Option<u64>>,
}

impl ProcessInfo for FakeProcess {
    fn pid(&self) -> u32 {
        4242
    }

    fn rss_bytes(&self) -> Option<u64> {
        self.rss.get()
    }
}

/// A session and the clock it is driven with.
struct Harness {
    session: Session,
    now: Instant,
    process: Rc<FakeProcess>,
    settings: Arc<Settings>,
}

impl Harness {
    fn new(configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::default();
        settings.server.node_id = Some("n1".into());
        configure(&mut settings);
        let settings = Arc::new(settings);
        let now = Instant::now();
        let session = Session::new(
            7,
            WorkerKind::Plain,
            "worker-7".into(),
            settings.clone(),
            None,
            now,
        );
        let process = Rc::new(FakeProcess {
            rss: Cell::new(Some(100 << 20)),
        });
        Self {
            session,
            now,
            process,
            settings,
        }
    }

    fn input(&mut self, input: Input) -> Vec<Effect> {
        self.session.handle(self.now, input)
    }

    fn line(&mut self, line: Value) -> Vec<Effect> {
        let line = CliLine::parse(line.to_string().as_bytes()).expect("a line");
        self.input(Input::Line(line))
    }

    fn tick_after(&mut self, elapsed: Duration) -> Vec<Effect> {
        self.now += elapsed;
        self.input(Input::Tick)
    }

    fn success(&mut self, request_id: &str) -> Vec<Effect> {
        self.line(json!({"type": "control_response",
            "response": {"subtype": "success", "request_id": request_id, "response": {}}}))
    }

    /// Spawned and probed: the worker reports itself ready.
    fn booted() -> Self {
        Self::booted_with(|_| {})
    }

    fn booted_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let mut h = Self::new(configure);
        let effects = h.input(Input::Spawned(h.process.clone()));
        let [(probe, request)] = &requests(&effects)[..] else {
            panic!("{effects:?}")
        };
        // Harmless, and leaves the system prompt open (not `initialize`).
        assert_eq!(*request, Request::max_output_tokens(None));
        let effects = h.success(probe);
        assert_eq!(states(&effects), [WorkerState::Ready { prompt: None }]);
        assert_eq!(reports(&effects)[0].booted, Some(4242));
        h
    }

    /// Hands the session `job` and answers its setup requests; returns the
    /// prompt written.
    fn start(&mut self, job: Job) -> Vec<Value> {
        let mut effects = self.input(Input::Job(job));
        loop {
            if let Some(prompt) = effects.iter().find_map(|e| match e {
                Effect::Write(Outgoing::User(prompt)) => Some(prompt.clone()),
                _ => None,
            }) {
                return prompt;
            }
            let [(id, _)] = &requests(&effects)[..] else {
                panic!("one setup request at a time: {effects:?}")
            };
            effects = self.success(id);
        }
    }
}

fn spec() -> JobSpec {
    JobSpec {
        model: Settings::default().claude.default_model,
        ..JobSpec::plain("Be brief.", "", "hello")
    }
}

fn job(spec: JobSpec) -> (Job, mpsc::UnboundedReceiver<JobEvent>) {
    Job::new("job-1".into(), spec)
}

fn requests(effects: &[Effect]) -> Vec<(String, Request)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Write(Outgoing::Request {
                request_id,
                request,
            }) => Some((request_id.clone(), request.clone())),
            _ => None,
        })
        .collect()
}

fn reports(effects: &[Effect]) -> Vec<&WorkerReport> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Report(report) => Some(report),
            _ => None,
        })
        .collect()
}

/// Whose work the jobs of `spec()` are.
fn holder() -> Holder {
    Holder {
        prompt: "Be brief.".into(),
        ..Holder::default()
    }
}

/// Ready again after a job of `spec()`: set up with its prompt.
fn ready() -> WorkerState {
    WorkerState::Ready {
        prompt: Some("Be brief.".into()),
    }
}

/// Clearing after a job of `spec()`.
fn clearing() -> WorkerState {
    WorkerState::Clearing {
        prompt: Some("Be brief.".into()),
    }
}

fn states(effects: &[Effect]) -> Vec<WorkerState> {
    reports(effects).iter().map(|r| r.state.clone()).collect()
}

fn events(effects: &[Effect]) -> Vec<&JobEvent> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(_, event) => Some(event),
            _ => None,
        })
        .collect()
}

/// Where in `effects` the first effect matching `what` is.
fn position(effects: &[Effect], what: impl Fn(&Effect) -> bool) -> usize {
    effects
        .iter()
        .position(what)
        .unwrap_or_else(|| panic!("not found in {effects:?}"))
}

fn answer(text: &str) -> Value {
    json!({"type": "assistant", "message": {"id": "msg_1", "model": "claude-test",
        "content": [{"type": "text", "text": text}], "usage": {"input_tokens": 3}}})
}

fn result(session_id: &str) -> Value {
    json!({"type": "result", "subtype": "success", "is_error": false, "result": "",
        "usage": {"input_tokens": 3, "output_tokens": 2}, "session_id": session_id})
}

fn interrupted(session_id: &str) -> Value {
    json!({"type": "result", "subtype": "error_during_execution", "is_error": true,
        "terminal_reason": "aborted_streaming", "session_id": session_id})
}

fn is_interrupt(effect: &Effect) -> bool {
    matches!(
        effect,
        Effect::Write(Outgoing::Request {
            request: Request::Interrupt,
            ..
        })
    )
}

#[test]
fn a_job_is_set_up_run_and_cleared_and_the_pool_hears_first() {
    let mut h = Harness::booted();
    let (job, _client) = job(spec());
    let mut effects = h.input(Input::Job(job));
    let mut setup = Vec::new();
    while let [(id, request)] = &requests(&effects)[..] {
        setup.push(request.clone());
        effects = h.success(id);
    }
    assert_eq!(
        setup,
        [
            Request::Initialize {
                system_prompt: "Be brief.".into()
            },
            Request::SetMaxThinkingTokens {
                max_thinking_tokens: 0
            },
        ]
    );
    assert!(matches!(&effects[..], [Effect::Write(Outgoing::User(p))] if p[0]["text"] == "hello"));

    let effects = h.line(answer("Hi there"));
    assert!(matches!(events(&effects)[0], JobEvent::Started { .. }));
    assert!(reports(&effects).is_empty());

    let effects = h.line(result("s1"));
    let report = position(&effects, |e| matches!(e, Effect::Report(_)));
    let finished = position(&effects, |e| {
        matches!(e, Effect::Emit(_, JobEvent::Finished(_)))
    });
    assert!(report < finished, "the pool hears first: {effects:?}");
    // The last event carries the whole answer, built here once.
    match events(&effects).last() {
        Some(JobEvent::Finished(answer)) => {
            assert_eq!(
                answer.content,
                [crate::job::ContentBlock::Text {
                    text: "Hi there".into()
                }]
            );
            assert_eq!(answer.usage.input_tokens, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(reports(&effects)[0].job, Some(Outcome::Succeeded));
    assert_eq!(states(&effects), [clearing()]);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Write(Outgoing::Clear))));

    // `/clear` answers with a new session: a boundary, and idle again.
    let effects = h.line(result("s2"));
    assert!(matches!(effects[0], Effect::Write(Outgoing::Boundary)));
    assert_eq!(states(&effects), [ready()]);
}

#[test]
fn a_clear_that_keeps_the_session_retires_the_worker() {
    let mut h = Harness::booted();
    let (job, _client) = job(spec());
    h.start(job);
    h.line(answer("Hi"));
    h.line(result("s1"));
    let effects = h.line(result("s1"));
    assert_eq!(states(&effects), [WorkerState::Stopping]);
    assert!(matches!(effects.last(), Some(Effect::Terminate(g)) if *g == RETIRE_GRACE));
}

fn conversation(text: &str) -> ConversationKey {
    let turns = [Turn {
        role: Role::User,
        blocks: vec![json!({"type": "text", "text": text})],
    }];
    ConversationKey::new("Be brief.", "m", None, &turns).unwrap()
}

#[test]
fn a_bound_worker_continues_its_conversation_until_unbound() {
    let mut h = Harness::booted();
    let key = conversation("hello");
    let (first, _client) = job(JobSpec {
        conversation: Some(key.clone()),
        ..spec()
    });
    h.start(first);
    h.line(answer("Hi"));
    let effects = h.line(result("s1"));
    let bound = key.after_reply(&[crate::job::ContentBlock::Text { text: "Hi".into() }]);
    assert_eq!(
        states(&effects),
        [WorkerState::Bound {
            holder: holder(),
            conversation: bound
        }]
    );
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::Write(Outgoing::Clear))));

    // The next turn writes only the final message.
    let (next, _client) = job(JobSpec {
        conversation: Some(conversation("and then?")),
        continuation: vec![json!({"type": "text", "text": "and then?"})],
        ..spec()
    });
    assert_eq!(h.start(next)[0]["text"], "and then?");
    h.line(answer("Then this."));
    h.line(result("s1"));

    // Affinity expired: the pool unbinds, the conversation is cleared.
    let effects = h.input(Input::Unbind);
    assert!(matches!(effects[..], [Effect::Write(Outgoing::Clear)]));
    assert!(
        h.input(Input::Unbind).is_empty(),
        "only a bound worker clears"
    );
    let effects = h.line(result("s2"));
    assert_eq!(states(&effects), [ready()]);
}

#[test]
fn workers_are_recycled_after_their_job_quota_or_over_their_memory_limit() {
    let mut h = Harness::booted_with(|s| s.pool.max_jobs_per_worker = 1);
    let (job1, _client) = job(spec());
    h.start(job1);
    let effects = h.line(result("s1"));
    assert_eq!(states(&effects), [WorkerState::Stopping]);
    assert_eq!(reports(&effects)[0].job, Some(Outcome::Succeeded));
    assert!(matches!(effects.last(), Some(Effect::Terminate(g)) if *g == RETIRE_GRACE));

    let mut h = Harness::booted_with(|s| s.pool.max_worker_rss_mb = 150);
    let (job1, _client) = job(spec());
    h.start(job1);
    assert_eq!(states(&h.line(result("s1"))), [clearing()]);
    h.line(result("s2"));
    h.process.rss.set(Some(200 << 20));
    let (job2, _client) = job(spec());
    h.start(job2);
    assert_eq!(states(&h.line(result("s2"))), [WorkerState::Stopping]);
}

#[test]
fn a_job_for_a_busy_worker_is_refused() {
    let mut h = Harness::booted();
    let (first, _client) = job(spec());
    h.start(first);
    let (second, _client2) = job(spec());
    let effects = h.input(Input::Job(second));
    assert_eq!(states(&effects), [WorkerState::Busy(holder())]);
    assert_eq!(reports(&effects)[0].job, Some(Outcome::Failed));
    assert!(matches!(
        events(&effects)[..],
        [JobEvent::Failed(JobError::WorkerCrashed(_))]
    ));
}
