//! The node registry (PROTOCOL sections 1 and 6): who is in the ring, where
//! they are, which of them are marked lost, and who comes next.
//!
//! Pure data, owned by the protocol [`Node`](super::node::Node). Time is
//! passed in (the node's clock, see [`Time`]), so the simulation and the
//! tests drive it with any clock.
//!
//! Anything on the LAN can talk to a node, so the registry keeps what it
//! learns from the network bounded and earned (PROTOCOL section 10,
//! "Membership from the network"):
//!
//! - **One id per address.** Every node of a ring listens on the same TCP
//!   port, so two ids at one IPv4 address cannot both be reached: a new id
//!   heard from a member's address replaces it (a restart under a new id),
//!   and tables cannot add a second one.
//! - **One cap** ([`MAX_NODES`]) for members from any source; a newcomer
//!   heard directly evicts the least proven, longest-unheard member first.
//! - **Evidence.** A member is *heard* when a message came from its address,
//!   and *proven* when its TCP port accepted a connection of ours (a
//!   hand-off or a PING, which every newcomer and every member learnt from
//!   a table gets once). Only proven members are handed the token. Members
//!   known only from a token's table get no unicast copies until they are
//!   heard or proven; tables are learnt only from proven members and seeds,
//!   and only proven members are passed on in our own tables.
//! - **Ageing.** A member that failed and was not heard from since, or was
//!   never proven and not heard from, is forgotten after
//!   [`forget_after`](Registry::forget_after); one never proven is PINGed
//!   again, backing off like a lost mark, until then.

use super::message::{Body, Message, Nodes};
use super::token::NodeId;
use super::Time;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// Sends that failed in a row, nothing heard in between; and when the
    /// first of them failed.
    failures: u32,
    failing_since: Option<Time>,
    /// When we last tried to reach it and could not (a send failed), or
    /// PINGed it in the background since ([`Registry::due_for_recheck`]).
    tried_at: Option<Time>,
    /// A broadcast of it was heard at this host: it shares our broadcast
    /// domain, and our broadcasts reach it.
    broadcast: bool,
    /// The last message from its address.
    heard_at: Option<Time>,
    /// Its TCP port accepted a connection of ours.
    proven: bool,
    /// It took a hand-off of ours, or handed us the token: a member that
    /// passes the token, not only one whose port accepts connections.
    established: bool,
    /// Known only from a table, and a PING to prove it is due.
    probe_due: bool,
    /// The last evidence of it: heard, proven, or learnt.
    evidence: Time,
    /// It said `have` (a pi-ring node: it takes delta hand-offs), and how
    /// many characters of the expansion it has at least: what it said
    /// last (less after a restart), or more since we handed it more.
    has: Option<usize>,
}

impl Entry {
    fn heard(host: Ipv4Addr, now: Time) -> Entry {
        Entry {
            host,
            lost_until: None,
            suspect: false,
            failures: 0,
            failing_since: None,
            tried_at: None,
            broadcast: false,
            heard_at: Some(now),
            proven: false,
            established: false,
            probe_due: false,
            evidence: now,
            has: None,
        }
    }

    fn from_table(host: Ipv4Addr, now: Time) -> Entry {
        Entry { heard_at: None, probe_due: true, ..Entry::heard(host, now) }
    }

    /// As a registry that takes every member as proven keeps it.
    fn permissive(self, permissive: bool) -> Entry {
        if permissive {
            Entry { proven: true, established: true, probe_due: false, ..self }
        } else {
            self
        }
    }

    /// Heard or proven: something of ours reached it, or of its reached us.
    fn direct(&self) -> bool {
        self.heard_at.is_some() || self.proven
    }

    /// How readily it is evicted when the registry is full: members never
    /// proven first, then those unheard the longest.
    fn keep_rank(&self) -> (bool, bool, Time) {
        (self.proven, self.direct(), self.evidence)
    }
}

/// A lost mark lasts `lost_for` (the `waiter` timeout), doubled for every
/// failure in a row up to this many doublings: a member that stays down or
/// stopped is retried less and less often (down to once every 32 `waiter`s); one
/// that comes back is unmarked by its first message (PROTOCOL section 6,
/// step 3: a restarted node broadcasts PING, a silent one searches).
const MAX_BACKOFF_DOUBLINGS: u32 = 5;

/// A member that failed and was not heard from since is forgotten after
/// this many `lost_for` periods (its lost mark then has reached its longest;
/// it rejoins with its first message).
const FORGET_AFTER_PERIODS: u32 = 64;

/// A node a hand-off may try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: NodeId,
    pub host: Ipv4Addr,
    /// A send to it failed before and it has not been heard from since: a
    /// hand-off tries at most one such.
    pub suspect: bool,
    /// It never took or handed over the token: its port answered a PING,
    /// which a stranger's can too. A hand-off tries at most one such (or
    /// suspect), and a node one every few `waiter`s.
    pub new: bool,
}

/// A ring member as the registry reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub host: Ipv4Addr,
    pub lost: bool,
}

/// The most nodes a registry holds, from every source together (messages
/// heard, tables learnt): a flood of made-up ids cannot grow it further.
pub const MAX_NODES: usize = 1024;

/// What section 6 decided about one inbound message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reception {
    /// Hand the message to the state machine (false for our own).
    pub deliver: bool,
    /// The author was not known and has been added.
    pub newcomer: bool,
    /// Answer the author with a unicast PING (a newcomer): its result
    /// proves the newcomer's TCP port ([`Registry::delivered`]).
    pub ping_back: bool,
    /// The author was marked lost or suspect, and no longer is.
    pub unmarked: bool,
    /// Nodes added from a TAKE_TOKEN's table.
    pub learnt: usize,
    /// Entries of that table that are not a valid id and IPv4 address, or
    /// beyond [`MAX_NODES`].
    pub rejected: Vec<(NodeId, String)>,
    /// New entries of a table that were not learnt because its author is
    /// not proven yet (a stranger's first message).
    pub untrusted: usize,
    /// The author is known at another address: a message claiming another
    /// node's id. Not delivered.
    pub impostor: Option<Ipv4Addr>,
    /// The author was known at this address, which no longer answered (or
    /// never did): it restarted at a new one (its id is stable), and the
    /// entry follows.
    pub moved_from: Option<Ipv4Addr>,
    /// The member that was at the author's address under another id: it
    /// restarted under a new one (one id per address).
    pub replaced: Option<NodeId>,
    /// A new id that sends from this node's own address: not a member.
    pub shares_our_address: bool,
    /// Members evicted to make room (the registry was full).
    pub evicted: Vec<NodeId>,
}

#[derive(Clone, Debug)]
pub struct Registry {
    own_id: NodeId,
    own_host: Ipv4Addr,
    nodes: BTreeMap<NodeId, Entry>,
    /// Who is at each address (one id per address), ourselves included.
    at_host: HashMap<Ipv4Addr, NodeId>,
    lost_for: Duration,
    cap: usize,
    /// Hosts whose tables are learnt though never proven (seed peers).
    trusted_hosts: BTreeSet<Ipv4Addr>,
    /// Learn every table, from anyone (the older implementation does).
    trust_every_table: bool,
}

impl Registry {
    /// A registry holding only ourselves. Lost marks expire after
    /// `lost_for` (the protocol uses the `waiter` timeout).
    pub fn new(own_id: &str, own_host: Ipv4Addr, lost_for: Duration) -> Self {
        let mut nodes = BTreeMap::new();
        nodes
            .insert(own_id.to_owned(), Entry { proven: true, established: true, ..Entry::heard(own_host, Time::ZERO) });
        Registry {
            own_id: own_id.to_owned(),
            own_host,
            nodes,
            at_host: HashMap::from([(own_host, own_id.to_owned())]),
            lost_for,
            cap: MAX_NODES,
            trusted_hosts: BTreeSet::new(),
            trust_every_table: false,
        }
    }

    /// Hold at most `cap` members (ourselves included); [`MAX_NODES`] by
    /// default.
    pub fn with_cap(mut self, cap: usize) -> Self {
        self.cap = cap.max(1);
        self
    }

    /// Learn the tables of members at these hosts (seed peers the operator
    /// named) before they are proven.
    pub fn trust_hosts(&mut self, hosts: impl IntoIterator<Item = Ipv4Addr>) {
        self.trusted_hosts.extend(hosts);
    }

    /// Learn every table from anyone and take every member as proven, as
    /// the older implementation does (its model in the simulation).
    pub fn permissive(mut self) -> Self {
        self.trust_every_table = true;
        self
    }

    pub fn own_id(&self) -> &str {
        &self.own_id
    }

    /// How long a member that failed and was not heard from since stays.
    pub fn forget_after(&self) -> Duration {
        self.lost_for * FORGET_AFTER_PERIODS
    }

    /// PROTOCOL section 6 for one inbound message from `from` at `now`,
    /// before the state acts: ignore our own, add a newcomer (and answer it
    /// with a PING), clear its lost mark, learn a TAKE_TOKEN's table if its
    /// author is proven.
    pub fn receive<D>(&mut self, message: &Message<D>, from: Ipv4Addr, now: Time) -> Reception {
        let mut reception = Reception::default();
        let author = message.author.as_str();
        if author == self.own_id {
            // Our own broadcast came back; from elsewhere, a twin or a forgery.
            if from != self.own_host {
                reception.impostor = Some(self.own_host);
            }
            return reception;
        }
        // A message claiming a known node's id from another address is
        // dropped: nodes send everything from their own address. Unless
        // that node stopped answering there (a send failed, nothing heard
        // since): then it restarted at a new address, and the entry moves.
        // An entry never proven moves too: a stranger that used a member's
        // id first does not lock the member out (the member is proven at
        // its address within a round trip, and stays there).
        if let Some(entry) = self.nodes.get(author).filter(|e| e.host != from) {
            let known = entry.host;
            if (entry.proven && !entry.suspect) || from == self.own_host {
                reception.impostor = Some(known);
                return reception;
            }
            reception.replaced = self.vacate(from);
            self.at_host.remove(&known);
            self.at_host.insert(from, author.to_owned());
            self.nodes.insert(author.to_owned(), Entry::heard(from, now));
            reception.moved_from = Some(known);
            reception.ping_back = true;
        }
        let trusted = self.trusts_tables_of(author);
        match self.nodes.get_mut(author) {
            Some(entry) => {
                reception.unmarked = entry.suspect || entry.lost_until.is_some();
                entry.lost_until = None;
                entry.suspect = false;
                entry.failures = 0;
                entry.failing_since = None;
                entry.heard_at = Some(now);
                // A member learnt from a table and heard since still has its
                // PING due (hearing it proves no TCP port).
                entry.evidence = now;
            }
            None => {
                if from == self.own_host {
                    reception.shares_our_address = true;
                    return reception;
                }
                reception.replaced = self.vacate(from);
                if self.nodes.len() >= self.cap {
                    reception.evicted.extend(self.make_room());
                }
                self.at_host.insert(from, author.to_owned());
                self.nodes.insert(author.to_owned(), Entry::heard(from, now).permissive(self.trust_every_table));
                reception.newcomer = true;
                // By UDP, section 6's PING back; by TCP too, so that its
                // port is proven and its next table learnt.
                reception.ping_back = true;
            }
        }
        if let Body::TakeToken { nodes, .. } = &message.body {
            let merged = self.merge(nodes, trusted, now);
            (reception.learnt, reception.rejected, reception.untrusted) = merged;
        }
        reception.deliver = true;
        reception
    }

    /// Whether the tables `author` sends are learnt: it is proven (its TCP
    /// port accepted ours), or at a seed's address.
    fn trusts_tables_of(&self, author: &str) -> bool {
        self.trust_every_table
            || self.nodes.get(author).is_some_and(|e| e.proven || self.trusted_hosts.contains(&e.host))
    }

    /// Free `host` for another id: remove whoever is there (not us).
    fn vacate(&mut self, host: Ipv4Addr) -> Option<NodeId> {
        let id = self.at_host.get(&host).filter(|id| **id != self.own_id)?.clone();
        self.at_host.remove(&host);
        self.nodes.remove(&id);
        Some(id)
    }

    /// Make room: remove the members least worth keeping: never proven
    /// before proven, known only from tables before heard, then the longest
    /// unheard. Those never proven go in batches of up to an eighth of the
    /// cap, so a flood of new ids costs one scan per batch, not one per id;
    /// proven members one at a time.
    fn make_room(&mut self) -> Vec<NodeId> {
        let mut ranked: Vec<((bool, bool, Time), &NodeId)> =
            self.nodes.iter().filter(|(id, _)| **id != self.own_id).map(|(id, e)| (e.keep_rank(), id)).collect();
        // Members never reached go by the batch; reached ones one at a time
        // (a full ring of real members loses one per newcomer, not 128).
        let unreached = ranked.iter().filter(|((proven, ..), _)| !proven).count();
        let batch = unreached.clamp(1, (self.cap / 8).max(1));
        if ranked.len() > batch {
            ranked.select_nth_unstable(batch - 1);
        }
        let evicted: Vec<NodeId> = ranked.into_iter().take(batch).map(|(_, id)| id.clone()).collect();
        for id in &evicted {
            self.forget(id);
        }
        evicted
    }

    fn forget(&mut self, id: &str) {
        if let Some(entry) = self.nodes.remove(id) {
            self.at_host.remove(&entry.host);
        }
    }

    /// Section 6, step 4: add the unknown nodes of a TAKE_TOKEN's table if
    /// its author is `trusted`, one id per address and up to the cap. A
    /// known node that stopped answering (suspect) takes the table's
    /// address if it differs and is free: it restarted elsewhere. Returns
    /// how many were learnt, the entries that are not an id and an IPv4
    /// address (or beyond the cap), and how many new ones were not learnt
    /// because the author is not trusted.
    pub fn merge(&mut self, nodes: &Nodes, trusted: bool, now: Time) -> (usize, Vec<(NodeId, String)>, usize) {
        let (mut learnt, mut rejected, mut untrusted) = (0, Vec::new(), 0);
        for (id, host) in nodes {
            let Ok(host) = host.parse::<Ipv4Addr>() else {
                rejected.push((id.clone(), host.clone()));
                continue;
            };
            if *id == self.own_id {
                continue;
            }
            let free = !self.at_host.contains_key(&host);
            if let Some(entry) = self.nodes.get_mut(id) {
                if entry.suspect && entry.host != host && trusted && free {
                    let old = std::mem::replace(entry, Entry::from_table(host, now));
                    self.at_host.remove(&old.host);
                    self.at_host.insert(host, id.clone());
                }
                continue;
            }
            if id.is_empty() || self.nodes.len() >= self.cap {
                rejected.push((id.clone(), host.to_string()));
            } else if !trusted {
                untrusted += 1;
            } else if free {
                self.nodes.insert(id.clone(), Entry::from_table(host, now).permissive(self.trust_every_table));
                self.at_host.insert(host, id.clone());
                learnt += 1;
            }
        }
        (learnt, rejected, untrusted)
    }

    /// A TCP send to `id` failed (section 1). The mark lasts `lost_for`,
    /// longer after repeated failures. A member never reached is PINGed
    /// again when the mark expires (a busy host may have missed the first),
    /// and is forgotten if it stays silent (see [`forget_stale`](Self::forget_stale)).
    pub fn mark_lost(&mut self, id: &str, now: Time) {
        self.mark_lost_after(id, now, now);
    }

    /// [`mark_lost`](Self::mark_lost) for a send begun at `tried` that
    /// failed at `now`: the background PINGs of
    /// [`due_for_recheck`](Self::due_for_recheck) count from when it began.
    pub fn mark_lost_after(&mut self, id: &str, tried: Time, now: Time) {
        let Some(entry) = self.nodes.get_mut(id).filter(|_| id != self.own_id) else {
            return;
        };
        let doublings = entry.failures.min(MAX_BACKOFF_DOUBLINGS);
        entry.lost_until = Some(now + self.lost_for * (1 << doublings));
        entry.suspect = true;
        entry.failures = entry.failures.saturating_add(1);
        entry.failing_since.get_or_insert(now);
        entry.tried_at = entry.tried_at.max(Some(tried));
        entry.probe_due |= !entry.proven;
    }

    /// Whether `id` is a proven member that showed a sign of life after
    /// `since`: a message from it, or a connection of ours that it
    /// accepted (for a proven member, its last evidence is one of those).
    /// What it said at `since` is what a send begun then answered, no news
    /// after it.
    pub fn proven_alive_since(&self, id: &str, since: Time) -> bool {
        self.nodes.get(id).is_some_and(|e| e.proven && e.evidence > since)
    }

    /// Proven members a send failed to, whose lost mark still has time
    /// left, and that were not tried for `every`; at most `max`, each
    /// counted as tried now. They are PINGed in the background: a member
    /// that is back but says nothing (the last link of a partition to heal,
    /// after both sides' news went out) is back in the rotation within
    /// `every` and a round, whatever its backed-off mark had left.
    pub fn due_for_recheck(&mut self, now: Time, every: Duration, max: usize) -> Vec<(NodeId, Ipv4Addr)> {
        let own_id = &self.own_id;
        let mut due = Vec::new();
        for (id, entry) in self
            .nodes
            .iter_mut()
            .filter(|(id, e)| {
                *id != own_id
                    && e.proven
                    && Self::is_lost(e, now)
                    && e.tried_at.is_none_or(|at| now.saturating_sub(at) >= every)
            })
            .take(max)
        {
            entry.tried_at = Some(now);
            due.push((id.clone(), entry.host));
        }
        due
    }

    /// `id`'s TCP port at `host` accepted a connection of ours (a hand-off
    /// or a PING): it is there.
    pub fn delivered(&mut self, id: &str, host: Ipv4Addr, now: Time) {
        if let Some(entry) = self.nodes.get_mut(id).filter(|e| e.host == host) {
            entry.proven = true;
            entry.lost_until = None;
            entry.suspect = false;
            entry.failures = 0;
            entry.failing_since = None;
            entry.probe_due = false;
            entry.evidence = now;
        }
    }

    /// Members whose PING is due (learnt from a table, or not PINGed when
    /// first heard), at most `max`; they are no longer due once returned.
    pub fn take_probes(&mut self, now: Time, max: usize) -> Vec<(NodeId, Ipv4Addr)> {
        let mut due = Vec::new();
        for (id, entry) in self.nodes.iter_mut().filter(|(_, e)| e.probe_due && !Self::is_lost(e, now)).take(max) {
            entry.probe_due = false;
            due.push((id.clone(), entry.host));
        }
        due
    }

    /// The members a send failed to and that were not heard from since
    /// (marked lost or suspect), at most `max`: after evidence that the
    /// network healed, each is PINGed, and a PING that goes through clears
    /// its mark ([`delivered`](Self::delivered)), whatever time the mark
    /// had left.
    pub fn failing(&self, max: usize) -> Vec<(NodeId, Ipv4Addr)> {
        self.nodes
            .iter()
            .filter(|(id, e)| **id != self.own_id && e.proven && e.suspect)
            .take(max)
            .map(|(id, e)| (id.clone(), e.host))
            .collect()
    }

    /// Forget the members that failed and were not heard from for
    /// [`forget_after`](Self::forget_after), and those never reached and
    /// not heard from for as long; returns them.
    pub fn forget_stale(&mut self, now: Time) -> Vec<NodeId> {
        let limit = self.forget_after();
        let stale: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(id, e)| {
                **id != self.own_id
                    && (e.failing_since.is_some_and(|since| now.saturating_sub(since) >= limit)
                        || (!e.proven && now.saturating_sub(e.evidence) >= limit))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            self.forget(id);
        }
        stale
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

    /// The node a hand-off tries next: the first proven member after us in
    /// ring order that is not marked lost and was not `tried` in this
    /// hand-off, not a suspect unless `suspect_allowed`, and not new (see
    /// [`Candidate::new`]) unless `new_allowed`. Members never proven get
    /// the token only once their PING went through: a made-up id costs a
    /// hand-off nothing.
    pub fn next_candidate(
        &self,
        now: Time,
        tried: &BTreeSet<NodeId>,
        suspect_allowed: bool,
        new_allowed: bool,
    ) -> Option<Candidate> {
        self.after_us()
            .find(|(id, entry)| {
                entry.proven
                    && !Self::is_lost(entry, now)
                    && !tried.contains(*id)
                    && (suspect_allowed || !entry.suspect)
                    && (new_allowed || entry.established)
            })
            .map(|(id, entry)| Candidate {
                id: id.clone(),
                host: entry.host,
                suspect: entry.suspect,
                new: !entry.established,
            })
    }

    /// Where a hand-off to `id` may start its data (PROTOCOL section 10,
    /// "Delta hand-offs"): the characters it has at least, if it is a
    /// pi-ring node (it said `have`); `None`: send the whole expansion.
    pub fn delta_base(&self, id: &str) -> Option<usize> {
        self.nodes.get(id).and_then(|e| e.has)
    }

    /// `id` says it has `have` characters (PROTOCOL section 10, "Delta
    /// hand-offs"). Less than known before means a restart or lost data (or
    /// a late datagram), and is taken: a smaller base is always safe. More
    /// is taken only when `may_raise` (a TCP message, which a stranger
    /// cannot send from a member's address as easily as a datagram):
    /// otherwise a forged datagram could make us hand the member a delta
    /// from beyond what it has.
    pub fn note_have(&mut self, id: &str, have: u64, may_raise: bool) {
        let Some(entry) = self.nodes.get_mut(id).filter(|_| id != self.own_id) else { return };
        let have = usize::try_from(have).unwrap_or(usize::MAX);
        entry.has = Some(match entry.has {
            Some(has) if has <= have && may_raise => have,
            Some(has) => has.min(have),
            None => have,
        });
    }

    /// `id`, a pi-ring node, took a hand-off of an expansion of `len`
    /// characters: it has them now.
    pub fn has_at_least(&mut self, id: &str, len: usize) {
        if let Some(has) = self.nodes.get_mut(id).and_then(|e| e.has.as_mut()) {
            *has = (*has).max(len);
        }
    }

    /// `id` took a hand-off of ours, or handed us the token.
    pub fn established(&mut self, id: &str) {
        if let Some(entry) = self.nodes.get_mut(id) {
            entry.established = true;
        }
    }

    /// `id`'s PING was not sent (a budget, or too many connections): PING
    /// it at a later upkeep.
    pub fn probe_later(&mut self, id: &str) {
        if let Some(entry) = self.nodes.get_mut(id).filter(|e| !e.proven) {
            entry.probe_due = true;
        }
    }

    /// The table TAKE_TOKEN carries: ourselves and every proven member
    /// (not those only heard of, or only heard: made-up ids and tables are
    /// not passed on).
    pub fn nodes(&self) -> Nodes {
        self.nodes.iter().filter(|(_, e)| e.proven).map(|(id, e)| (id.clone(), e.host.to_string())).collect()
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
    /// Members never reached get nothing: made-up ids and tables cost no
    /// datagrams (they are PINGed once, then have copies when that went
    /// through).
    pub fn unicast_hosts(&self, all: bool) -> Vec<Ipv4Addr> {
        // One id per address: the hosts are distinct.
        self.nodes
            .iter()
            .filter(|(id, e)| **id != self.own_id && e.proven && (all || !e.broadcast))
            .map(|(_, e)| e.host)
            .collect()
    }

    /// Whether a member is known at `host`.
    pub fn has_host(&self, host: Ipv4Addr) -> bool {
        self.at_host.contains_key(&host)
    }

    pub fn host_of(&self, id: &str) -> Option<Ipv4Addr> {
        self.nodes.get(id).map(|e| e.host)
    }

    /// Whether `id` is known and its TCP port accepted a connection of ours.
    pub fn is_proven(&self, id: &str) -> bool {
        self.nodes.get(id).is_some_and(|e| e.proven)
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

    const T0: Time = Time::from_secs(100);

    fn ping(author: &str) -> Message<String> {
        Message::new(author, Body::Ping)
    }

    fn take_token(author: &str, table: &[(&str, Ipv4Addr)]) -> Message<String> {
        let nodes: Nodes = table.iter().map(|(id, h)| (id.to_string(), h.to_string())).collect();
        let token = super::super::token::Token::new(0, author, 1);
        Message::new(
            author,
            Body::TakeToken { token, nodes, data: String::new(), pacing: Default::default(), data_from: None },
        )
    }

    /// Us at .1 and `others` at .10, .11, ...: heard, and proven.
    fn ring(own: &str, others: &[&str]) -> Registry {
        let mut r = Registry::new(own, ip(1), Duration::from_secs(2));
        for (i, id) in others.iter().enumerate() {
            let reception = r.receive(&ping(id), ip(10 + i as u8), T0);
            assert!(reception.newcomer && reception.ping_back);
            r.delivered(id, ip(10 + i as u8), T0);
        }
        r
    }

    #[test]
    fn own_messages_are_recognised() {
        let mut r = ring("n1", &[]);
        let reception = r.receive(&ping("n1"), ip(1), T0);
        assert!(!reception.deliver && reception.impostor.is_none());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn alone_there_is_no_next() {
        let r = ring("n1", &[]);
        assert_eq!(r.next(T0), None);
    }

    #[test]
    fn next_is_the_following_id_byte_wise_and_wraps() {
        let r = ring("n2", &["n1", "n3", "n10"]);
        // Byte-wise order: n1 < n10 < n2 < n3.
        assert_eq!(r.next(T0).unwrap().0, "n3");
        let r = ring("n3", &["n1", "n2", "n10"]);
        assert_eq!(r.next(T0).unwrap().0, "n1");
        let r = ring("n1", &["n2", "n10"]);
        assert_eq!(r.next(T0).unwrap().0, "n10");
    }

    #[test]
    fn lost_nodes_are_skipped_until_the_mark_expires() {
        let mut r = ring("a", &["b", "c"]);
        r.mark_lost("b", T0);
        assert_eq!(r.next(T0).unwrap().0, "c");
        assert_eq!(r.next(T0 + Duration::from_millis(1999)).unwrap().0, "c");
        assert_eq!(r.next(T0 + Duration::from_secs(2)).unwrap().0, "b");
    }

    #[test]
    fn repeated_failures_lengthen_the_lost_mark_up_to_32_times() {
        let mut now = T0;
        let mut r = ring("a", &["b", "c"]);
        for expected_secs in [2, 4, 8, 16, 32, 64, 64] {
            r.mark_lost("b", now);
            let expires = now + Duration::from_secs(expected_secs);
            assert_eq!(r.next(expires - Duration::from_millis(1)).unwrap().0, "c");
            assert_eq!(r.next(expires).unwrap().0, "b");
            now = expires;
        }
        r.receive(&ping("b"), ip(10), now);
        r.mark_lost("b", now);
        assert_eq!(r.next(now + Duration::from_secs(2)).unwrap().0, "b", "heard from: back to one period");
    }

    #[test]
    fn any_message_clears_the_lost_mark() {
        let mut r = ring("a", &["b", "c"]);
        r.mark_lost("b", T0);
        let reception = r.receive(&ping("b"), ip(10), T0);
        assert!(reception.unmarked && reception.deliver && !reception.newcomer);
        assert_eq!(r.next(T0).unwrap().0, "b");
    }

    #[test]
    fn lost_members_are_rechecked_once_per_period_while_their_mark_lasts() {
        let every = Duration::from_millis(500);
        let mut r = ring("a", &["b", "c", "d"]);
        // c failed a hand-off begun at T0, 300 ms before the failure.
        r.mark_lost_after("c", T0, T0 + Duration::from_millis(300));
        r.mark_lost("d", T0 + Duration::from_millis(300));
        // Counted from the attempt's start: c is due first, d not yet.
        let due = r.due_for_recheck(T0 + every, every, 16);
        assert_eq!(due, vec![("c".to_string(), ip(11))]);
        assert_eq!(r.due_for_recheck(T0 + every, every, 16), vec![], "counted as tried");
        let due = r.due_for_recheck(T0 + every + Duration::from_millis(300), every, 16);
        assert_eq!(due, vec![("d".to_string(), ip(12))]);
        // At most `max` a sweep; the rest at the next.
        let later = T0 + 2 * every + Duration::from_millis(300);
        assert_eq!(r.due_for_recheck(later, every, 1).len(), 1);
        assert_eq!(r.due_for_recheck(later, every, 1).len(), 1);
        assert_eq!(r.due_for_recheck(later, every, 1), vec![]);
        // Heard from: no longer lost, no longer rechecked.
        r.receive(&ping("c"), ip(11), later);
        r.receive(&ping("d"), ip(12), later);
        assert_eq!(r.due_for_recheck(later + 10 * every, every, 16), vec![]);
    }

    #[test]
    fn members_never_proven_or_whose_mark_expired_are_not_rechecked() {
        let every = Duration::from_millis(500);
        let mut r = ring("a", &["b"]);
        let nodes: Nodes = [("t".to_string(), ip(20).to_string())].into_iter().collect();
        r.merge(&nodes, true, T0);
        r.mark_lost("t", T0);
        r.mark_lost("b", T0);
        assert_eq!(r.due_for_recheck(T0 + every, every, 16), vec![("b".to_string(), ip(10))]);
        // b's mark (2 s) has run out: the token tries it again anyway.
        assert_eq!(r.due_for_recheck(T0 + Duration::from_secs(2), every, 16), vec![]);
    }

    #[test]
    fn proven_alive_since_counts_messages_and_accepted_connections() {
        let mut r = ring("a", &["b", "c"]);
        let later = T0 + Duration::from_secs(1);
        assert!(r.proven_alive_since("b", T0 - Duration::from_millis(1)) && !r.proven_alive_since("b", T0));
        r.receive(&ping("b"), ip(10), later);
        assert!(r.proven_alive_since("b", T0) && !r.proven_alive_since("b", later));
        r.delivered("c", ip(11), later);
        assert!(r.proven_alive_since("c", T0));
        assert!(!r.proven_alive_since("nobody", T0));
    }

    #[test]
    fn all_others_lost_means_alone() {
        let mut r = ring("a", &["b"]);
        r.mark_lost("b", T0);
        assert_eq!(r.next(T0), None);
    }

    #[test]
    fn a_hand_off_tries_each_node_once_and_at_most_one_suspect() {
        let mut r = ring("c", &["a", "d", "e"]);
        r.mark_lost("d", T0);
        r.mark_lost("e", T0);
        let later = T0 + Duration::from_secs(3); // both marks expired
        let mut tried = BTreeSet::new();
        let first = r.next_candidate(later, &tried, true, true).unwrap();
        assert_eq!((first.id.as_str(), first.suspect), ("d", true));
        tried.insert(first.id);
        // d failed again: e is a suspect too and is skipped; a is tried.
        let second = r.next_candidate(later, &tried, false, true).unwrap();
        assert_eq!((second.id.as_str(), second.suspect), ("a", false));
        // Proven by a PING only: new, unless it took or handed the token.
        assert!(second.new);
        assert_eq!(r.next_candidate(later, &tried, false, false), None);
        r.established("a");
        assert_eq!(r.next_candidate(later, &tried, false, false).unwrap().id, "a");
        tried.insert(second.id);
        assert_eq!(r.next_candidate(later, &tried, false, true), None);
        // Hearing from e clears its suspicion.
        r.receive(&ping("e"), ip(12), later);
        assert_eq!(r.next_candidate(later, &tried, false, true).unwrap().id, "e");
    }

    #[test]
    fn a_message_claiming_a_known_id_from_another_address_is_dropped() {
        let mut r = ring("a", &["b"]);
        let reception = r.receive(&ping("b"), ip(66), T0);
        assert_eq!(reception.impostor, Some(ip(10)));
        assert!(!reception.deliver);
        // Our own id from elsewhere: a twin or a forgery, named, dropped.
        let twin = r.receive(&ping("a"), ip(66), T0);
        assert_eq!((twin.impostor, twin.deliver), (Some(ip(1)), false));
        assert!(r.receive(&ping("b"), ip(10), T0).deliver);
        assert_eq!(r.host_of("b"), Some(ip(10)));
    }

    #[test]
    fn a_node_that_stopped_answering_at_its_address_may_come_back_at_another() {
        let mut r = ring("a", &["b"]);
        // While b answers at its address, another address is an impostor.
        assert!(r.receive(&ping("b"), ip(66), T0).impostor.is_some());
        // A send to b failed: b restarted elsewhere, and the entry follows.
        r.mark_lost("b", T0);
        let reception = r.receive(&ping("b"), ip(66), T0);
        assert_eq!((reception.impostor, reception.moved_from), (None, Some(ip(10))));
        assert!(reception.deliver);
        assert_eq!(r.host_of("b"), Some(ip(66)));
        assert!(!r.has_host(ip(10)));
        assert_eq!(r.next(T0).unwrap().0, "b", "not lost at its new address");
        // Our own id never moves.
        assert!(r.receive(&ping("a"), ip(67), T0).impostor.is_some());
        // Others learn the new address from a proven member's table.
        let mut other = ring("c", &["b", "d"]);
        other.mark_lost("b", T0);
        other.receive(&take_token("d", &[("b", ip(66))]), ip(11), T0);
        assert_eq!(other.host_of("b"), Some(ip(66)));
        let mut healthy = ring("c", &["b", "d"]);
        healthy.receive(&take_token("d", &[("b", ip(66))]), ip(11), T0);
        assert_eq!(healthy.host_of("b"), Some(ip(10)), "an answering node is not moved by a table");
    }

    #[test]
    fn a_stranger_that_used_a_members_id_first_does_not_lock_the_member_out() {
        let mut r = ring("a", &[]);
        // The stranger at .66 speaks first with id b: b is not proven there.
        assert!(r.receive(&ping("b"), ip(66), T0).newcomer);
        // The real b, at its own address: the entry moves and is PINGed.
        let real = r.receive(&ping("b"), ip(10), T0);
        assert_eq!((real.moved_from, real.deliver, real.ping_back), (Some(ip(66)), true, true));
        r.delivered("b", ip(10), T0);
        // Once proven there, the stranger's messages are dropped.
        assert_eq!(r.receive(&ping("b"), ip(66), T0).impostor, Some(ip(10)));
        assert_eq!(r.host_of("b"), Some(ip(10)));
    }

    #[test]
    fn one_id_per_address_a_new_id_there_replaces_the_old_one() {
        let mut r = ring("a", &["b", "c"]);
        // b restarted under another id at its address.
        let reception = r.receive(&ping("b2"), ip(10), T0);
        assert_eq!(reception.replaced.as_deref(), Some("b"));
        assert!(reception.newcomer && reception.deliver);
        assert_eq!(r.members(T0).iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["a", "b2", "c"]);
        // 20,000 ids from one address hold one entry.
        for i in 0..20_000 {
            r.receive(&ping(&format!("sybil-{i:06}")), ip(99), T0);
        }
        assert_eq!(r.len(), 4);
        // A table cannot put a second id at a member's address.
        r.receive(&take_token("c", &[("x", ip(11)), ("y", ip(1))]), ip(11), T0);
        assert_eq!(r.len(), 4);
        // A new id from our own address is named, not added.
        let ours = r.receive(&ping("z"), ip(1), T0);
        assert!(ours.shares_our_address && !ours.deliver);
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn a_flood_of_new_ids_keeps_the_cap_and_evicts_the_never_proven_first() {
        let mut r = ring("a", &["b", "c"]).with_cap(100);
        let mut evicted = 0;
        for i in 0..2_000u32 {
            let host = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i);
            let reception = r.receive(&ping(&format!("sybil-{i:06}")), host, T0 + Duration::from_millis(i.into()));
            evicted += reception.evicted.len();
        }
        assert!(r.len() <= 100);
        assert!(evicted >= 2_000 - 97);
        assert!(r.host_of("b").is_some() && r.host_of("c").is_some(), "proven members stay");
    }

    #[test]
    fn a_full_registry_of_reached_members_evicts_one_per_newcomer_the_longest_unheard() {
        let mut r = Registry::new("a", ip(1), Duration::from_secs(2)).with_cap(20);
        for i in 0..19u8 {
            let (id, host) = (format!("m{i:02}"), ip(10 + i));
            r.receive(&ping(&id), host, T0 + Duration::from_secs(i.into()));
            r.delivered(&id, host, T0 + Duration::from_secs(i.into()));
        }
        let reception = r.receive(&ping("new"), ip(100), T0 + Duration::from_secs(60));
        assert_eq!(reception.evicted, vec!["m00".to_string()]);
        assert_eq!(r.len(), 20);
    }

    #[test]
    fn tables_are_learnt_from_proven_members_only_and_what_they_add_earns_its_place() {
        let mut r = ring("a", &["b"]);
        // A stranger's first message: its table is not learnt.
        let stranger = r.receive(&take_token("s", &[("f1", ip(201)), ("f2", ip(202))]), ip(50), T0);
        assert!(stranger.newcomer && stranger.deliver);
        assert_eq!((stranger.learnt, stranger.untrusted), (0, 2));
        assert!(r.host_of("f1").is_none());
        // A proven member's table is.
        let told = r.receive(&take_token("b", &[("m", ip(30))]), ip(10), T0);
        assert_eq!(told.learnt, 1);
        // Known only from a table: no unicast copies, not passed on, a
        // PING is due to prove it, and it is not handed the token.
        assert!(!r.unicast_hosts(true).contains(&ip(30)));
        assert!(!r.nodes().contains_key("m"));
        // Heard, but not proven: not passed on either.
        r.receive(&ping("h"), ip(33), T0);
        assert!(!r.nodes().contains_key("h"));
        assert_eq!(r.take_probes(T0, 10), vec![("m".to_string(), ip(30))]);
        assert!(r.take_probes(T0, 10).is_empty(), "one PING");
        // Not proven: never handed the token.
        let tried = BTreeSet::from(["b".to_string()]);
        assert_eq!(r.next_candidate(T0, &tried, true, true), None);
        // Its port answered: proven, passed on, sent copies.
        r.delivered("m", ip(30), T0);
        assert!(r.nodes().contains_key("m") && r.unicast_hosts(true).contains(&ip(30)));
        // One that never answers is PINGed again after its mark, backing
        // off, and forgotten if it stays silent.
        r.receive(&take_token("b", &[("ghost", ip(31))]), ip(10), T0);
        assert_eq!(r.take_probes(T0, 10).len(), 1);
        r.mark_lost("ghost", T0);
        assert!(r.take_probes(T0 + Duration::from_millis(1999), 10).is_empty());
        assert_eq!(r.take_probes(T0 + Duration::from_secs(2), 10), vec![("ghost".to_string(), ip(31))]);
        assert!(r.forget_stale(T0 + r.forget_after() - Duration::from_millis(1)).is_empty());
        let forgotten = r.forget_stale(T0 + r.forget_after());
        assert!(forgotten.contains(&"ghost".to_string()) && !forgotten.contains(&"m".to_string()), "{forgotten:?}");
        // Heard but not proven yet (its PING not sent): no token either,
        // and a PING later.
        r.receive(&ping("new"), ip(32), T0);
        r.probe_later("new");
        assert!(r.next_candidate(T0, &BTreeSet::from(["b".into(), "m".into()]), true, true).is_none());
        assert_eq!(r.take_probes(T0, 10), vec![("new".to_string(), ip(32))]);
    }

    #[test]
    fn a_member_learnt_from_a_table_and_heard_later_is_still_pinged() {
        let mut r = ring("a", &["b"]);
        r.receive(&take_token("b", &[("m", ip(30))]), ip(10), T0);
        // Heard before its PING went out: the PING is still due.
        assert!(!r.receive(&ping("m"), ip(30), T0).newcomer);
        assert_eq!(r.take_probes(T0, 10), vec![("m".to_string(), ip(30))]);
    }

    #[test]
    fn a_member_that_fails_and_is_not_heard_from_is_forgotten_in_time() {
        let mut r = ring("a", &["b", "c"]);
        r.mark_lost("b", T0);
        let limit = r.forget_after();
        assert!(r.forget_stale(T0 + limit - Duration::from_millis(1)).is_empty());
        r.mark_lost("b", T0 + limit / 2);
        assert_eq!(r.forget_stale(T0 + limit), vec!["b".to_string()], "counted from its first failure");
        assert!(r.host_of("b").is_none() && r.host_of("c").is_some());
        // It rejoins with its first message.
        assert!(r.receive(&ping("b"), ip(10), T0 + limit).newcomer);
    }

    #[test]
    fn a_huge_node_table_is_learnt_only_up_to_the_cap() {
        let mut r = ring("a", &["b"]);
        let nodes: Nodes = (0..5000u32)
            .map(|i| (format!("x{i}"), Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 2, 0, 0)) + i).to_string()))
            .collect();
        let (learnt, rejected, _) = r.merge(&nodes, true, T0);
        assert_eq!(r.len(), MAX_NODES);
        assert_eq!(learnt, MAX_NODES - 2);
        assert_eq!(rejected.len(), 5000 - (MAX_NODES - 2));
    }

    #[test]
    fn merge_adds_unknown_nodes_and_rejects_bad_hosts() {
        let mut r = ring("a", &["b"]);
        let nodes: Nodes =
            [("a", "9.9.9.9"), ("b", "9.9.9.9"), ("c", "127.0.0.7"), ("d", "not-an-ip"), ("", "127.0.0.8")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let (learnt, rejected, _) = r.merge(&nodes, true, T0);
        assert_eq!((learnt, rejected.len()), (1, 2));
        assert_eq!(r.host_of("a"), Some(ip(1)), "known entries are not overwritten");
        assert_eq!(r.host_of("b"), Some(ip(10)));
        assert_eq!(r.host_of("c"), Some(ip(7)));
        assert_eq!(r.host_of("d"), None);
        assert_eq!(r.len(), 3);
    }
}
