//! What a node tells monitors, and when: MY_STATE (PROTOCOL sections 3 and
//! 10, "Monitor reports are paced too").
//!
//! Every change of state goes out at once, except routine hand-offs (the
//! machine says which): those are reported coalesced, at most once per
//! [`COALESCE_EVERY`], as the state then and the holdings count. A ring
//! passing the token thousands of times a second thus sends a bounded
//! number of datagrams to the monitoring port, and every node that held the
//! token still says so within a second.
//!
//! The decisions live here, in the pure core, so that the simulation checks
//! what a monitor sees; the actors only add the clock and the address and
//! send.

use super::machine::{TimerId, TimerKind};
use super::message::{MyState, StateName};
use super::token::{NodeId, Token};
use super::Time;
use crate::pi::Computing;
use std::time::Duration;

/// Routine changes are reported at most this often, coalesced.
pub const COALESCE_EVERY: Duration = Duration::from_secs(1);

/// One MY_STATE as the node decided it; the carrier adds what only it
/// knows ([`Report::into_my_state`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub old: StateName,
    pub new: StateName,
    /// The token (the candidate while generating).
    pub token: Token,
    /// Length of the expansion the node has checked.
    pub progress: usize,
    /// Its last 20 digits.
    pub digits_tail: String,
    pub hops: u64,
    /// Times the node took the token since it started.
    pub holdings: u64,
    pub target_digits: usize,
    /// Who handed the token, when the node entered OWNER by TAKE_TOKEN.
    pub handed_by: Option<NodeId>,
    /// Who took the token, when the node left OWNER by handing it on.
    pub handed_to: Option<NodeId>,
    /// The digits the node is computing now, if any.
    pub computing: Option<Computing>,
}

impl Report {
    /// The wire body, with the time of the change and this life's start
    /// (Unix milliseconds) and the node's address.
    pub fn into_my_state(self, timestamp_ms: u64, started_ms: u64, host: String) -> MyState {
        MyState {
            old_state: self.old.as_wire().to_owned(),
            new_state: self.new.as_wire().to_owned(),
            progress: Some(self.progress as u64),
            token: Some(self.token),
            timestamp_ms: Some(timestamp_ms),
            host: Some(host),
            digits_tail: Some(self.digits_tail),
            hops: Some(self.hops),
            holdings: Some(self.holdings),
            started_ms: Some(started_ms),
            target_digits: Some(self.target_digits as u64),
            handed_by: self.handed_by,
            handed_to: self.handed_to,
            computing_to: self.computing.map(|c| c.digits as u64),
            computing_done: self.computing.map(|c| (c.done * 100.0).clamp(0.0, 99.0) as u8),
            computing_urgent: self.computing.map(|c| c.urgent),
        }
    }
}

/// What to do about a change of state.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Report it now.
    Now,
    /// Report it with the coalesced report: arm the timer.
    Later(TimerId, Duration),
    /// A coalesced report is already due.
    Wait,
}

/// The pacing of one node's reports.
#[derive(Debug, Default)]
pub struct Reporter {
    /// When the last report went out, with the state and holdings it told.
    last: Option<(Time, StateName, u64)>,
    /// The coalesced report's timer, while one is due.
    due: Option<u64>,
    seq: u64,
}

impl Reporter {
    /// A change of state at `now`; `routine` ones may wait.
    pub fn changed(&mut self, now: Time, routine: bool) -> Decision {
        if !routine {
            return Decision::Now;
        }
        if self.due.is_some() {
            return Decision::Wait;
        }
        let since = self.last.map_or(COALESCE_EVERY, |(at, ..)| now.saturating_sub(at));
        self.seq += 1;
        self.due = Some(self.seq);
        Decision::Later(TimerId { kind: TimerKind::Report, seq: self.seq }, COALESCE_EVERY.saturating_sub(since))
    }

    /// A report went out at `now`, telling `state` and `holdings`: a due
    /// coalesced report is no longer needed (its timer is cancelled).
    pub fn sent(&mut self, now: Time, state: StateName, holdings: u64) -> bool {
        self.last = Some((now, state, holdings));
        self.due.take().is_some()
    }

    /// The state the last report told.
    pub fn last_state(&self) -> Option<StateName> {
        self.last.map(|(_, state, _)| state)
    }

    /// What the node computes changed at `now` (from `before` to `after`):
    /// whether to report it. A computation that starts or ends is told at
    /// once; its progress at most once per [`COALESCE_EVERY`] (any other
    /// report carries it too).
    pub fn computing(&mut self, now: Time, before: Option<Computing>, after: Option<Computing>) -> bool {
        match (before, after) {
            (None, None) => false,
            (Some(b), Some(a)) if b.digits == a.digits && b.urgent == a.urgent => {
                self.last.is_none_or(|(at, ..)| now.saturating_sub(at) >= COALESCE_EVERY)
            }
            _ => true,
        }
    }

    /// The coalesced report's timer fired: whether to report (the state or
    /// the holdings changed since the last report).
    pub fn fired(&mut self, timer: TimerId, state: StateName, holdings: u64) -> bool {
        if self.due != Some(timer.seq) {
            return false;
        }
        self.due = None;
        self.last.is_none_or(|(_, s, h)| (s, h) != (state, holdings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn computing(digits: usize, done: f64) -> Option<Computing> {
        Some(Computing { digits, done, urgent: true })
    }

    #[test]
    fn a_computation_is_told_when_it_starts_and_ends_and_its_progress_once_a_second() {
        let mut r = Reporter::default();
        let s = Duration::from_secs(1);
        assert!(!r.computing(s, None, None));
        assert!(r.computing(s, None, computing(1_000, 0.0)), "starts");
        r.sent(s, StateName::Owner, 1);
        assert!(!r.computing(s + s / 2, computing(1_000, 0.0), computing(1_000, 0.5)), "half a second later");
        assert!(r.computing(s * 2, computing(1_000, 0.5), computing(1_000, 0.9)), "a second later");
        assert!(r.computing(s + s / 2, computing(1_000, 0.5), computing(2_000, 0.0)), "another size");
        assert!(r.computing(s + s / 2, computing(1_000, 0.5), None), "ends");
    }
}
