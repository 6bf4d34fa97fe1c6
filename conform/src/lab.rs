//! The network around the node under test: the scripted peers that play
//! every other member of its ring, and the ears that record everything the
//! node sends.
//!
//! Each peer has its own loopback address, as a node of a real ring on one
//! host has (PROTOCOL section 5): a UDP socket on that address to broadcast
//! and receive unicast datagrams from, and a TCP listener on the ring's TCP
//! port that reads each connection to its end. One socket on `0.0.0.0`
//! hears the ring port's broadcasts and one the monitoring port, so what
//! the node says is recorded with the time it arrived, the channel and the
//! sender's address, whoever it was meant for.

use crate::wire::{self, Kind, Wire};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest TCP message a peer reads (the node's expansion with room).
const MAX_TCP_MESSAGE: usize = 64 << 20;
/// The longest a peer waits for one connection's message.
const TCP_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a peer that sent a message waits for the receiver to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Entries kept: a node that floods cannot exhaust the tool's memory.
const MAX_ENTRIES: usize = 200_000;
/// How often background threads look at their stop flag.
const POLL: Duration = Duration::from_millis(20);
/// Connections read at once, over every peer (a thread each): a node that
/// opens thousands cannot exhaust the tool's threads. A case needs a few.
const MAX_READERS: usize = 128;
/// Connections being read now.
static READERS: AtomicUsize = AtomicUsize::new(0);

/// The ring's three ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub udp: u16,
    pub tcp: u16,
    pub monitor: u16,
}

impl Ports {
    /// Three consecutive free ports, from 10,000-19,999 (below the test
    /// bed's range and Linux's ephemeral ports): a ring nobody else hears.
    pub fn free() -> io::Result<Ports> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Below Linux's ephemeral range (32768-60999), where any process's
        // outgoing connection or unbound sender may take a port between
        // this check and the lab's bind (CI saw every case of a run fail
        // with "Address already in use"), and below the test bed's
        // 20000-32767.
        const FIRST: u32 = 10_000;
        const BLOCKS: u32 = (19_999 - FIRST) / 3;
        let start = std::process::id().wrapping_mul(7919) % BLOCKS;
        for _ in 0..BLOCKS {
            let block = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % BLOCKS;
            let base = (FIRST + block * 3) as u16;
            let udp = |port| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok();
            let tcp = TcpListener::bind((Ipv4Addr::UNSPECIFIED, base + 1)).is_ok();
            if udp(base) && tcp && udp(base + 2) {
                return Ok(Ports { udp: base, tcp: base + 1, monitor: base + 2 });
            }
        }
        Err(io::Error::new(io::ErrorKind::AddrInUse, "no three free ports in 10000-19999"))
    }
}

/// A block of loopback addresses for one case: `127.A.B.x`, with `A.B`
/// from the process id and a counter, so that cases (and two runs of the
/// tool at once) never share an address.
pub fn address_block() -> [u8; 3] {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    [127, 20 + (pid % 60) as u8, 1 + ((pid / 60 + n) % 250) as u8]
}

/// How a message reached the tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A broadcast on the ring's UDP port.
    Broadcast,
    /// A datagram to one peer's address on the ring port.
    Unicast { to: String },
    /// A TCP connection to one peer.
    Tcp { to: String },
    /// A datagram on the monitoring port.
    Monitor,
}

/// One message heard.
#[derive(Clone, Debug)]
pub struct Heard {
    pub at: Instant,
    pub from: Ipv4Addr,
    pub channel: Channel,
    pub size: usize,
    pub message: Result<Wire, String>,
}

impl Heard {
    pub fn wire(&self) -> Option<&Wire> {
        self.message.as_ref().ok()
    }

    pub fn kind(&self) -> Option<Kind> {
        self.wire().map(|w| w.kind)
    }

    pub fn is_tcp_to(&self, peer: &str) -> bool {
        matches!(&self.channel, Channel::Tcp { to } if to == peer)
    }

    /// A short description for reports.
    pub fn describe(&self) -> String {
        let what = match &self.message {
            Ok(w) => match &w.token {
                Some(t) => format!("{} {t}", w.kind),
                None => w.kind.to_string(),
            },
            Err(e) => format!("an invalid message ({e})"),
        };
        let how = match &self.channel {
            Channel::Broadcast => "broadcast".to_owned(),
            Channel::Unicast { to } => format!("datagram to {to}"),
            Channel::Tcp { to } => format!("TCP to {to}"),
            Channel::Monitor => "on the monitoring port".to_owned(),
        };
        format!("{what} ({how}, from {})", self.from)
    }
}

/// Everything heard, in order, shared with the listening threads.
#[derive(Default)]
pub struct Log {
    entries: Mutex<Vec<Heard>>,
    changed: Condvar,
}

impl Log {
    fn push(&self, heard: Heard) {
        let mut entries = self.entries.lock().unwrap();
        if entries.len() < MAX_ENTRIES {
            entries.push(heard);
        }
        self.changed.notify_all();
    }

    /// The number of entries so far: a mark to look from.
    pub fn mark(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    /// Entries from `mark` on.
    pub fn since(&self, mark: usize) -> Vec<Heard> {
        self.entries.lock().unwrap()[mark..].to_vec()
    }

    /// The first entry from `mark` on that matches, waiting until `deadline`.
    pub fn wait_for(&self, mark: usize, deadline: Instant, matches: impl Fn(&Heard) -> bool) -> Option<Heard> {
        self.wait_for_at(mark, deadline, matches).map(|(_, heard)| heard)
    }

    /// Like [`Log::wait_for`], with the entry's index (a mark just past it
    /// is `index + 1`).
    pub fn wait_for_at(
        &self,
        mark: usize,
        deadline: Instant,
        matches: impl Fn(&Heard) -> bool,
    ) -> Option<(usize, Heard)> {
        let mut entries = self.entries.lock().unwrap();
        let mut looked = mark;
        loop {
            if let Some(offset) = entries[looked..].iter().position(&matches) {
                return Some((looked + offset, entries[looked + offset].clone()));
            }
            looked = entries.len();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            entries = self.changed.wait_timeout(entries, deadline - now).unwrap().0;
        }
    }
}

/// The peers and ears of one case. Dropping it stops every thread and
/// closes every socket.
pub struct Lab {
    pub ports: Ports,
    pub broadcast: Ipv4Addr,
    pub log: Arc<Log>,
    block: [u8; 3],
    next_host: u8,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Lab {
    /// Ears on the ring's broadcast and monitoring ports.
    pub fn new(ports: Ports, broadcast: Ipv4Addr, block: [u8; 3]) -> io::Result<Lab> {
        let mut lab = Lab {
            ports,
            broadcast,
            log: Arc::default(),
            block,
            next_host: 10,
            stop: Arc::default(),
            threads: Vec::new(),
        };
        let ring = udp_socket(Ipv4Addr::UNSPECIFIED, ports.udp)?;
        lab.listen_udp(ring, Channel::Broadcast);
        let monitor = udp_socket(Ipv4Addr::UNSPECIFIED, ports.monitor)?;
        lab.listen_udp(monitor, Channel::Monitor);
        Ok(lab)
    }

    /// The `n`th address of this case's block (the node under test has 2).
    pub fn host(&self, n: u8) -> Ipv4Addr {
        let [a, b, c] = self.block;
        Ipv4Addr::new(a, b, c, n)
    }

    /// A new peer named `id` on an address of its own, listening on TCP.
    pub fn peer(&mut self, id: &str) -> io::Result<Peer> {
        let host = self.host(self.next_host);
        self.next_host += 1;
        let udp = udp_socket(host, self.ports.udp)?;
        udp.set_broadcast(true)?;
        self.listen_udp(udp.try_clone()?, Channel::Unicast { to: id.into() });
        let mut peer = Peer {
            id: id.into(),
            host,
            ports: self.ports,
            broadcast: self.broadcast,
            udp,
            log: Arc::clone(&self.log),
            listening: None,
        };
        peer.open()?;
        Ok(peer)
    }

    fn listen_udp(&mut self, socket: UdpSocket, channel: Channel) {
        let (log, stop) = (Arc::clone(&self.log), Arc::clone(&self.stop));
        socket.set_read_timeout(Some(POLL)).expect("a read timeout");
        self.threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, SocketAddr::V4(from))) = socket.recv_from(&mut buf) {
                    let at = Instant::now();
                    let message = wire::parse(&buf[..n]);
                    log.push(Heard { at, from: *from.ip(), channel: channel.clone(), size: n, message });
                }
            }
        }));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One scripted member of the ring.
pub struct Peer {
    pub id: String,
    pub host: Ipv4Addr,
    ports: Ports,
    broadcast: Ipv4Addr,
    udp: UdpSocket,
    log: Arc<Log>,
    listening: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Peer {
    /// Broadcast `bytes` on the ring port from this peer's address.
    pub fn broadcast(&self, bytes: &[u8]) {
        let _ = self.udp.send_to(bytes, (self.broadcast, self.ports.udp));
    }

    /// Send `bytes` by UDP to the ring port of `to`.
    pub fn datagram(&self, to: Ipv4Addr, bytes: &[u8]) {
        let _ = self.udp.send_to(bytes, (to, self.ports.udp));
    }

    /// Broadcast a message of `kind` by this peer.
    pub fn say(&self, kind: Kind, token: Option<&wire::Token>) {
        self.broadcast(&wire::build(kind, &self.id, token, serde_json::json!({})));
    }

    /// Broadcast TOKEN_IS_HERE with `token` now and every `every` until the
    /// returned guard is stopped or dropped: this peer holds a live token.
    pub fn heartbeat(&self, token: &wire::Token, every: Duration) -> Beating {
        let bytes = wire::build(Kind::TokenIsHere, &self.id, Some(token), serde_json::json!({}));
        let socket = self.udp.try_clone().expect("a clone of the peer's socket");
        let to = (self.broadcast, self.ports.udp);
        let stop = Arc::new(AtomicBool::new(false));
        let last = Arc::new(Mutex::new(Instant::now()));
        let (flag, sent) = (Arc::clone(&stop), Arc::clone(&last));
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    let _ = socket.send_to(&bytes, to);
                    *sent.lock().unwrap() = Instant::now();
                    next += every;
                }
                std::thread::sleep(Duration::from_millis(1).min(every));
            }
        });
        Beating { stop, last, thread: Some(thread) }
    }

    /// One message by TCP to `to`, from this peer's address: connect, write
    /// it all, close our side and wait for the receiver to close.
    pub fn send_tcp(&self, to: Ipv4Addr, bytes: &[u8]) -> io::Result<()> {
        let mut stream = self.connect(to)?;
        stream.write_all(bytes)?;
        stream.shutdown(Shutdown::Write)?;
        stream.set_read_timeout(Some(CLOSE_TIMEOUT))?;
        let _ = stream.read(&mut [0u8; 1]);
        Ok(())
    }

    /// A TCP connection to `to`'s ring port from this peer's address.
    pub fn connect(&self, to: Ipv4Addr) -> io::Result<TcpStream> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.bind(&SockAddr::from(SocketAddrV4::new(self.host, 0)))?;
        let addr = SockAddr::from(SocketAddrV4::new(to, self.ports.tcp));
        socket.connect_timeout(&addr, Duration::from_secs(2))?;
        Ok(socket.into())
    }

    /// Listen on the ring's TCP port (peers start listening).
    pub fn open(&mut self) -> io::Result<()> {
        if self.listening.is_some() {
            return Ok(());
        }
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&SockAddr::from(SocketAddrV4::new(self.host, self.ports.tcp)))?;
        socket.listen(64)?;
        let listener: TcpListener = socket.into();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, log, id) = (Arc::clone(&stop), Arc::clone(&self.log), self.id.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, SocketAddr::V4(from))) => {
                        let Some(reading) = Reading::start() else {
                            // Closed unread; the cases see why.
                            let why = format!("not read: the node had over {MAX_READERS} connections open at once");
                            let channel = Channel::Tcp { to: id.clone() };
                            log.push(Heard {
                                at: Instant::now(),
                                from: *from.ip(),
                                channel,
                                size: 0,
                                message: Err(why),
                            });
                            continue;
                        };
                        let (log, id) = (Arc::clone(&log), id.clone());
                        std::thread::spawn(move || {
                            let _reading = reading;
                            read_message(stream, *from.ip(), id, &log)
                        });
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        });
        self.listening = Some((stop, thread));
        Ok(())
    }

    /// Stop listening: connections to this peer are refused from now on.
    pub fn close(&mut self) {
        if let Some((stop, thread)) = self.listening.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.close();
    }
}

/// A peer's heartbeat (see [`Peer::heartbeat`]).
pub struct Beating {
    stop: Arc<AtomicBool>,
    last: Arc<Mutex<Instant>>,
    thread: Option<JoinHandle<()>>,
}

impl Beating {
    /// Stop beating; returns when the last TOKEN_IS_HERE was sent.
    pub fn stop(mut self) -> Instant {
        self.halt();
        let last = *self.last.lock().unwrap();
        last
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Beating {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One of the [`MAX_READERS`] connections being read, released on drop.
struct Reading;

impl Reading {
    fn start() -> Option<Reading> {
        let before = READERS.fetch_add(1, Ordering::SeqCst);
        if before >= MAX_READERS {
            READERS.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Reading)
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        READERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Read one message to the end of the stream (bounded), record it, close.
fn read_message(mut stream: TcpStream, from: Ipv4Addr, to: String, log: &Log) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(TCP_READ_TIMEOUT));
    let mut bytes = Vec::new();
    let result = (&mut stream).take(MAX_TCP_MESSAGE as u64 + 1).read_to_end(&mut bytes);
    let at = Instant::now();
    let message = match result {
        Err(e) => Err(format!("the connection failed before its end ({e})")),
        Ok(_) if bytes.len() > MAX_TCP_MESSAGE => Err(format!("longer than {MAX_TCP_MESSAGE} bytes")),
        Ok(_) if bytes.is_empty() => return, // a connect without a message (a probe)
        Ok(_) => wire::parse(&bytes),
    };
    log.push(Heard { at, from, channel: Channel::Tcp { to }, size: bytes.len(), message });
}

fn udp_socket(host: Ipv4Addr, port: u16) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(SocketAddrV4::new(host, port)))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that opens connections and sends nothing gets at most
    /// [`MAX_READERS`] threads of the tool; the rest are closed unread,
    /// and the log says so.
    #[test]
    fn connections_beyond_the_reader_limit_are_closed_unread_and_logged() {
        let mut lab = Lab::new(Ports::free().unwrap(), Ipv4Addr::new(127, 255, 255, 255), address_block()).unwrap();
        let peer = lab.peer("p").unwrap();
        let mark = lab.log.mark();
        let idle: Vec<TcpStream> =
            (0..MAX_READERS + 10).map(|_| TcpStream::connect((peer.host, lab.ports.tcp)).expect("connect")).collect();
        let refused = lab.log.wait_for(mark, Instant::now() + Duration::from_secs(10), |h| {
            h.message.as_ref().is_err_and(|e| e.contains("over 128 connections open at once"))
        });
        assert!(refused.is_some(), "no connection was refused");
        assert!(READERS.load(Ordering::SeqCst) <= MAX_READERS);
        drop(idle);
    }
}
