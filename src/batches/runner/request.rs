//! One batch request run as a job: offered to the dispatcher as the key
//! that made its batch, and its outcome (a result, or back to the queue
//! when the upstream is overloaded or no worker took it) recorded.

use super::*;

impl Runner {
    /// Offers one request to the dispatcher. False if it had no worker.
    pub(super) async fn start_one(&self, claim: Claim) -> Result<bool, StoreError> {
        let (seq, idx) = (claim.batch_seq, claim.idx);
        let id = format!("{}/{}", claim.batch_id, claim.custom_id);
        let settings = self.settings.get();
        let prepared = attribution::caller_of(
            self.keys.as_deref(),
            &settings,
            &claim.owner,
            &claim.batch_id,
        )
        .and_then(|caller| {
            // Params were validated when the batch was created; a daemon
            // upgrade might still refuse them.
            let (spec, meta) = self
                .spec_for(&claim, &caller)
                .map_err(|message| ("invalid_request_error", message))?;
            attribution::check_model(&caller, &spec.model)?;
            Ok((caller, spec, meta))
        });
        let (caller, spec, meta) = match prepared {
            Ok(prepared) => prepared,
            Err((kind, message)) => {
                // It fails alone, without running.
                log::info!("[{id}] not run: {message}");
                let body = json!({"type": "error", "error": {"type": kind, "message": message}});
                // One transaction: a failed write leaves it queued, to be
                // tried again, never running with no result on the way.
                self.store
                    .call(move |c| {
                        let tx = c.transaction()?;
                        queue::mark_running(&tx, seq, idx)?;
                        let outcome = Outcome::Errored(errored(&body));
                        queue::record_in(&tx, seq, idx, &outcome, now_ms())?;
                        tx.commit()
                    })
                    .await?;
                return Ok(true);
            }
        };
        let record_content = self
            .ledger
            .as_ref()
            .is_some_and(|l| l.settings().record_content);
        let placed = Placed::default();
        let node = settings.server.node_id();
        let trail = Trail::start(
            attribution::row(id.clone(), &claim.batch_id, &caller, &spec.model, node),
            placed.clone(),
            record_content.then(|| claim.params.clone()),
        );
        // Recorded before it runs: a start the store cannot take is not
        // run (and paid for) at all.
        if !self
            .store
            .call(move |c| queue::mark_running(c, seq, idx))
            .await?
        {
            log::debug!("[{id}] no longer queued (canceled or expired)");
            return Ok(true);
        }
        self.store_works();
        let (mut job, events) = Job::new(id.clone(), spec);
        job.placed = placed;
        let job = job.with_caller(caller);
        match self.dispatcher.send(RunIfIdle(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                // No worker after all: back to the queue, uncounted.
                if let Err(e) = self.write(seq, idx, Change::Requeue).await {
                    self.owe(Owed {
                        id,
                        seq,
                        idx,
                        change: Change::Requeue,
                    });
                    return Err(e);
                }
                return Ok(false);
            }
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        actix_rt::spawn(self.clone().collect(id, seq, idx, meta, events, trail));
        Ok(true)
    }

    /// The job for a stored request: as `/v1/messages` would run it, except
    /// that nothing continues it: it never stays bound to its conversation,
    /// nor parks on tool calls. It runs as `caller`: in its scope, and as
    /// an agent job only if the key may use agent mode.
    pub(super) fn spec_for(
        &self,
        claim: &Claim,
        caller: &Caller,
    ) -> Result<(JobSpec, MessageMeta), String> {
        let (params, agent) = crate::api::batches::stored_params(&claim.params)?;
        let request = MessagesRequest::parse(&params).map_err(|e| e.0)?;
        let settings = self.settings.get();
        let ctx = Context {
            default_model: settings.claude.default_model.clone(),
            agent_allowed: settings.agent.enabled && agent && caller.agent,
            scope: caller.scope.clone(),
            ..Context::default()
        };
        let meta = MessageMeta::new(request.response_model(&ctx.default_model));
        let mut spec = request.to_spec(&ctx);
        spec.conversation = None;
        spec.background = true;
        Ok((spec, meta))
    }

    /// Waits for a job's outcome and records it, and its ledger row.
    pub(super) async fn collect(
        self,
        id: String,
        seq: i64,
        idx: i64,
        meta: MessageMeta,
        mut events: UnboundedReceiver<JobEvent>,
        mut trail: Trail,
    ) {
        let outcome = loop {
            match events.recv().await {
                Some(event) => {
                    trail.observe(&event);
                    if let Some(outcome) = event.into_outcome() {
                        break Some(outcome);
                    }
                }
                None => break None,
            }
        };
        drop(events);
        // One row a request that ended (not for a run the daemon requeues:
        // it runs again and leaves its row then).
        let ledger_row = |trail: Trail, error: Option<&JobError>| {
            if let Some(ledger) = &self.ledger {
                ledger.record(attribution::ended(trail, error));
            }
        };
        let outcome = match outcome {
            Some(Ok(answer)) => {
                if let Some(count) = &self.tokens {
                    count(&answer.usage);
                }
                ledger_row(trail, None);
                Some(Outcome::Succeeded(succeeded(&anthropic::message_body(
                    &meta, &answer,
                ))))
            }
            Some(Err(_)) | None if self.is_stopping() => None,
            Some(Err(JobError::ShuttingDown)) => None,
            Some(Err(error)) if is_overload(&error) => {
                // Not the request's fault: it waits for capacity (until its
                // batch expires), and batch work pauses a while.
                log::info!("[{id}] {error}; queued again, batch work pauses {OVERLOAD_PAUSE:?}");
                *self.paused_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(tokio::time::Instant::now() + OVERLOAD_PAUSE);
                None
            }
            Some(Err(error)) => {
                ledger_row(trail, Some(&error));
                Some(error_outcome(error))
            }
            None => {
                let error = JobError::WorkerCrashed(
                    "the worker stopped without finishing the request".into(),
                );
                ledger_row(trail, Some(&error));
                Some(error_outcome(error))
            }
        };
        let change = match outcome {
            Some(outcome) => Change::Record(outcome),
            None => {
                log::debug!("[{id}] queued again");
                Change::Requeue
            }
        };
        match self.write(seq, idx, change.clone()).await {
            Ok(_) => self.store_works(),
            Err(e) => {
                // Never dropped: a restart would run the request again (a
                // second paid call for an answer already received).
                log::error!(
                    "[{id}] result not written yet ({e}): kept until the store takes writes again"
                );
                self.store_failed("writing a result", &e);
                self.owe(Owed {
                    id,
                    seq,
                    idx,
                    change,
                });
            }
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Upstream rate limits and overload: a reason to wait, not to fail.
pub(super) fn is_overload(error: &JobError) -> bool {
    matches!(
        error,
        JobError::Upstream {
            status: Some(429 | 529),
            ..
        } | JobError::RateLimited { .. }
    )
}

/// An `errored` result with the error body `/v1/messages` would answer.
pub(super) fn error_outcome(error: JobError) -> Outcome {
    Outcome::Errored(errored(
        &ApiError::from_job(error, Dialect::Anthropic).anthropic_body(),
    ))
}
