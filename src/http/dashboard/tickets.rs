//! One-time tickets that open `/admin/events`. A browser's `EventSource`
//! cannot send headers, and the admin key must never travel in a URL (URLs
//! end up in access logs, proxies' logs and the browser's history), so the
//! page trades its key, in a header, for a random ticket that works once,
//! within [`TTL`].
// std::time::Instant here: a ticket's wall-clock lifetime (its own `now` input in tests).
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a ticket may wait to be used.
pub const TTL: Duration = Duration::from_secs(60);

/// Most tickets outstanding at once; the oldest go first beyond it.
const MAX_OUTSTANDING: usize = 256;

/// The tickets handed out and not yet used, with when each expires.
#[derive(Debug, Default)]
pub struct Tickets {
    open: Mutex<HashMap<String, Instant>>,
}

impl Tickets {
    /// A new ticket, valid once within [`TTL`].
    pub fn issue(&self) -> String {
        self.issue_at(Instant::now())
    }

    fn issue_at(&self, now: Instant) -> String {
        let ticket = uuid::Uuid::new_v4().simple().to_string();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, expires| *expires > now);
        if open.len() >= MAX_OUTSTANDING {
            if let Some(oldest) = open.iter().min_by_key(|(_, e)| **e).map(|(t, _)| t.clone()) {
                open.remove(&oldest);
            }
        }
        open.insert(ticket.clone(), now + TTL);
        ticket
    }

    /// Uses `ticket`: true if it was handed out, unused and unexpired.
    /// Either way it cannot be used again.
    pub fn redeem(&self, ticket: &str) -> bool {
        self.redeem_at(ticket, Instant::now())
    }

    fn redeem_at(&self, ticket: &str, now: Instant) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(ticket).is_some_and(|expires| expires > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once_and_not_after_it_expires() {
        let tickets = Tickets::default();
        let now = Instant::now();
        let once = tickets.issue_at(now);
        assert!(tickets.redeem_at(&once, now));
        assert!(!tickets.redeem_at(&once, now), "single use");
        let late = tickets.issue_at(now);
        assert!(!tickets.redeem_at(&late, now + TTL + Duration::from_secs(1)));
        assert!(!tickets.redeem_at("made-up", now));
        let a = tickets.issue_at(now);
        assert_ne!(a, tickets.issue_at(now), "random");
    }

    #[test]
    fn outstanding_tickets_are_bounded() {
        let tickets = Tickets::default();
        let now = Instant::now();
        let first = tickets.issue_at(now);
        for i in 0..MAX_OUTSTANDING {
            tickets.issue_at(now + Duration::from_millis(i as u64 + 1));
        }
        assert!(tickets.open.lock().unwrap().len() <= MAX_OUTSTANDING);
        assert!(!tickets.redeem_at(&first, now), "the oldest went first");
    }
}
