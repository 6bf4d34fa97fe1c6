//! The state machine actor with mocked peers, in paused virtual time.
//!
//! Recorder actors stand in for the UDP and TCP endpoints and the registry;
//! a tiny in-memory network connects two state machines for the tests that
//! need a peer. No sockets, no real sleeps: `tokio::time::sleep` in the test
//! body advances the paused clock.

use actix::prelude::*;
use pi_ring::actors::messages::{Broadcast, Deliver, GetMembers, Hop, NextHop, Port, SendTo};
use pi_ring::actors::{GetStatus, Peers, StateMachine};
use pi_ring::error::SendError;
use pi_ring::pi::PiDigits;
use pi_ring::protocol::machine::{Config, Envelope, Machine, Timing};
use pi_ring::protocol::registry::Member;
use pi_ring::protocol::{Body, Message, StateName, Token};
use std::collections::HashMap;
use std::net::Ipv4Addr;
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

    fn sends(&self) -> Vec<(Ipv4Addr, Message)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| if let Event::Send(to, m) = e { Some((*to, m.clone())) } else { None })
            .collect()
    }
}

/// Stands in for the UDP endpoint, the TCP endpoint and the registry.
struct Recorder {
    log: Log,
    next: Option<Hop>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Broadcast> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) {
        self.log.push(Event::Broadcast(msg.message, msg.port));
    }
}

impl Handler<SendTo> for Recorder {
    type Result = Result<(), SendError>;
    fn handle(&mut self, msg: SendTo, _: &mut Context<Self>) -> Self::Result {
        self.log.push(Event::Send(msg.to, msg.message));
        Ok(())
    }
}

impl Handler<NextHop> for Recorder {
    type Result = Option<Hop>;
    fn handle(&mut self, _: NextHop, _: &mut Context<Self>) -> Option<Hop> {
        self.next.clone()
    }
}

impl Handler<GetMembers> for Recorder {
    type Result = Vec<Member>;
    fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Vec<Member> {
        Vec::new()
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
    }
}

/// One state machine whose peers are a single recorder.
fn start_recorded(id: &str, timing: Timing, next: Option<Hop>) -> (Addr<StateMachine>, Log) {
    let log = Log::default();
    let recorder = Recorder { log: log.clone(), next }.start();
    let peers = Peers {
        udp: recorder.clone().recipient(),
        tcp: recorder.clone().recipient(),
        next_hop: recorder.clone().recipient(),
        members: recorder.recipient(),
    };
    let machine = Machine::new(Config { id: id.into(), timing, max_len: 1_000_002 });
    let addr = StateMachine::new(machine, peers, pi(), Ipv4Addr::new(127, 0, 0, 5), None).start();
    (addr, log)
}

fn deliver(addr: &Addr<StateMachine>, author: &str, body: Body) {
    addr.do_send(Deliver(Envelope { message: Message::new(author, body), from: PEER }));
}

fn take_token(len: usize) -> Body {
    Body::TakeToken {
        token: Token::new(len, "n1", 1),
        nodes: [("n1".to_string(), PEER.to_string())].into_iter().collect(),
        data: pi().expansion(len),
    }
}

async fn state(addr: &Addr<StateMachine>) -> StateName {
    addr.send(GetStatus).await.unwrap().state
}

#[actix_rt::test(system = "PausedSystem")]
async fn owner_heartbeats_at_the_configured_cadence() {
    let t0 = Instant::now();
    let (node, log) = start_recorded("n5", timing(10_000), None);
    deliver(&node, "n1", take_token(22));
    assert_eq!(state(&node).await, StateName::Owner);
    sleep(ms(2_600)).await;
    let beats = log.broadcasts(t0, "token is here");
    assert_eq!(beats, vec![ms(0), ms(500), ms(1000), ms(1500), ms(2000), ms(2500)]);
}

#[actix_rt::test(system = "PausedSystem")]
async fn waiter_timeout_leads_through_looser_and_generating_to_owner_when_nobody_answers() {
    let t0 = Instant::now();
    let (node, log) = start_recorded("n5", timing(10_000), None);
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
    let (node, _log) = start_recorded("n5", timing(0), None);
    sleep(ms(300)).await;
    assert_eq!(state(&node).await, StateName::Looser);
    deliver(&node, "n1", Body::TokenIsHere { token: Token::new(42, "n1", 1) });
    assert_eq!(state(&node).await, StateName::Waiter);
}

#[actix_rt::test(system = "PausedSystem")]
async fn timers_of_a_left_state_never_fire() {
    let t0 = Instant::now();
    let (node, log) = start_recorded("n5", timing(0), None);
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
async fn take_token_hand_off_goes_to_the_registrys_next_node_then_waiter() {
    let next = Hop { id: "n7".into(), host: Ipv4Addr::new(127, 0, 0, 7), nodes: Default::default() };
    let (node, log) = start_recorded("n5", timing(300), Some(next));
    deliver(&node, "n1", take_token(42));
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

// ----- two state machines on an in-memory network ---------------------------

type Wires = Arc<Mutex<HashMap<Ipv4Addr, Recipient<Deliver>>>>;

/// One node's view of an in-memory network: broadcasts reach every other
/// node, sends reach the addressed one, and the next node is the other one.
struct FakeNet {
    me: Ipv4Addr,
    wires: Wires,
    next: Hop,
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
                    node.do_send(Deliver(Envelope { message: msg.message.clone(), from: self.me }));
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
                node.do_send(Deliver(Envelope { message: msg.message, from: self.me }));
                Ok(())
            }
            None => Err(SendError::EndpointGone),
        }
    }
}

impl Handler<NextHop> for FakeNet {
    type Result = Option<Hop>;
    fn handle(&mut self, _: NextHop, _: &mut Context<Self>) -> Option<Hop> {
        Some(self.next.clone())
    }
}

impl Handler<GetMembers> for FakeNet {
    type Result = Vec<Member>;
    fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Vec<Member> {
        Vec::new()
    }
}

fn start_pair(timing: Timing) -> (Addr<StateMachine>, Addr<StateMachine>, Log) {
    let wires: Wires = Arc::default();
    let log = Log::default();
    let hosts = [("a", Ipv4Addr::new(127, 0, 0, 2)), ("b", Ipv4Addr::new(127, 0, 0, 3))];
    let mut addrs = Vec::new();
    for (i, (id, host)) in hosts.iter().enumerate() {
        let (other_id, other_host) = hosts[1 - i];
        let nodes = hosts.iter().map(|(id, h)| (id.to_string(), h.to_string())).collect();
        let net = FakeNet {
            me: *host,
            wires: Arc::clone(&wires),
            next: Hop { id: other_id.into(), host: other_host, nodes },
            log: log.clone(),
        }
        .start();
        let peers = Peers {
            udp: net.clone().recipient(),
            tcp: net.clone().recipient(),
            next_hop: net.clone().recipient(),
            members: net.recipient(),
        };
        let machine = Machine::new(Config { id: id.to_string(), timing: timing.clone(), max_len: 1_000_002 });
        let addr = StateMachine::new(machine, peers, pi(), *host, None).start();
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

// ----- the registry actor (PROTOCOL section 6) ------------------------------

/// Records what the registry forwards to the state machine.
struct StateRecorder(Arc<Mutex<Vec<Envelope>>>);

impl Actor for StateRecorder {
    type Context = Context<Self>;
}

impl Handler<Deliver> for StateRecorder {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(msg.0);
    }
}

#[actix_rt::test(system = "PausedSystem")]
async fn registry_applies_section_6_before_the_state_acts() {
    use pi_ring::actors::messages::{Inbound, Via};
    use pi_ring::actors::RegistryActor;
    use pi_ring::protocol::registry::Registry;

    let me = Ipv4Addr::new(127, 0, 0, 5);
    let log = Log::default();
    let tcp = Recorder { log: log.clone(), next: None }.start();
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let state = StateRecorder(Arc::clone(&delivered)).start();
    let registry = RegistryActor::new(Registry::new("n5", me, ms(2000)), state.recipient(), tcp.recipient()).start();
    let inbound = |author: &str, from: Ipv4Addr, via, body| Inbound { message: Message::new(author, body), from, via };

    // 1. Our own broadcast coming back is ignored.
    registry.send(inbound("n5", me, Via::Udp, Body::Ping)).await.unwrap();
    // 2. A newcomer heard by broadcast is added and answered with a PING.
    registry.send(inbound("n7", Ipv4Addr::new(127, 0, 0, 7), Via::Udp, Body::WhereIsToken)).await.unwrap();
    // 4. A TAKE_TOKEN's table adds unknown nodes.
    registry.send(inbound("n7", Ipv4Addr::new(127, 0, 0, 7), Via::Tcp, take_token(22))).await.unwrap();
    sleep(ms(1)).await;

    let sends = log.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].0, Ipv4Addr::new(127, 0, 0, 7));
    assert_eq!(sends[0].1.body, Body::Ping);
    let kinds: Vec<&str> = delivered.lock().unwrap().iter().map(|e| e.message.body.kind()).collect();
    assert_eq!(kinds, vec!["where is token", "take token"], "own message dropped, others forwarded");

    // Ring order n1 < n5 < n7: next is n7; when n7 fails it is marked lost
    // and n1 (learnt from the table) is next; the mark expires after waiter.
    let hop = registry.send(NextHop { failed: None }).await.unwrap().unwrap();
    assert_eq!(hop.id, "n7");
    assert_eq!(hop.nodes.len(), 3);
    let hop = registry.send(NextHop { failed: Some("n7".into()) }).await.unwrap().unwrap();
    assert_eq!(hop.id, "n1");
    sleep(ms(2001)).await;
    let hop = registry.send(NextHop { failed: None }).await.unwrap().unwrap();
    assert_eq!(hop.id, "n7", "the lost mark expired");
    // 3. Any message from a lost node clears the mark at once.
    registry.send(NextHop { failed: Some("n7".into()) }).await.unwrap();
    registry.send(inbound("n7", Ipv4Addr::new(127, 0, 0, 7), Via::Udp, Body::Ping)).await.unwrap();
    assert_eq!(registry.send(NextHop { failed: None }).await.unwrap().unwrap().id, "n7");
}
