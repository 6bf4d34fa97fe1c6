//! What the space-time view draws: every message the monitor heard that
//! shows the protocol at work, in order, as small events (a node's change of
//! state, a heartbeat, a search, a claim, a PING), each numbered, in a
//! bounded buffer that the page reads from (`/api/trace`).
//!
//! Conclusions (incidents) are not repeated here: the page has them from
//! `/api/incidents` and the event stream.

use crate::protocol::{Body, Message, NodeId, StateName};
use serde::Serialize;
use std::collections::VecDeque;
use tokio::time::Instant;

/// Events a live monitor keeps: at most a few hundred a second reach it
/// even from 250 nodes passing the token as fast as they can (hand-offs
/// are reported coalesced), so this is minutes of history.
pub const LIVE_CAPACITY: usize = 200_000;

/// The most events one `/api/trace` answer carries.
pub const MAX_ANSWER: usize = 50_000;

/// One event of the view.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "k")]
pub enum What {
    /// A change of state (MY_STATE): `o` to `s`, with the node's holdings
    /// count, the token's progress, and the hand-off if there was one.
    #[serde(rename = "s")]
    State {
        #[serde(serialize_with = "state_name")]
        o: StateName,
        #[serde(serialize_with = "state_name")]
        s: StateName,
        #[serde(skip_serializing_if = "Option::is_none")]
        h: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        p: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<NodeId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<NodeId>,
        /// Digits the node computes pi to now, and percent done (the
        /// view marks the stretch on its lane).
        #[serde(skip_serializing_if = "Option::is_none")]
        c: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cd: Option<u8>,
    },
    /// TOKEN_IS_HERE: the holder's heartbeat.
    #[serde(rename = "hb")]
    Heartbeat { p: u64 },
    /// WHERE_IS_TOKEN: a search, broadcast to every lane.
    #[serde(rename = "w")]
    Search,
    /// GENERATING_TOKEN: a claim, broadcast to every lane.
    #[serde(rename = "g")]
    Claim { p: u64 },
    /// PING: a node announcing itself.
    #[serde(rename = "p")]
    Ping,
}

/// States as the page names them (`OWNER`, `WAITER`, ...).
fn state_name<S: serde::Serializer>(state: &StateName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&state.to_string())
}

/// One event as heard.
#[derive(Clone, Debug)]
pub struct Event {
    pub seq: u64,
    pub at: Instant,
    pub node: NodeId,
    pub what: What,
}

/// The bounded buffer of events.
#[derive(Debug)]
pub struct Trace {
    events: VecDeque<Event>,
    capacity: usize,
    next_seq: u64,
}

impl Trace {
    pub fn new(capacity: usize) -> Self {
        Trace { events: VecDeque::new(), capacity: capacity.max(1), next_seq: 0 }
    }

    /// Note `message` heard at `now`, if the view draws it.
    pub fn hear(&mut self, message: &Message, now: Instant) {
        let what = match &message.body {
            Body::MyState(state) => {
                let name = |s: &str| StateName::from_wire(s).unwrap_or(StateName::None);
                What::State {
                    o: name(&state.old_state),
                    s: name(&state.new_state),
                    h: state.holdings,
                    p: state.token.as_ref().map(|t| t.progress).or(state.progress),
                    by: state.handed_by.clone(),
                    to: state.handed_to.clone(),
                    c: state.computing_to,
                    cd: state.computing_to.and(state.computing_done),
                }
            }
            Body::TokenIsHere { token } => What::Heartbeat { p: token.progress },
            Body::WhereIsToken => What::Search,
            Body::GeneratingToken { token } => What::Claim { p: token.progress },
            Body::Ping => What::Ping,
            Body::TokenWasHereRecently | Body::TakeToken { .. } => return,
        };
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(Event { seq: self.next_seq, at: now, node: message.author.clone(), what });
        self.next_seq += 1;
    }

    /// Events numbered after `seq` (all with `None`), at most `limit`, the
    /// oldest first.
    pub fn after(&self, seq: Option<u64>, limit: usize) -> impl Iterator<Item = &Event> {
        let first = self.events.front().map_or(0, |e| e.seq);
        let skip = seq.map_or(0, |s| (s + 1).saturating_sub(first)) as usize;
        self.events.iter().skip(skip).take(limit)
    }

    /// Events heard from `from` to `to`, at most `limit` (the latest ones
    /// when there are more).
    pub fn between(&self, from: Instant, to: Instant, limit: usize) -> impl Iterator<Item = &Event> {
        let start = self.events.partition_point(|e| e.at < from);
        let end = self.events.partition_point(|e| e.at <= to);
        let start = start.max(end.saturating_sub(limit));
        self.events.range(start..end.max(start))
    }

    /// The number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Token;
    use std::time::Duration;

    fn heartbeat(id: &str) -> Message {
        Message::new(id, Body::TokenIsHere { token: Token::new(42, id, 1) })
    }

    #[test]
    fn the_trace_keeps_the_latest_events_within_its_capacity() {
        let t0 = Instant::now();
        let mut trace = Trace::new(3);
        for i in 0..5u64 {
            trace.hear(&heartbeat(&format!("n{i}")), t0 + Duration::from_millis(i));
        }
        assert_eq!(trace.len(), 3);
        let seqs: Vec<u64> = trace.after(None, 10).map(|e| e.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        let seqs: Vec<u64> = trace.after(Some(2), 10).map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4]);
        let seqs: Vec<u64> = trace.after(Some(0), 1).map(|e| e.seq).collect();
        assert_eq!(seqs, vec![2], "events already dropped are skipped");
        let seqs: Vec<u64> =
            trace.between(t0 + Duration::from_millis(3), t0 + Duration::from_millis(3), 10).map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3]);
        assert_eq!(trace.between(t0, t0 + Duration::from_secs(1), 1).map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn answers_by_tcp_are_not_heard_and_not_drawn() {
        let mut trace = Trace::new(10);
        trace.hear(&Message::new("a", Body::TokenWasHereRecently), Instant::now());
        assert!(trace.is_empty());
        trace.hear(&Message::new("a", Body::WhereIsToken), Instant::now());
        assert_eq!(trace.after(None, 10).next().map(|e| e.what.clone()), Some(What::Search));
    }
}
