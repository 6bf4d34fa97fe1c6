//! The state machine actor with mocked peers, in paused virtual time.
//!
//! Recorder actors stand in for the UDP and TCP endpoints and the registry;
//! a tiny in-memory network connects two state machines for the tests that
//! need a peer. No sockets, no real sleeps: `tokio::time::sleep` in the test
//! body advances the paused clock.

use actix::prelude::*;
use pi_ring::actors::messages::{Broadcast, GetMembers, Inbound, Members, Port, SendTo, Via};
use pi_ring::actors::{GetStatus, Peers, RegistryActor, StateMachine, Stop};
use pi_ring::error::SendError;
use pi_ring::pi::{Expansion, PiDigits};
use pi_ring::protocol::machine::{Config, Timing};
use pi_ring::protocol::registry::Member;
use pi_ring::protocol::{Body, Message, Node, Nodes, StateName, Token};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::{sleep, Instant};

const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

fn pi() -> Arc<PiDigits> {
    static PI: OnceLock<Arc<PiDigits>> = OnceLock::new();
    let pi = PI.get_or_init(|| Arc::new(PiDigits::new(1_000_000)));
    // Pre-computed, so the actors never wait on a blocking thread (which
    // would let paused time run ahead).
    pi.expansion(20_000);
    Arc::clone(pi)
}

/// An actix system on a current-thread runtime whose clock starts paused,
/// so timers fire at exact virtual times.
struct PausedSystem;

impl PausedSystem {
    #[allow(clippy::new_ret_no_self)] // the shape actix_rt::test(system = ..) calls
    fn new() -> actix::SystemRunner {
        actix::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime")
        })
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Everything the mocked peers saw, stamped with virtual time.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, Event)>>>);

#[derive(Clone, Debug)]
enum Event {
    Broadcast(Message, Port),
    /// A broadcast's unicast copies, to members broadcasts do not reach.
    Unicast(Message, Vec<Ipv4Addr>),
    Send(Ipv4Addr, Message),
}

impl Log {
    fn push(&self, e: Event) {
        self.0.lock().unwrap().push((Instant::now(), e));
    }

    /// Ring broadcasts of one kind, as offsets from `t0`.
    fn broadcasts(&self, t0: Instant, kind: &str) -> Vec<Duration> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Broadcast(m, Port::Ring) if m.body.kind() == kind => Some(*t - t0),
                _ => None,
            })
            .collect()
    }

    /// Unicast copies of broadcasts of `kind`: (offset from `t0`, hosts).
    fn unicasts(&self, t0: Instant, kind: &str) -> Vec<(Duration, Vec<Ipv4Addr>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Unicast(m, to) if m.body.kind() == kind => Some((*t - t0, to.clone())),
                _ => None,
            })
            .collect()
    }

    /// MY_STATE transitions, as offsets from `t0`.
    fn transitions(&self, t0: Instant) -> Vec<(Duration, String, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Broadcast(Message { body: Body::MyState(s), .. }, Port::Monitor) => {
                    Some((*t - t0, s.old_state.clone(), s.new_state.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// TCP sends, but for the PINGs that prove members' ports.
    fn sends(&self) -> Vec<(Ipv4Addr, Message)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Send(to, m) if m.body != Body::Ping => Some((*to, m.clone())),
                _ => None,
            })
            .collect()
    }
}

/// How the recorder's TCP answers a send to one host.
#[derive(Clone, Copy)]
enum Reach {
    /// Refused at once (nobody listens).
    Refused,
    /// Accepted but never read: fails after the hand-off's patience, as
    /// the TCP endpoint's stall detection does.
    Stalled,
}

/// Stands in for the UDP endpoint, the TCP endpoint and the registry.
#[derive(Default)]
struct Recorder {
    log: Log,
    unreachable: Arc<Mutex<HashMap<Ipv4Addr, Reach>>>,
    members: Arc<Mutex<Vec<Member>>>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Broadcast> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) {
        if msg.unicast.is_empty() {
            self.log.push(Event::Broadcast(msg.message, msg.port));
        } else {
            self.log.push(Event::Unicast(msg.message, msg.unicast));
        }
    }
}

impl Handler<SendTo> for Recorder {
    type Result = ResponseFuture<Result<(), SendError>>;
    fn handle(&mut self, msg: SendTo, _: &mut Context<Self>) -> Self::Result {
        // Members answer PINGs; what fails is the hand-off.
        let token = matches!(msg.message.body, Body::TakeToken { .. });
        self.log.push(Event::Send(msg.to, msg.message));
        let addr = SocketAddrV4::new(msg.to, 8239);
        let reach = self.unreachable.lock().unwrap().get(&msg.to).copied().filter(|_| token);
        let patience = msg.patience.unwrap_or(ms(1000));
        Box::pin(async move {
            match reach {
                None => Ok(()),
                Some(Reach::Refused) => Err(SendError::Connect { addr, reason: "connection refused".into() }),
                Some(Reach::Stalled) => {
                    sleep(patience).await;
                    Err(SendError::WriteStalled { addr, written: 0, total: 1 })
                }
            }
        })
    }
}

impl Handler<Members> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Members, _: &mut Context<Self>) {
        *self.members.lock().unwrap() = msg.0;
    }
}

impl Handler<GetMembers> for Recorder {
    type Result = Vec<Member>;
    fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Vec<Member> {
        self.members.lock().unwrap().clone()
    }
}

fn timing(hold: u64) -> Timing {
    Timing {
        heartbeat: ms(500),
        waiter: ms(2000),
        looser_ask: ms(500),
        looser_answer: ms(2000),
        generating: ms(2000),
        hold: ms(hold),
        report: ms(100),
    }
}

fn node(id: &str, host: Ipv4Addr, timing: Timing) -> Node {
    Node::new(Config { id: id.into(), timing, max_len: 1_000_002 }, host, Expansion::empty(), 0)
}

/// One state machine whose peers are a single recorder.
fn start_recorded(id: &str, timing: Timing) -> (Addr<StateMachine>, Log) {
    let (addr, log, _) = start_recorded_with(id, timing, Arc::default());
    (addr, log)
}

/// Same, with some hosts unreachable; also returns the registry's view.
fn start_recorded_with(
    id: &str,
    timing: Timing,
    unreachable: Arc<Mutex<HashMap<Ipv4Addr, Reach>>>,
) -> (Addr<StateMachine>, Log, Arc<Mutex<Vec<Member>>>) {
    let recorder = Recorder { unreachable, ..Recorder::default() };
    let (log, members) = (recorder.log.clone(), Arc::clone(&recorder.members));
    let peers = peers_of(recorder.start());
    let me = Ipv4Addr::new(127, 0, 0, 5);
    let addr = StateMachine::new(node(id, me, timing), peers, pi(), me, None).start();
    (addr, log, members)
}

/// A holder that nobody else can take the token from keeps it and holds
/// again at once (PROTOCOL section 7); with every digit in the cache it
/// never waits for a computation, so the actor must yield between holdings
/// or its heartbeat timer and its mailbox starve until the target (a lone
/// node failed the conformance cases 6.6 and 7.1 so, once a host's shared
/// digits made its cache long).
#[actix_rt::test(system = "PausedSystem")]
async fn a_lone_holder_with_every_digit_cached_yields_between_holdings() {
    let t = timing(0);
    let peers = peers_of(Recorder::default().start());
    let me = Ipv4Addr::new(127, 0, 0, 5);
    let target = 20_002; // all in the cache
    let lone = Node::new(Config { id: "n5".into(), timing: t.clone(), max_len: target }, me, Expansion::empty(), 0);
    let addr = StateMachine::new(lone, peers, pi(), me, None).start();
    // Searching, then claiming: 1 ms before the claim stands.
    sleep(t.looser_answer + t.generating - ms(1)).await;
    assert_eq!(state(&addr).await, StateName::Generating);
    tokio::time::advance(ms(2)).await;
    loop {
        let status = addr.send(GetStatus).await.unwrap();
        if status.state == StateName::Owner {
            // Answered between two holdings, long before the target.
            assert!(status.expansion.len() < target / 2, "answered only at {} characters", status.expansion.len());
            break;
        }
        tokio::task::yield_now().await;
    }
}

/// Every peer of a state machine played by one recorder.
fn peers_of(recorder: Addr<Recorder>) -> Peers {
    Peers {
        udp: recorder.clone().recipient(),
        tcp: recorder.clone().recipient(),
        members: recorder.clone().recipient(),
        get_members: recorder.recipient(),
    }
}

/// A member at `host` makes itself known: the node PINGs it back, the
/// recorder answers, and it is proven (its tables are learnt).
async fn introduce(addr: &Addr<StateMachine>, author: &str, host: Ipv4Addr) {
    addr.do_send(Inbound { message: Message::new(author, Body::Ping).into_raw(), from: host, via: Via::Udp });
    sleep(ms(1)).await;
}

fn deliver(addr: &Addr<StateMachine>, author: &str, body: Body) {
    let via = if matches!(body, Body::TakeToken { .. }) { Via::Tcp } else { Via::Udp };
    addr.do_send(Inbound { message: Message::new(author, body).into_raw(), from: PEER, via });
}

fn take_token(len: usize) -> Body {
    take_token_with(len, &[])
}

/// TAKE_TOKEN from n1 (at PEER) whose table also lists `others`.
fn take_token_with(len: usize, others: &[(&str, Ipv4Addr)]) -> Body {
    let mut nodes: Nodes = others.iter().map(|(id, host)| (id.to_string(), host.to_string())).collect();
    nodes.insert("n1".to_string(), PEER.to_string());
    Body::TakeToken {
        token: Token::new(len, "n1", 1),
        nodes,
        data: pi().expansion(len),
        pacing: Default::default(),
        data_from: None,
    }
}

async fn state(addr: &Addr<StateMachine>) -> StateName {
    addr.send(GetStatus).await.unwrap().state
}

#[actix_rt::test(system = "PausedSystem")]
async fn owner_heartbeats_at_the_configured_cadence() {
    let t0 = Instant::now();
    let (node, log) = start_recorded("n5", timing(10_000));
    deliver(&node, "n1", take_token(22));
    assert_eq!(state(&node).await, StateName::Owner);
    sleep(ms(2_600)).await;
    let beats = log.broadcasts(t0, "token is here");
    assert_eq!(beats, vec![ms(0), ms(500), ms(1000), ms(1500), ms(2000), ms(2500)]);
}

/// A member heard only by TCP may be beyond our broadcast domain: the
/// heartbeat reaches it by unicast too, from when its TCP port answered our
/// PING (a made-up id gets nothing), until one of its broadcasts is heard
/// (PROTOCOL section 10).
#[actix_rt::test(system = "PausedSystem")]
async fn heartbeats_reach_a_member_by_unicast_until_its_broadcasts_are_heard() {
    let t0 = Instant::now();
    let (node, log) = start_recorded("n5", timing(10_000));
    deliver(&node, "n1", take_token(22));
    sleep(ms(1_100)).await;
    assert_eq!(log.broadcasts(t0, "token is here"), vec![ms(0), ms(500), ms(1000)]);
    // At 0 its PING is on its way; from then on it is reached.
    let copies = log.unicasts(t0, "token is here");
    assert_eq!(copies, vec![(ms(500), vec![PEER]), (ms(1000), vec![PEER])]);
    // n1's broadcast is heard: our broadcasts reach it.
    deliver(&node, "n1", Body::WhereIsToken);
    sleep(ms(1_000)).await;
    assert_eq!(log.unicasts(t0, "token is here").len(), 2, "no more unicast copies");
    assert_eq!(log.broadcasts(t0, "token is here").len(), 5);
}

#[actix_rt::test(system = "PausedSystem")]
async fn waiter_timeout_leads_through_looser_and_generating_to_owner_when_nobody_answers() {
    let t0 = Instant::now();
    let (node, log) = start_recorded("n5", timing(10_000));
    deliver(&node, "n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
    assert_eq!(state(&node).await, StateName::Waiter);
    sleep(ms(6_100)).await;
    let steps: Vec<(Duration, &str)> = log.transitions(t0).iter().map(|(t, _, new)| (*t, leak(new))).collect();
    assert_eq!(
        steps,
        vec![
            (ms(0), "LooserState"),
            (ms(0), "WaiterState"),
            (ms(2000), "LooserState"),
            (ms(4000), "GeneratingState"),
            (ms(6000), "OwnerState"),
        ]
    );
    let status = node.send(GetStatus).await.unwrap();
    assert_eq!(status.token.author_node_id, "n5");
    assert_eq!(status.token.author_token_revision, 1);
    // While searching it asked every looser_ask period.
    let asks = log.broadcasts(t0, "where is token");
    assert_eq!(asks, vec![ms(0), ms(2000), ms(2500), ms(3000), ms(3500)]);
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[actix_rt::test(system = "PausedSystem")]
async fn a_looser_that_hears_token_is_here_becomes_waiter() {
    let (node, _log) = start_recorded("n5", timing(0));
    sleep(ms(300)).await;
    assert_eq!(state(&node).await, StateName::Looser);
    deliver(&node, "n1", Body::TokenIsHere { token: Token::new(42, "n1", 1) });
    assert_eq!(state(&node).await, StateName::Waiter);
}

#[actix_rt::test(system = "PausedSystem")]
async fn timers_of_a_left_state_never_fire() {
    let t0 = Instant::now();
    let (node, log) = start_recorded("n5", timing(0));
    sleep(ms(100)).await;
    deliver(&node, "n1", Body::TokenIsHere { token: Token::new(0, "n1", 1) });
    // LOOSER's timers (ask at 500 ms, answer at 2000 ms) were armed; the
    // waiter timer fires at 2100 ms.
    sleep(ms(1_950)).await;
    assert_eq!(state(&node).await, StateName::Waiter, "looser_answer of the left LOOSER acted");
    assert_eq!(log.broadcasts(t0, "where is token"), vec![ms(0)], "looser_ask of the left LOOSER acted");
    sleep(ms(100)).await;
    assert_eq!(state(&node).await, StateName::Looser);
}

#[actix_rt::test(system = "PausedSystem")]
async fn take_token_hand_off_goes_to_the_next_node_in_ring_order_then_waiter() {
    let (node, log) = start_recorded("n5", timing(300));
    introduce(&node, "n1", PEER).await;
    deliver(
        &node,
        "n1",
        take_token_with(42, &[("n7", Ipv4Addr::new(127, 0, 0, 7)), ("n2", Ipv4Addr::new(127, 0, 0, 2))]),
    );
    assert_eq!(state(&node).await, StateName::Owner);
    sleep(ms(299)).await;
    assert!(log.sends().is_empty(), "passed before the holding time");
    sleep(ms(2)).await;
    let sends = log.sends();
    assert_eq!(sends.len(), 1);
    let (to, message) = &sends[0];
    assert_eq!(*to, Ipv4Addr::new(127, 0, 0, 7));
    match &message.body {
        Body::TakeToken { token, data, .. } => {
            assert_eq!(data.len(), 62);
            assert_eq!(*token, Token::new(62, "n1", 1));
        }
        other => panic!("expected TAKE_TOKEN, got {other:?}"),
    }
    assert_eq!(state(&node).await, StateName::Waiter);
}

/// A TAKE_TOKEN whose digits the node has not computed: it is OWNER at
/// once, heart-beats, and checks them with its own 20 digits on a blocking
/// thread; what it hands on is the checked expansion, extended.
#[actix_rt::test(system = "PausedSystem")]
async fn digits_handed_unchecked_are_checked_while_holding_and_passed_on_extended() {
    let t0 = Instant::now();
    let (node, log) = start_recorded("n5", timing(300));
    let mut nodes: Nodes = Nodes::new();
    nodes.insert("n1".to_string(), PEER.to_string());
    let body = Body::TakeToken {
        token: Token::new(1_002, "n1", 1),
        nodes,
        data: pi().expansion(1_002),
        pacing: Default::default(),
        data_from: None,
    };
    node.do_send(Inbound { message: Message::new("n1", body).into_raw(), from: PEER, via: Via::Tcp });
    assert_eq!(state(&node).await, StateName::Owner);
    assert_eq!(log.broadcasts(t0, "token is here"), vec![ms(0)]);
    sleep(ms(301)).await;
    let sends = log.sends();
    let Some((_, Message { body: Body::TakeToken { token, data, .. }, .. })) = sends.first() else {
        panic!("no TAKE_TOKEN sent: {sends:?}")
    };
    assert_eq!((token.progress, data.len()), (1_022, 1_022));
    assert_eq!(data.as_str(), pi().expansion(1_022).as_str());
}

#[actix_rt::test(system = "PausedSystem")]
async fn a_hand_off_skips_a_refused_and_a_stalled_member_and_reaches_the_next() {
    let n6 = Ipv4Addr::new(127, 0, 0, 6);
    let n7 = Ipv4Addr::new(127, 0, 0, 7);
    let unreachable = Arc::new(Mutex::new(HashMap::new()));
    let (node, log, members) = start_recorded_with("n5", timing(0), Arc::clone(&unreachable));
    for (id, host) in [("n1", PEER), ("n6", n6), ("n7", n7)] {
        introduce(&node, id, host).await;
    }
    // An earlier round: n7 hands the token over and n6 takes it, so both
    // are members that pass the token (not only ports that answer).
    let from_n7 = Message::new("n7", take_token_with(22, &[]));
    node.do_send(Inbound { message: from_n7.into_raw(), from: n7, via: Via::Tcp });
    sleep(ms(5)).await;
    assert_eq!(state(&node).await, StateName::Waiter, "passed to n6");
    // Then n6 refuses connections and n7 stops reading.
    *unreachable.lock().unwrap() = HashMap::from([(n6, Reach::Refused), (n7, Reach::Stalled)]);
    let passed_before = log.sends().len();
    let t0 = Instant::now();
    deliver(&node, "n1", take_token_with(42, &[("n6", n6), ("n7", n7)]));
    assert_eq!(state(&node).await, StateName::Owner);
    // The node's patience is waiter / 2 = 1 s.
    sleep(ms(999)).await;
    assert_eq!(state(&node).await, StateName::Owner, "waiting for the stalled n7");
    let beats = log.broadcasts(t0, "token is here");
    assert!(beats.len() >= 2, "the holder heart-beats while it tries: {beats:?}");
    sleep(ms(2)).await;
    let tried: Vec<Ipv4Addr> = log.sends()[passed_before..]
        .iter()
        .filter(|(_, m)| matches!(m.body, Body::TakeToken { .. }))
        .map(|(to, _)| *to)
        .collect();
    assert_eq!(tried, vec![n6, n7, PEER], "ring order after n5: n6, n7, then n1");
    assert_eq!(state(&node).await, StateName::Waiter);
    let lost: Vec<String> = members.lock().unwrap().iter().filter(|m| m.lost).map(|m| m.id.clone()).collect();
    assert_eq!(lost, vec!["n6", "n7"], "the registry's view shows both marked lost");
}

#[actix_rt::test(system = "PausedSystem")]
async fn a_planned_stop_of_the_holder_hands_the_token_on_at_once() {
    let (node, log) = start_recorded("n5", timing(10_000));
    deliver(&node, "n1", take_token(42));
    assert_eq!(state(&node).await, StateName::Owner);
    sleep(ms(100)).await;
    assert!(log.sends().iter().all(|(_, m)| !matches!(m.body, Body::TakeToken { .. })), "holding for 10 s");
    node.send(Stop).await.unwrap();
    let passes: Vec<usize> = log
        .sends()
        .into_iter()
        .filter_map(|(_, m)| if let Body::TakeToken { data, .. } = m.body { Some(data.len()) } else { None })
        .collect();
    assert_eq!(passes.len(), 1, "handed on before the stop completed");
    assert!(passes[0] >= 42);
    assert_eq!(state(&node).await, StateName::Waiter);
}

// ----- two state machines on an in-memory network ---------------------------

type Wires = Arc<Mutex<HashMap<Ipv4Addr, Recipient<Inbound>>>>;

/// One node's view of an in-memory network: broadcasts reach every other
/// node, sends reach the addressed one.
struct FakeNet {
    me: Ipv4Addr,
    wires: Wires,
    log: Log,
}

impl Actor for FakeNet {
    type Context = Context<Self>;
}

impl Handler<Broadcast> for FakeNet {
    type Result = ();
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) {
        self.log.push(Event::Broadcast(msg.message.clone(), msg.port));
        if msg.port == Port::Ring {
            for (host, node) in self.wires.lock().unwrap().iter() {
                if *host != self.me {
                    node.do_send(Inbound { message: msg.message.clone().into_raw(), from: self.me, via: Via::Udp });
                }
            }
        }
    }
}

impl Handler<SendTo> for FakeNet {
    type Result = Result<(), SendError>;
    fn handle(&mut self, msg: SendTo, _: &mut Context<Self>) -> Self::Result {
        self.log.push(Event::Send(msg.to, msg.message.clone()));
        match self.wires.lock().unwrap().get(&msg.to) {
            Some(node) => {
                node.do_send(Inbound { message: msg.message.into_raw(), from: self.me, via: Via::Tcp });
                Ok(())
            }
            None => Err(SendError::EndpointGone),
        }
    }
}

fn start_pair(timing: Timing) -> (Addr<StateMachine>, Addr<StateMachine>, Log) {
    let wires: Wires = Arc::default();
    let log = Log::default();
    let hosts = [("a", Ipv4Addr::new(127, 0, 0, 2)), ("b", Ipv4Addr::new(127, 0, 0, 3))];
    let mut addrs = Vec::new();
    for (id, host) in hosts.iter() {
        let net = FakeNet { me: *host, wires: Arc::clone(&wires), log: log.clone() }.start();
        let registry = RegistryActor::new().start();
        let peers = Peers {
            udp: net.clone().recipient(),
            tcp: net.recipient(),
            members: registry.clone().recipient(),
            get_members: registry.recipient(),
        };
        let addr = StateMachine::new(node(id, *host, timing.clone()), peers, pi(), *host, None).start();
        wires.lock().unwrap().insert(*host, addr.clone().recipient());
        addrs.push(addr);
    }
    let b = addrs.pop().unwrap();
    let a = addrs.pop().unwrap();
    (a, b, log)
}

#[actix_rt::test(system = "PausedSystem")]
async fn two_generating_nodes_resolve_to_one_owner_and_pass_the_token() {
    let t0 = Instant::now();
    let (a, b, log) = start_pair(timing(100));
    // Both search from the start; both claim at 2 s; the better claim wins.
    sleep(ms(2_001)).await;
    let claims: Vec<_> =
        log.transitions(t0).into_iter().filter(|(_, _, new)| new == "GeneratingState").map(|(t, _, _)| t).collect();
    assert_eq!(claims.len(), 2, "both nodes claimed");
    sleep(ms(2_049)).await; // 4.05 s: the winner has generated
    let (sa, sb) = (state(&a).await, state(&b).await);
    assert!(
        matches!((sa, sb), (StateName::Owner, StateName::Waiter) | (StateName::Waiter, StateName::Owner)),
        "{sa} / {sb}"
    );
    assert_eq!(b.send(GetStatus).await.unwrap().token.author_node_id, "b", "the higher id generated it");
    // From now on one token travels: TAKE_TOKEN alternates between the two
    // hosts, and each carries exactly 20 digits more than the one before.
    sleep(ms(1_400)).await;
    let passes: Vec<(Ipv4Addr, usize)> = log
        .sends()
        .into_iter()
        .filter_map(|(to, m)| match m.body {
            Body::TakeToken { data, .. } => Some((to, data.len())),
            _ => None,
        })
        .collect();
    assert!(passes.len() >= 10, "token passed only {} times in 1.4 s with a 100 ms hold", passes.len());
    for pair in passes.windows(2) {
        assert_ne!(pair[0].0, pair[1].0, "the token went to the same host twice: {passes:?}");
        assert_eq!(pair[1].1, pair[0].1 + 20, "{passes:?}");
    }
    let last = passes.last().unwrap().1;
    let holdings = a.send(GetStatus).await.unwrap().holdings + b.send(GetStatus).await.unwrap().holdings;
    assert_eq!(last, 2 + 20 * passes.len(), "20 digits per holding, starting from nothing");
    assert!(holdings as usize >= passes.len());
}
