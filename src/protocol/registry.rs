//! The node registry (PROTOCOL sections 1 and 6): who is in the ring, where
//! they are, which of them are marked lost, and who comes next.
//!
//! Pure data, owned by the protocol [`Node`](super::node::Node). Time is
//! passed in (the node's clock, see [`Time`]), so the simulation and the
//! tests drive it with any clock.

use super::message::{Body, Message, Nodes};
use super::token::NodeId;
use super::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    host: Ipv4Addr,
    /// Set when a TCP send to the node failed; the mark expires then.
    lost_until: Option<Time>,
    /// A send to the node failed and nothing was heard from it since. Once
    /// the lost mark expires it is tried again, but a hand-off tries at
    /// most one such node, so members that are down for good cost a round
    /// at most one failed attempt.
    suspect: bool,
    /// Sends that failed in a row, nothing heard in between.
    failures: u32,
    /// A broadcast of it was heard at this host: it shares our broadcast
    /// domain, and our broadcasts reach it.
    broadcast: bool,
}

impl Entry {
    fn at(host: Ipv4Addr) -> Entry {
        Entry { host, lost_until: None, suspect: false, failures: 0, broadcast: false }
    }
}

/// A lost mark lasts `lost_for` (the `waiter` timeout), doubled for every
/// failure in a row up to this many doublings: a member that stays down or
/// stopped is retried less and less often (down to once every 32 `waiter`s); one
/// that comes back is unmarked by its first message (PROTOCOL section 6,
/// step 3: a restarted node broadcasts PING, a silent one searches).
const MAX_BACKOFF_DOUBLINGS: u32 = 5;

/// A node a hand-off may try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: NodeId,
    pub host: Ipv4Addr,
    /// A send to it failed before and it has not been heard from since.
    pub suspect: bool,
}

/// A ring member as the registry reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub host: Ipv4Addr,
    pub lost: bool,
}

/// What [`Registry::observe`] learned from a message's author.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// Our own message (a broadcast that came back): ignore it.
    Own,
    /// A node we did not know; it has been added.
    Newcomer,
    /// A known node.
    Known,
}

/// The most nodes a registry holds; a TAKE_TOKEN table with more is only
/// partly learnt (a hostile table cannot grow the registry without bound).
pub const MAX_NODES: usize = 1024;

/// What section 6 decided about one inbound message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reception {
    /// Hand the message to the state machine (false for our own).
    pub deliver: bool,
    /// The author was not known and has been added.
    pub newcomer: bool,
    /// Answer the author with a unicast PING (a newcomer heard by broadcast).
    pub ping_back: bool,
    /// The author was marked lost or suspect, and no longer is.
    pub unmarked: bool,
    /// Nodes added from a TAKE_TOKEN's table.
    pub learnt: usize,
    /// Entries of that table that are not a valid id and IPv4 address, or
    /// beyond [`MAX_NODES`].
    pub rejected: Vec<(NodeId, String)>,
    /// The author is known at another address: a message claiming another
    /// node's id. Not delivered.
    pub impostor: Option<Ipv4Addr>,
    /// The author was known at this address, which no longer answered: it
    /// restarted at a new one (its id is stable), and the entry follows.
    pub moved_from: Option<Ipv4Addr>,
}

#[derive(Clone, Debug)]
pub struct Registry {
    own_id: NodeId,
    nodes: BTreeMap<NodeId, Entry>,
    lost_for: Duration,
}

impl Registry {
    /// A registry holding only ourselves. Lost marks expire after
    /// `lost_for` (the protocol uses the `waiter` timeout).
    pub fn new(own_id: &str, own_host: Ipv4Addr, lost_for: Duration) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(own_id.to_owned(), Entry::at(own_host));
        Registry { own_id: own_id.to_owned(), nodes, lost_for }
    }

    pub fn own_id(&self) -> &str {
        &self.own_id
    }

    /// PROTOCOL section 6 for one inbound message, before the state acts:
    /// ignore our own, add a newcomer (and answer it with a PING if it was
    /// heard by broadcast), clear its lost mark, learn a TAKE_TOKEN's table.
    pub fn receive<D>(&mut self, message: &Message<D>, from: Ipv4Addr, by_broadcast: bool) -> Reception {
        let mut reception = Reception::default();
        // A message claiming a known node's id from another address is
        // dropped: nodes send everything from their own address. Unless
        // that node stopped answering there (a send failed, nothing heard
        // since): then it restarted at a new address, and the entry moves.
        if let Some(known) = self.host_of(&message.author).filter(|h| *h != from) {
            let entry = self.nodes.get_mut(&message.author).filter(|e| e.suspect && message.author != self.own_id);
            match entry {
                Some(entry) => {
                    *entry = Entry::at(from);
                    reception.moved_from = Some(known);
                }
                None => {
                    reception.impostor = Some(known);
                    return reception;
                }
            }
        }
        reception.unmarked = self.nodes.get(&message.author).is_some_and(|e| e.suspect || e.lost_until.is_some());
        match self.observe(&message.author, from) {
            Observed::Own => return reception,
            Observed::Known => {}
            Observed::Newcomer => {
                reception.newcomer = true;
                reception.ping_back = by_broadcast;
            }
        }
        if let Body::TakeToken { nodes, .. } = &message.body {
            let before = self.nodes.len();
            reception.rejected = self.merge(nodes);
            reception.learnt = self.nodes.len() - before;
        }
        reception.deliver = true;
        reception
    }

    /// Section 6, steps 1 to 3: a message from `author` arrived from `host`.
    pub fn observe(&mut self, author: &str, host: Ipv4Addr) -> Observed {
        if author == self.own_id {
            return Observed::Own;
        }
        match self.nodes.get_mut(author) {
            Some(entry) => {
                entry.lost_until = None;
                entry.suspect = false;
                entry.failures = 0;
                Observed::Known
            }
            None => {
                self.nodes.insert(author.to_owned(), Entry::at(host));
                Observed::Newcomer
            }
        }
    }

    /// Section 6, step 4: add the unknown nodes of a TAKE_TOKEN's table.
    /// A known node that stopped answering (suspect) takes the table's
    /// address if it differs: it restarted elsewhere. Returns the entries
    /// that were skipped because the host is not an IPv4 address or the id
    /// is empty.
    pub fn merge(&mut self, nodes: &Nodes) -> Vec<(NodeId, String)> {
        let mut rejected = Vec::new();
        for (id, host) in nodes {
            if let Some(entry) = self.nodes.get_mut(id) {
                if let Ok(host) = host.parse::<Ipv4Addr>() {
                    if entry.suspect && entry.host != host && *id != self.own_id {
                        *entry = Entry::at(host);
                    }
                }
                continue;
            }
            match host.parse::<Ipv4Addr>() {
                Ok(host) if !id.is_empty() && self.nodes.len() < MAX_NODES => {
                    self.nodes.insert(id.clone(), Entry::at(host));
                }
                _ => rejected.push((id.clone(), host.clone())),
            }
        }
        rejected
    }

    /// A TCP send to `id` failed (section 1).
    /// The mark lasts `lost_for`, longer after repeated failures.
    pub fn mark_lost(&mut self, id: &str, now: Time) {
        if let Some(entry) = self.nodes.get_mut(id) {
            let doublings = entry.failures.min(MAX_BACKOFF_DOUBLINGS);
            entry.lost_until = Some(now + self.lost_for * (1 << doublings));
            entry.suspect = true;
            entry.failures = entry.failures.saturating_add(1);
        }
    }

    fn is_lost(entry: &Entry, now: Time) -> bool {
        entry.lost_until.is_some_and(|until| now < until)
    }

    /// The other nodes in ring order, starting after us and wrapping.
    fn after_us(&self) -> impl Iterator<Item = (&NodeId, &Entry)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let after = self.nodes.range::<str, _>((Excluded(self.own_id.as_str()), Unbounded));
        let before = self.nodes.range::<str, _>((Unbounded, Excluded(self.own_id.as_str())));
        after.chain(before)
    }

    /// The next node after us in ring order that is not marked lost, or
    /// `None` if we are alone.
    pub fn next(&self, now: Time) -> Option<(NodeId, Ipv4Addr)> {
        self.after_us().find(|(_, entry)| !Self::is_lost(entry, now)).map(|(id, entry)| (id.clone(), entry.host))
    }

    /// The node a hand-off tries next: the first after us in ring order
    /// that is not marked lost and was not `tried` in this hand-off, and
    /// not a suspect unless `suspect_allowed`.
    pub fn next_candidate(&self, now: Time, tried: &BTreeSet<NodeId>, suspect_allowed: bool) -> Option<Candidate> {
        self.after_us()
            .find(|(id, entry)| {
                !Self::is_lost(entry, now) && !tried.contains(*id) && (suspect_allowed || !entry.suspect)
            })
            .map(|(id, entry)| Candidate { id: id.clone(), host: entry.host, suspect: entry.suspect })
    }

    /// The table TAKE_TOKEN carries: every node, ourselves included.
    pub fn nodes(&self) -> Nodes {
        self.nodes.iter().map(|(id, e)| (id.clone(), e.host.to_string())).collect()
    }

    /// A broadcast from `id` was heard: our broadcasts reach it (broadcast
    /// domains are symmetric), so it needs no unicast copies.
    pub fn heard_by_broadcast(&mut self, id: &str) {
        if let Some(entry) = self.nodes.get_mut(id) {
            entry.broadcast = true;
        }
    }

    /// The hosts of the other members that broadcasts do not reach: not
    /// heard by broadcast (`all`: every other member), each host once.
    pub fn unicast_hosts(&self, all: bool) -> Vec<Ipv4Addr> {
        let mut hosts: Vec<Ipv4Addr> = self
            .nodes
            .iter()
            .filter(|(id, e)| **id != self.own_id && (all || !e.broadcast))
            .map(|(_, e)| e.host)
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        hosts.retain(|h| Some(*h) != self.host_of(&self.own_id));
        hosts
    }

    /// Whether a member is known at `host`.
    pub fn has_host(&self, host: Ipv4Addr) -> bool {
        self.nodes.values().any(|e| e.host == host)
    }

    pub fn host_of(&self, id: &str) -> Option<Ipv4Addr> {
        self.nodes.get(id).map(|e| e.host)
    }

    /// Every member in ring order.
    pub fn members(&self, now: Time) -> Vec<Member> {
        self.nodes.iter().map(|(id, e)| Member { id: id.clone(), host: e.host, lost: Self::is_lost(e, now) }).collect()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, last)
    }

    fn ring(own: &str, others: &[&str]) -> Registry {
        let mut r = Registry::new(own, ip(1), Duration::from_secs(2));
        for (i, id) in others.iter().enumerate() {
            assert_eq!(r.observe(id, ip(10 + i as u8)), Observed::Newcomer);
        }
        r
    }

    #[test]
    fn own_messages_are_recognised() {
        let mut r = ring("n1", &[]);
        assert_eq!(r.observe("n1", ip(1)), Observed::Own);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn alone_there_is_no_next() {
        let r = ring("n1", &[]);
        assert_eq!(r.next(Time::ZERO), None);
    }

    #[test]
    fn next_is_the_following_id_byte_wise_and_wraps() {
        let now = Time::from_secs(100);
        let r = ring("n2", &["n1", "n3", "n10"]);
        // Byte-wise order: n1 < n10 < n2 < n3.
        assert_eq!(r.next(now).unwrap().0, "n3");
        let r = ring("n3", &["n1", "n2", "n10"]);
        assert_eq!(r.next(now).unwrap().0, "n1");
        let r = ring("n1", &["n2", "n10"]);
        assert_eq!(r.next(now).unwrap().0, "n10");
    }

    #[test]
    fn lost_nodes_are_skipped_until_the_mark_expires() {
        let now = Time::from_secs(100);
        let mut r = ring("a", &["b", "c"]);
        r.mark_lost("b", now);
        assert_eq!(r.next(now).unwrap().0, "c");
        assert_eq!(r.next(now + Duration::from_millis(1999)).unwrap().0, "c");
        assert_eq!(r.next(now + Duration::from_secs(2)).unwrap().0, "b");
    }

    #[test]
    fn repeated_failures_lengthen_the_lost_mark_up_to_32_times() {
        let mut now = Time::from_secs(100);
        let mut r = ring("a", &["b", "c"]);
        for expected_secs in [2, 4, 8, 16, 32, 64, 64] {
            r.mark_lost("b", now);
            let expires = now + Duration::from_secs(expected_secs);
            assert_eq!(r.next(expires - Duration::from_millis(1)).unwrap().0, "c");
            assert_eq!(r.next(expires).unwrap().0, "b");
            now = expires;
        }
        r.observe("b", ip(10));
        r.mark_lost("b", now);
        assert_eq!(r.next(now + Duration::from_secs(2)).unwrap().0, "b", "heard from: back to one period");
    }

    #[test]
    fn any_message_clears_the_lost_mark() {
        let now = Time::from_secs(100);
        let mut r = ring("a", &["b", "c"]);
        r.mark_lost("b", now);
        assert_eq!(r.observe("b", ip(10)), Observed::Known);
        assert_eq!(r.next(now).unwrap().0, "b");
    }

    #[test]
    fn all_others_lost_means_alone() {
        let now = Time::from_secs(100);
        let mut r = ring("a", &["b"]);
        r.mark_lost("b", now);
        assert_eq!(r.next(now), None);
    }

    #[test]
    fn a_hand_off_tries_each_node_once_and_at_most_one_suspect() {
        let now = Time::from_secs(100);
        let mut r = ring("c", &["a", "d", "e"]);
        r.mark_lost("d", now);
        r.mark_lost("e", now);
        let later = now + Duration::from_secs(3); // both marks expired
        let mut tried = BTreeSet::new();
        let first = r.next_candidate(later, &tried, true).unwrap();
        assert_eq!((first.id.as_str(), first.suspect), ("d", true));
        tried.insert(first.id);
        // d failed again: e is a suspect too and is skipped; a is tried.
        let second = r.next_candidate(later, &tried, false).unwrap();
        assert_eq!((second.id.as_str(), second.suspect), ("a", false));
        tried.insert(second.id);
        assert_eq!(r.next_candidate(later, &tried, false), None);
        // Hearing from e clears its suspicion.
        r.observe("e", ip(12));
        assert_eq!(r.next_candidate(later, &tried, false).unwrap().id, "e");
    }

    #[test]
    fn a_message_claiming_a_known_id_from_another_address_is_dropped() {
        let mut r = ring("a", &["b"]);
        let forged = Message::<String>::new("b", Body::Ping);
        let reception = r.receive(&forged, ip(66), true);
        assert_eq!(reception.impostor, Some(ip(10)));
        assert!(!reception.deliver);
        let forged_self = Message::<String>::new("a", Body::Ping);
        assert!(r.receive(&forged_self, ip(66), true).impostor.is_some());
        let genuine = Message::<String>::new("b", Body::Ping);
        assert!(r.receive(&genuine, ip(10), true).deliver);
    }

    #[test]
    fn a_node_that_stopped_answering_at_its_address_may_come_back_at_another() {
        let now = Time::from_secs(100);
        let mut r = ring("a", &["b"]);
        let ping = Message::<String>::new("b", Body::Ping);
        // While b answers at its address, another address is an impostor.
        assert!(r.receive(&ping, ip(66), true).impostor.is_some());
        // A send to b failed: b restarted elsewhere, and the entry follows.
        r.mark_lost("b", now);
        let reception = r.receive(&ping, ip(66), true);
        assert_eq!((reception.impostor, reception.moved_from), (None, Some(ip(10))));
        assert!(reception.deliver);
        assert_eq!(r.host_of("b"), Some(ip(66)));
        assert_eq!(r.next(now).unwrap().0, "b", "not lost at its new address");
        // Our own id never moves.
        let twin = Message::<String>::new("a", Body::Ping);
        assert!(r.receive(&twin, ip(67), true).impostor.is_some());
        // Others learn the new address from a token's table.
        let mut other = ring("c", &["b"]);
        other.mark_lost("b", now);
        let table: Nodes = [("b".to_string(), ip(66).to_string())].into_iter().collect();
        other.merge(&table);
        assert_eq!(other.host_of("b"), Some(ip(66)));
        let mut healthy = ring("c", &["b"]);
        healthy.merge(&table);
        assert_eq!(healthy.host_of("b"), Some(ip(10)), "an answering node is not moved by a table");
    }

    #[test]
    fn a_huge_node_table_is_learnt_only_up_to_the_cap() {
        let mut r = ring("a", &[]);
        let nodes: Nodes = (0..5000).map(|i| (format!("x{i}"), "127.0.0.9".to_string())).collect();
        let rejected = r.merge(&nodes);
        assert_eq!(r.len(), MAX_NODES);
        assert_eq!(rejected.len(), 5000 - (MAX_NODES - 1));
    }

    #[test]
    fn merge_adds_unknown_nodes_and_rejects_bad_hosts() {
        let mut r = ring("a", &["b"]);
        let nodes: Nodes =
            [("a", "9.9.9.9"), ("b", "9.9.9.9"), ("c", "127.0.0.7"), ("d", "not-an-ip"), ("", "127.0.0.8")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let rejected = r.merge(&nodes);
        assert_eq!(rejected.len(), 2);
        assert_eq!(r.host_of("a"), Some(ip(1)), "known entries are not overwritten");
        assert_eq!(r.host_of("b"), Some(ip(10)));
        assert_eq!(r.host_of("c"), Some(ip(7)));
        assert_eq!(r.host_of("d"), None);
        assert_eq!(r.nodes().len(), 3);
    }
}
