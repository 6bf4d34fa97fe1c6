//! Deliberately wrong nodes, to show that each case can fail.
//!
//! A mutant is pi-ring's pure protocol core ([`pi_ring::protocol::Node`])
//! carried by a few plain threads and real sockets, as the actors carry it
//! in the product, with one [`Fault`] put between the core and the
//! network. Without a fault it passes every case; with one, the cases of
//! the rule it breaks must fail, and only those.

use pi_ring::error::SendError;
use pi_ring::pi::{Expansion, PiDigits};
use pi_ring::protocol::machine::{Config, TimerId, TimerKind, Timing as CoreTiming};
use pi_ring::protocol::registry::Member;
use pi_ring::protocol::{Action, Body, Input, Message, Node, RawMessage, StateName, Token, Via};
use pi_ring_conform::subject::{Instance, Slot, Subject, SubjectError};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The one thing a mutant does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: the core as it ships.
    None,
    /// Each hand-off carries one digit less than the holding added: 19 new
    /// digits instead of 20.
    NineteenDigits,
    /// TOKEN_IS_HERE is broadcast on taking the token, never again while
    /// holding it.
    NeverHeartbeats,
    /// WHERE_IS_TOKEN is dropped unread.
    IgnoresWhereIsToken,
    /// The token goes to the member before this node in ring order.
    TokenToWrongNode,
    /// No answer by TCP (TOKEN_IS_HERE, TOKEN_WAS_HERE_RECENTLY,
    /// GENERATING_TOKEN to a sender); PINGs and hand-offs still go.
    AnswersNothingOnTcp,
    /// Its answers by TCP carry a `serial_code` one too high.
    WrongSerialCodeOnAnswers,
    /// MY_STATE goes to the ring's port too.
    MyStateOnRingPort,
    /// A message or token with a field it does not know is dropped.
    RejectsUnknownFields,
    /// A datagram it cannot decode stops it.
    CrashesOnGarbage,
    /// It reads TCP connections one after the other, without a deadline.
    OneTcpClientAtATime,
    /// Its TAKE_TOKEN's table lists only itself and the receiver.
    TableOfTwo,
    /// A hand-off refused by the receiver counts as sent (the token is lost).
    CountsRefusedHandOffAsSent,
    /// An OWNER ignores a better TOKEN_IS_HERE.
    NeverYieldsToBetterToken,
    /// An OWNER takes a TOKEN_IS_HERE of its own token (the same author and
    /// revision: the previous holder's late heartbeat) for a better one.
    YieldsToEqualTokens,
    /// A WAITER ignores TOKEN_IS_HERE.
    WaiterIgnoresHeartbeats,
    /// `waiter` is half what it was given.
    WaiterGivesUpEarly,
    /// No PING broadcasts at the start.
    NoStartUpPings,
    /// A LOOSER asks once, on entry, and then never again.
    AsksOnce,
    /// `looser_answer` is one and a half times what it was given.
    ClaimsLate,
    /// TOKEN_WAS_HERE_RECENTLY is ignored.
    IgnoresTokenWasHere,
    /// A LOOSER takes every claim for a worse one.
    ClaimsAgainstBetterClaims,
    /// A LOOSER ignores worse claims.
    IgnoresWorseClaims,
    /// `generating` is one and a half times what it was given.
    GeneratesLate,
    /// GENERATING ignores better claims.
    GeneratingIgnoresBetterClaims,
    /// GENERATING ignores TOKEN_IS_HERE.
    GeneratingIgnoresTokens,
    /// No MY_STATE at all.
    NoMyState,
    /// Whole expansions only: it never says `have`.
    WholeHandOffs,
    /// Broadcasts leave from 127.0.0.1, not from its own address.
    BroadcastsFromLoopback,
    /// Newcomers get no PING (the core is told it went through).
    NoPingToNewcomers,
    /// Every id of a TAKE_TOKEN's table is taken as heard from its host.
    FollowsTables,
}

/// The most digits a mutant computes (its `--target-digits`). A node alone
/// computes without pause until it has them: few, so that it does not take
/// the cores from the cases that time it (7.21 hands it 50,000).
const MAX_DIGITS: usize = 100_000;

/// The fields a base implementation knows (for [`Fault::RejectsUnknownFields`]).
const KNOWN_FIELDS: [&str; 7] = ["serial_code", "type", "author_node_id", "token", "nodes", "data", "old_state"];
const KNOWN_TOKEN_FIELDS: [&str; 4] = ["serial_code", "progress", "author_node_id", "author_token_revision"];

/// Whether every field of `bytes` (and of its token) is one a base
/// implementation knows.
fn only_known_fields(bytes: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(bytes) else { return true };
    let known = |k: &String| KNOWN_FIELDS.contains(&k.as_str()) || k == "new_state";
    let token_known = match object.get("token") {
        Some(serde_json::Value::Object(t)) => t.keys().all(|k| KNOWN_TOKEN_FIELDS.contains(&k.as_str())),
        _ => true,
    };
    object.keys().all(known) && token_known
}

/// A [`Subject`] that runs a mutant in this process for each case.
pub struct Mutant(pub Fault);

impl Subject for Mutant {
    fn fresh(&self) -> bool {
        true
    }

    fn start(&mut self, slot: &Slot) -> Result<Box<dyn Instance>, SubjectError> {
        MutantNode::start(self.0, slot)
            .map(|n| Box::new(n) as Box<dyn Instance>)
            .map_err(|e| SubjectError::Other(e.to_string()))
    }

    fn describe(&self) -> String {
        format!("a mutant of pi-ring's core ({:?})", self.0)
    }
}

/// What the carrier's loop waits for: an input, or `None` to stop.
type Event = Option<Input>;

struct MutantNode {
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Instance for MutantNode {
    fn alive(&mut self) -> Result<(), String> {
        match self.stop.load(Ordering::Relaxed) {
            false => Ok(()),
            true => Err("the mutant stopped".into()),
        }
    }
}

impl Drop for MutantNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.events.send(None);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn udp_socket(host: Ipv4Addr, port: u16) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind(&SockAddr::from(SocketAddrV4::new(host, port)))?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    Ok(socket)
}

impl MutantNode {
    fn start(fault: Fault, slot: &Slot) -> std::io::Result<MutantNode> {
        let (events, inbox) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let everyone = udp_socket(Ipv4Addr::UNSPECIFIED, slot.ports.udp)?;
        let own = udp_socket(slot.host, slot.ports.udp)?;
        for (socket, via) in [(everyone, Via::Udp), (own.try_clone()?, Via::Unicast)] {
            let (events, stop) = (events.clone(), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, SocketAddr::V4(from))) = socket.recv_from(&mut buf) {
                        match Message::decode(&buf[..n], 4096) {
                            Ok(message) if fault != Fault::RejectsUnknownFields || only_known_fields(&buf[..n]) => {
                                let _ = events.send(Some(Input::Received { message, from: *from.ip(), via }));
                            }
                            Ok(_) => {}
                            Err(_) if fault == Fault::CrashesOnGarbage => {
                                stop.store(true, Ordering::Relaxed);
                                let _ = events.send(None);
                            }
                            Err(_) => {}
                        }
                    }
                }
            }));
        }
        let listener = {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.bind(&SockAddr::from(SocketAddrV4::new(slot.host, slot.ports.tcp)))?;
            socket.listen(64)?;
            let listener: TcpListener = socket.into();
            listener.set_nonblocking(true)?;
            listener
        };
        {
            let (events, stop) = (events.clone(), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, SocketAddr::V4(from))) if fault == Fault::OneTcpClientAtATime => {
                            receive(stream, *from.ip(), fault, None, &events)
                        }
                        Ok((stream, SocketAddr::V4(from))) => {
                            let events = events.clone();
                            let deadline = Some(Duration::from_secs(5));
                            std::thread::spawn(move || receive(stream, *from.ip(), fault, deadline, &events));
                        }
                        _ => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            }));
        }
        let mut t = slot.timing;
        match fault {
            Fault::WaiterGivesUpEarly => t.waiter /= 2,
            Fault::ClaimsLate => t.looser_answer = t.looser_answer * 3 / 2,
            Fault::GeneratesLate => t.generating = t.generating * 3 / 2,
            _ => {}
        }
        let config = Config {
            id: slot.id.clone(),
            timing: CoreTiming {
                heartbeat: t.heartbeat,
                waiter: t.waiter,
                looser_ask: t.looser_ask,
                looser_answer: t.looser_answer,
                generating: t.generating,
                hold: Duration::ZERO,
                report: Duration::ZERO,
            },
            max_len: 2 + MAX_DIGITS,
        };
        let node = Node::new(config, slot.host, Expansion::empty(), 0).with_deltas(fault != Fault::WholeHandOffs);
        let carrier = Carrier {
            fault,
            node,
            origin: Instant::now(),
            started: SystemTime::now(),
            timers: HashMap::new(),
            members: Vec::new(),
            pi: Arc::new(PiDigits::new(MAX_DIGITS)),
            own,
            slot: slot.clone(),
            events: events.clone(),
        };
        let _ = events.send(Some(Input::Start));
        threads.push(std::thread::spawn(move || carrier.run(inbox)));
        Ok(MutantNode { events, stop, threads })
    }
}

/// Read one TCP message to its end (within `deadline`, if any) and hand
/// it to the core.
fn receive(mut stream: TcpStream, from: Ipv4Addr, fault: Fault, deadline: Option<Duration>, events: &Sender<Event>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(deadline);
    let mut bytes = Vec::new();
    if stream.read_to_end(&mut bytes).is_ok() && (fault != Fault::RejectsUnknownFields || only_known_fields(&bytes)) {
        if let Ok(message) = Message::decode(&bytes, 64 << 20) {
            let _ = events.send(Some(Input::Received { message, from, via: Via::Tcp }));
        }
    }
}

/// One message by TCP from `source`: connect, write, close our side, and
/// wait for the receiver to close.
fn send_tcp(source: Ipv4Addr, to: SocketAddrV4, bytes: &[u8]) -> Result<(), SendError> {
    let failed = |reason: std::io::Error| SendError::Connect { addr: to, reason: reason.to_string() };
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(failed)?;
    socket.bind(&SockAddr::from(SocketAddrV4::new(source, 0))).map_err(failed)?;
    socket.connect_timeout(&SockAddr::from(to), Duration::from_secs(1)).map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => SendError::Refused { addr: to },
        _ => failed(e),
    })?;
    let mut stream: TcpStream = socket.into();
    let wrote = |e: std::io::Error| SendError::Write { addr: to, reason: e.to_string() };
    stream.write_all(bytes).map_err(wrote)?;
    stream.shutdown(Shutdown::Write).map_err(wrote)?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(wrote)?;
    let _ = stream.read(&mut [0u8; 1]);
    Ok(())
}

struct Carrier {
    fault: Fault,
    node: Node,
    origin: Instant,
    started: SystemTime,
    timers: HashMap<TimerKind, (TimerId, Instant)>,
    members: Vec<Member>,
    pi: Arc<PiDigits>,
    own: UdpSocket,
    slot: Slot,
    events: Sender<Event>,
}

impl Carrier {
    fn run(mut self, inbox: Receiver<Event>) {
        loop {
            let next = self.timers.values().min_by_key(|(_, at)| *at).copied();
            let wait = next.map_or(Duration::from_secs(1), |(_, at)| at.saturating_duration_since(Instant::now()));
            match inbox.recv_timeout(wait) {
                Ok(None) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Some(input)) => self.feed(input),
                Err(RecvTimeoutError::Timeout) => {
                    if let Some((timer, _)) = next {
                        self.timers.remove(&timer.kind);
                        self.feed(Input::Timer(timer));
                    }
                }
            }
        }
    }

    /// What the fault makes of a message before the core sees it (`None`:
    /// dropped).
    fn hear(&self, mut message: RawMessage) -> Option<RawMessage> {
        let state = self.node.state();
        let candidate = self.node.candidate();
        let drop_it = match (&mut message.body, self.fault) {
            (Body::WhereIsToken, Fault::IgnoresWhereIsToken) => true,
            (Body::TokenWasHereRecently, Fault::IgnoresTokenWasHere) => true,
            (Body::TokenIsHere { token }, Fault::NeverYieldsToBetterToken) => {
                state == StateName::Owner && *token > self.node.token()
            }
            (Body::TokenIsHere { token }, Fault::YieldsToEqualTokens) => {
                let own = self.node.token();
                let same = (&token.author_node_id, token.author_token_revision)
                    == (&own.author_node_id, own.author_token_revision);
                if state == StateName::Owner && same {
                    // Another, better token, as the core sees it.
                    token.progress = own.progress + 1;
                    token.author_node_id.push('~');
                }
                false
            }
            (Body::TokenIsHere { .. }, Fault::WaiterIgnoresHeartbeats) => state == StateName::Waiter,
            (Body::TokenIsHere { .. }, Fault::GeneratingIgnoresTokens) => state == StateName::Generating,
            (Body::GeneratingToken { token }, Fault::IgnoresWorseClaims) => {
                state == StateName::Looser && *token < candidate
            }
            (Body::GeneratingToken { token }, Fault::GeneratingIgnoresBetterClaims) => {
                state == StateName::Generating && *token > candidate
            }
            (Body::GeneratingToken { token }, Fault::ClaimsAgainstBetterClaims) => {
                if state == StateName::Looser {
                    *token = Token { progress: 0, author_node_id: "!".into(), author_token_revision: 0 };
                }
                false
            }
            _ => false,
        };
        (!drop_it).then_some(message)
    }

    fn feed(&mut self, input: Input) {
        if let (Input::Received { message, .. }, Fault::FollowsTables) = (&input, self.fault) {
            if let Body::TakeToken { nodes, .. } = &message.body {
                for (id, host) in nodes {
                    if let Ok(from) = host.parse() {
                        let heard: RawMessage = Message::new(id, Body::Ping);
                        let _ = self.events.send(Some(Input::Received { message: heard, from, via: Via::Udp }));
                    }
                }
            }
        }
        let input = match input {
            Input::Received { message, from, via } => match self.hear(message) {
                Some(message) => Input::Received { message, from, via },
                None => return,
            },
            Input::TokenSent { attempt, result: Err(_) } if self.fault == Fault::CountsRefusedHandOffAsSent => {
                Input::TokenSent { attempt, result: Ok(()) }
            }
            input => input,
        };
        let start = matches!(input, Input::Start);
        let asking = matches!(&input, Input::Timer(t) if t.kind == TimerKind::LooserAsk);
        let now = self.origin.elapsed();
        let mut actions = self.node.handle(now, input);
        actions.retain(|action| match (action, self.fault) {
            (Action::Broadcast(Message { body: Body::Ping, .. }), Fault::NoStartUpPings) => !start,
            (Action::Broadcast(Message { body: Body::WhereIsToken, .. }), Fault::AsksOnce) => !asking,
            _ => true,
        });
        // Never heart-beats: TOKEN_IS_HERE is broadcast only on taking the
        // token (entering OWNER), never again while holding it.
        let mut announce = actions.iter().any(|a| matches!(a, Action::StateChanged { new: StateName::Owner, .. }));
        for action in actions {
            if self.fault == Fault::NeverHeartbeats {
                if let Action::Broadcast(Message { body: Body::TokenIsHere { .. }, .. }) = &action {
                    if !std::mem::take(&mut announce) {
                        continue;
                    }
                }
            }
            self.carry_out(action);
        }
    }

    fn carry_out(&mut self, action: Action) {
        let ring = |host| SocketAddrV4::new(host, self.slot.ports.udp);
        match action {
            Action::Broadcast(message) if self.fault == Fault::BroadcastsFromLoopback => {
                if let Ok(socket) = udp_socket(Ipv4Addr::LOCALHOST, 0) {
                    let _ = socket.send_to(&message.encode(), ring(self.slot.broadcast));
                }
            }
            Action::Broadcast(message) => {
                let _ = self.own.send_to(&message.encode(), ring(self.slot.broadcast));
            }
            Action::Unicast { to, message } => {
                for host in to {
                    let _ = self.own.send_to(&message.encode(), ring(host));
                }
            }
            Action::Send { to, message } => {
                if self.fault != Fault::AnswersNothingOnTcp {
                    self.send(to, message, |_| None);
                }
            }
            Action::Probe { id, to, asked, .. } if self.fault == Fault::NoPingToNewcomers => {
                let _ = self.events.send(Some(Input::Probed { id, host: to, asked, result: Ok(()) }));
            }
            Action::Probe { id, to, message, asked } => {
                self.send(to, message, move |result| Some(Input::Probed { id, host: to, asked, result }));
            }
            Action::SendToken { attempt, host, mut message, .. } => {
                if let Body::TakeToken { token, data, nodes, .. } = &mut message.body {
                    match self.fault {
                        // Its hand-offs carry one digit less than it added.
                        Fault::NineteenDigits => {
                            *data = data.prefix(data.len().saturating_sub(1));
                            token.progress = data.len() as u64;
                        }
                        Fault::TableOfTwo => nodes.retain(|id, h| *id == self.slot.id || *h == host.to_string()),
                        _ => {}
                    }
                }
                let host =
                    if self.fault == Fault::TokenToWrongNode { self.member_before_us().unwrap_or(host) } else { host };
                self.send(host, message, move |result| Some(Input::TokenSent { attempt, result }));
            }
            Action::SetTimer { timer, after } => {
                self.timers.insert(timer.kind, (timer, Instant::now() + after));
            }
            Action::CancelTimer(kind) => {
                self.timers.remove(&kind);
            }
            Action::Compute { epoch, len, check } => {
                // Off the event loop, as section 4 asks: heartbeats go on.
                let (pi, events) = (Arc::clone(&self.pi), self.events.clone());
                std::thread::spawn(move || {
                    let checked = check.map(|digits| pi.verify_unchecked(&digits).expansion);
                    let expansion = pi.expansion(len);
                    let _ = events.send(Some(Input::Computed { epoch, expansion: Some(expansion), checked }));
                });
            }
            Action::Report(_) if self.fault == Fault::NoMyState => {}
            Action::Report(report) => {
                let unix_ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                let report =
                    report.into_my_state(unix_ms(SystemTime::now()), unix_ms(self.started), self.slot.host.to_string());
                let message: Message = Message::new(&self.slot.id, Body::MyState(Box::new(report)));
                let _ = self
                    .own
                    .send_to(&message.encode(), SocketAddrV4::new(self.slot.broadcast, self.slot.ports.monitor));
                if self.fault == Fault::MyStateOnRingPort {
                    let _ = self.own.send_to(&message.encode(), ring(self.slot.broadcast));
                }
            }
            Action::StateChanged { .. } => {}
            Action::Members(members) => self.members = members,
            Action::Persist { .. } | Action::Exit => {}
        }
    }

    /// The member just before this node in ring order (wrapping around).
    fn member_before_us(&self) -> Option<Ipv4Addr> {
        let others: Vec<&Member> = self.members.iter().filter(|m| m.id != self.slot.id).collect();
        let before = others.iter().rev().find(|m| m.id.as_str() < self.slot.id.as_str()).or(others.last());
        before.map(|m| m.host)
    }

    /// Send by TCP on a thread of its own; feed the core what `then` makes
    /// of the result.
    fn send(
        &self,
        to: Ipv4Addr,
        message: Message,
        then: impl FnOnce(Result<(), SendError>) -> Option<Input> + Send + 'static,
    ) {
        let (source, addr, events) = (self.slot.host, SocketAddrV4::new(to, self.slot.ports.tcp), self.events.clone());
        let mut bytes = message.encode();
        let answer = matches!(
            message.body,
            Body::TokenIsHere { .. } | Body::TokenWasHereRecently | Body::GeneratingToken { .. }
        );
        if self.fault == Fault::WrongSerialCodeOnAnswers && answer {
            let code = match message.body {
                Body::TokenWasHereRecently => "581831",
                _ => "328067",
            };
            let wrong = (code.parse::<u32>().unwrap() + 1).to_string();
            bytes = String::from_utf8_lossy(&bytes).replacen(code, &wrong, 1).into_bytes();
        }
        std::thread::spawn(move || {
            if let Some(input) = then(send_tcp(source, addr, &bytes)) {
                let _ = events.send(Some(input));
            }
        });
    }
}
