//! `stop_sequences` (OpenAI `stop`), applied by the daemon: the CLI has no
//! per-turn stop sequences, so the text stream is watched instead. Text that
//! might be the start of a stop sequence is held back until it is known not
//! to be; when a stop sequence completes, the text before it is released and
//! the job ends there (the worker then interrupts the rest of the turn).

use crate::job::{Delta, JobEvent};

/// Watches one job's text for its stop sequences.
#[derive(Debug)]
pub struct StopWatch {
    sequences: Vec<String>,
    /// Text withheld because it may begin a stop sequence, and its block.
    held: Option<(usize, String)>,
}

/// What the watch saw in an event.
#[derive(Debug, PartialEq)]
pub enum Watched {
    /// Pass these events on.
    Continue(Vec<JobEvent>),
    /// A stop sequence completed: pass these events (the text before it),
    /// then end the job with `stop_reason: "stop_sequence"`.
    Stop {
        events: Vec<JobEvent>,
        index: usize,
        sequence: String,
    },
}

impl StopWatch {
    /// `None` when there is nothing to watch for.
    pub fn new(sequences: &[String]) -> Option<Self> {
        let sequences: Vec<String> = sequences
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        (!sequences.is_empty()).then_some(Self {
            sequences,
            held: None,
        })
    }

    fn release(&mut self) -> Vec<JobEvent> {
        match self.held.take() {
            Some((index, text)) if !text.is_empty() => vec![text_delta(index, text)],
            _ => Vec::new(),
        }
    }

    /// Passes an event through the watch.
    pub fn watch(&mut self, event: JobEvent) -> Watched {
        let (index, text) = match event {
            JobEvent::BlockDelta {
                index,
                delta: Delta::Text { text },
            } => (index, text),
            other => {
                // Anything else ends the text held so far.
                let mut events = self.release();
                events.push(other);
                return Watched::Continue(events);
            }
        };
        let mut events = Vec::new();
        let mut buffer = match self.held.take() {
            Some((held_index, held)) if held_index == index => held,
            other => {
                self.held = other;
                events.extend(self.release());
                String::new()
            }
        };
        buffer.push_str(&text);
        if let Some((at, sequence)) = self.first_match(&buffer) {
            if at > 0 {
                events.push(text_delta(index, buffer[..at].to_string()));
            }
            return Watched::Stop {
                events,
                index,
                sequence,
            };
        }
        let split = buffer.len() - self.partial_suffix(&buffer);
        if split < buffer.len() {
            self.held = Some((index, buffer[split..].to_string()));
        }
        if split > 0 {
            events.push(text_delta(index, buffer[..split].to_string()));
        }
        Watched::Continue(events)
    }

    /// The earliest complete stop sequence in `text`, and where it starts.
    fn first_match(&self, text: &str) -> Option<(usize, String)> {
        self.sequences
            .iter()
            .filter_map(|seq| text.find(seq.as_str()).map(|at| (at, seq.clone())))
            .min_by_key(|(at, _)| *at)
    }

    /// Length of the longest end of `text` that begins some stop sequence.
    fn partial_suffix(&self, text: &str) -> usize {
        let mut best = 0;
        for seq in &self.sequences {
            for (start, _) in text.char_indices() {
                let tail = &text[start..];
                if tail.len() < seq.len() && seq.starts_with(tail) {
                    best = best.max(tail.len());
                    break;
                }
            }
        }
        best
    }
}

fn text_delta(index: usize, text: String) -> JobEvent {
    JobEvent::BlockDelta {
        index,
        delta: Delta::Text { text },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> JobEvent {
        text_delta(0, text.into())
    }

    fn run(sequences: &[&str], pieces: &[&str]) -> (String, Option<String>) {
        let seqs: Vec<String> = sequences.iter().map(|s| s.to_string()).collect();
        let mut watch = StopWatch::new(&seqs).unwrap();
        let mut out = String::new();
        let collect = |events: Vec<JobEvent>, out: &mut String| {
            for e in events {
                if let JobEvent::BlockDelta {
                    delta: Delta::Text { text },
                    ..
                } = e
                {
                    out.push_str(&text);
                }
            }
        };
        for piece in pieces {
            match watch.watch(t(piece)) {
                Watched::Continue(events) => collect(events, &mut out),
                Watched::Stop {
                    events, sequence, ..
                } => {
                    collect(events, &mut out);
                    return (out, Some(sequence));
                }
            }
        }
        if let Watched::Continue(events) = watch.watch(JobEvent::BlockStop { index: 0 }) {
            collect(events, &mut out);
        }
        (out, None)
    }

    #[test]
    fn stops_at_a_sequence_split_across_deltas() {
        assert_eq!(
            run(&["END"], &["one two E", "N", "D three"]),
            ("one two ".into(), Some("END".into()))
        );
        assert_eq!(
            run(&["\n\n"], &["a\n", "\nb"]),
            ("a".into(), Some("\n\n".into()))
        );
    }

    #[test]
    fn the_earliest_sequence_wins_and_near_misses_pass() {
        assert_eq!(
            run(&["xyz", "b"], &["a b xyz"]),
            ("a ".into(), Some("b".into()))
        );
        assert_eq!(run(&["END"], &["EN", "gine"]), ("ENgine".into(), None));
        assert_eq!(
            run(&["END"], &["the EN"]),
            ("the EN".into(), None),
            "released at block end"
        );
    }

    #[test]
    fn empty_sequences_mean_no_watch() {
        assert!(StopWatch::new(&[String::new()]).is_none());
        assert!(StopWatch::new(&[]).is_none());
    }
}
