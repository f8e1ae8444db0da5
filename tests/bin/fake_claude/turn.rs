//! One conversation turn and what it may become on demand: an upstream
//! error, an interrupted or aborted answer, a hang, a crash, garbage or a
//! flood; its result line and stream events.

use super::*;

impl Fake {
    /// One conversation turn for a prompt whose texts are `all`.
    pub(super) fn turn(&mut self, all: &str, last: &str) {
        self.turns += 1;
        self.history.push(last.to_string());
        if let Some(mib) = marker_arg(all, "flood") {
            let padding = "x".repeat(usize::try_from(mib << 20).unwrap_or(usize::MAX));
            emit!("type": "flood_event", "padding": padding);
        }
        if all.contains("[[stderr-bytes]]") {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(b"fake-claude: \xff\xfe not UTF-8\n");
            let _ = stderr.write_all(b"fake-claude: stderr after the bad bytes\n");
            let _ = stderr.flush();
        }
        if all.contains("[[garbage]]") {
            print_line("[SandboxDebug] noise");
            print_line(r#"{"type":"brand_new_event","x":1}"#);
            emit!("type": "huge_unknown_event", "padding": ("x".repeat(2 << 20)));
        }
        self.init();
        emit!("type": "system", "subtype": "status", "status": "requesting",
            "uuid": (uuid()), "session_id": (self.session_id));
        if let Some(status) = marker_arg(all, "error") {
            return self.api_error(status);
        }

        let mut reply = if all.contains("[[history]]") {
            self.history.join(" | ")
        } else if all.contains("[[system]]") {
            let system = self.system_prompt.as_deref();
            system.unwrap_or("(no system prompt)").to_string()
        } else {
            format!(
                "fake reply #{}: {}",
                self.turns,
                last.chars().take(200).collect::<String>()
            )
        };
        if all.contains("[[orphan]]") {
            reply.push_str(&format!(" orphan-pid={}", spawn_orphan()));
        }
        let delay = marker_arg(all, "slow");
        if delay.is_some() {
            for n in reply.split_whitespace().count()..20 {
                reply.push_str(&format!(" word{n}"));
            }
        }
        let pieces = word_pieces(&reply);
        let output_tokens = reply.split_whitespace().count() as u64;

        let id = format!("msg_fake_{}", MESSAGES.fetch_add(1, Ordering::Relaxed) + 1);
        let start_usage = usage(all.split_whitespace().count() as u64 + 10, 1);
        let model = self.model.clone();
        let message = |text: &str| {
            json!({"id": id, "type": "message", "role": "assistant",
                "content": [{"type": "text", "text": text}], "model": model,
                "stop_reason": null, "stop_sequence": null, "usage": start_usage,
                "context_management": null})
        };
        let mut opening = message("");
        opening["content"] = json!([]);
        self.event(json!({"type": "message_start", "message": opening}));
        if all.contains("[[hang]]") {
            loop {
                std::thread::park();
            }
        }
        self.event(json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}));
        let mut partial = String::new();
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 && self.wait(delay.unwrap_or(0)) {
                return self.aborted(message(&partial));
            }
            self.event(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}}));
            partial.push_str(piece);
            if all.contains("[[crash]]") {
                std::process::exit(3);
            }
        }
        emit!("type": "assistant", "message": (message(&reply)), "parent_tool_use_id": null,
            "session_id": (self.session_id), "uuid": (uuid()));
        self.event(json!({"type": "content_block_stop", "index": 0}));
        self.event(json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}));
        self.event(json!({"type": "message_stop"}));
        let total = usage(
            start_usage["input_tokens"].as_u64().unwrap_or(0),
            output_tokens,
        );
        self.result(1, &reply, total);
        if all.contains("[[exit]]") {
            std::process::exit(0);
        }
    }

    /// The turn as the CLI ends it when the upstream answered `status`.
    pub(super) fn api_error(&self, status: u64) {
        let text = format!("API Error: {status} fake error");
        let kind = match status {
            429 => "rate_limit",
            401 => "authentication_failed",
            500.. => "server_error",
            _ => "unknown",
        };
        emit!("type": "assistant",
            "message": {"id": (uuid()), "model": "<synthetic>", "role": "assistant",
                "stop_reason": "stop_sequence", "stop_sequence": "", "type": "message",
                "usage": (usage(0, 0)), "content": [{"type": "text", "text": text}],
                "context_management": null},
            "parent_tool_use_id": null, "session_id": (self.session_id), "uuid": (uuid()),
            "error": kind);
        emit!("type": "result", "subtype": "success", "is_error": true,
            "api_error_status": status, "duration_ms": 1, "duration_api_ms": 0,
            "num_turns": 1, "result": text, "stop_reason": "stop_sequence",
            "session_id": (self.session_id), "total_cost_usd": 0, "usage": (usage(0, 0)),
            "modelUsage": {}, "permission_denials": [], "terminal_reason": "completed",
            "fast_mode_state": "off", "uuid": (uuid()));
    }

    /// The end of a turn interrupted mid-stream, after the interrupt's reply.
    pub(super) fn aborted(&self, partial: Value) {
        emit!("type": "assistant", "message": partial, "parent_tool_use_id": null,
            "session_id": (self.session_id), "uuid": (uuid()));
        emit!("type": "user",
            "message": {"role": "user", "content": [{"type": "text", "text": INTERRUPTED}]},
            "parent_tool_use_id": null, "session_id": (self.session_id), "uuid": (uuid()),
            "timestamp": TIMESTAMP);
        emit!("type": "result", "subtype": "error_during_execution", "duration_ms": 1,
            "duration_api_ms": 0, "is_error": true, "num_turns": 2, "stop_reason": null,
            "session_id": (self.session_id), "total_cost_usd": 0, "usage": (usage(0, 0)),
            "modelUsage": {}, "permission_denials": [], "terminal_reason": "aborted_streaming",
            "fast_mode_state": "off", "uuid": (uuid()),
            "errors": ["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"]);
    }

    /// A successful `result`: a completed turn, or `/clear` (0 turns, no stop reason).
    pub(super) fn result(&self, num_turns: u32, text: &str, usage: Value) {
        let stop_reason = (num_turns > 0).then_some("end_turn");
        emit!("type": "result", "subtype": "success", "is_error": false,
            "api_error_status": null, "duration_ms": 1, "duration_api_ms": 1,
            "num_turns": num_turns, "result": text, "stop_reason": stop_reason,
            "session_id": (self.session_id), "total_cost_usd": 0, "usage": usage,
            "modelUsage": {}, "permission_denials": [], "terminal_reason": "completed",
            "fast_mode_state": "off", "uuid": (uuid()));
    }

    pub(super) fn event(&self, event: Value) {
        emit!("type": "stream_event", "event": event, "session_id": (self.session_id),
            "parent_tool_use_id": null, "uuid": (uuid()));
    }

    /// Waits `ms` while serving stdin: control requests are answered, user
    /// messages queued. True when an interrupt arrived.
    pub(super) fn wait(&mut self, ms: u64) -> bool {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.eof {
                std::thread::sleep(left);
                return false;
            }
            match self.rx.recv_timeout(left) {
                Ok(Some(m)) if m["type"] == "control_request" => {
                    if self.control(&m) {
                        return true;
                    }
                }
                Ok(Some(m)) if m["type"] == "user" => self.pending.push_back(m),
                Ok(Some(_)) => {}
                Ok(None) | Err(RecvTimeoutError::Disconnected) => self.eof = true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}
