//! The TCP endpoint: one message per connection (PROTOCOL section 5).
//!
//! Receiving: a listener on the node's own address with a real backlog; each
//! connection is read until end of stream with a size cap and a deadline,
//! and the number of connections served at once is bounded. A message is
//! only decoded here (off the event loop when it is large): a TAKE_TOKEN's
//! data goes to the node as it came, and the node checks it (PROTOCOL
//! section 4).
//!
//! Sending: connect from the node's own address with a timeout, write the
//! whole document, close. "Sent" means only that.

use super::messages::{Inbound, SendTo, Via};
use super::sockets::{bound_socket, socket_error};
use crate::auth::{Authenticator, Scope};
use crate::error::{SendError, StartError};
use crate::protocol::{DecodeError, RawMessage};
use crate::warn_limit::WarnLimiter;
use crate::warn_limited;
use actix::prelude::*;
use socket2::Type;
use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

/// Answers and PINGs (not hand-offs) in flight at once: each holds a socket,
/// so a flood of valid datagrams cannot exhaust the file descriptors.
pub const MAX_REPLIES_IN_FLIGHT: usize = 64;

/// Messages at least this large are decoded, encoded and sealed off the
/// event loop.
const BLOCKING_DECODE_BYTES: usize = 64 * 1024;

/// Slowest average transfer that is never cut short (bytes/s): far below
/// any real link, far above an idle or byte-a-second client.
const MIN_RATE: f64 = 16.0 * 1024.0;
/// How often a connection's pace is checked while it sends nothing.
const RATE_CHECK: Duration = Duration::from_millis(250);

/// How long a connection may take before it counts as too slow.
///
/// An honest peer on a busy machine or a slow link can be late: a 79-byte
/// PING may arrive after a second. So a connection always gets `patient`
/// plus the time its bytes take at [`MIN_RATE`]. Only while other
/// connections wait for a slot (the node is flooded) does the short
/// `pressed` grace apply instead, so idle and byte-a-second clients are
/// the ones that give way, not the peers queued behind them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub patient: Duration,
    pub pressed: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace { patient: Duration::from_secs(5), pressed: Duration::from_millis(500) }
    }
}

impl Pace {
    /// Whether a connection that delivered `received` bytes in `elapsed`
    /// is too slow to keep, when `others_wait` for a slot or not.
    pub fn too_slow(&self, received: usize, elapsed: Duration, others_wait: bool) -> bool {
        let grace = if others_wait { self.pressed } else { self.patient };
        elapsed > grace + Duration::from_secs_f64(received as f64 / MIN_RATE)
    }
}

#[derive(Clone, Debug)]
pub struct TcpConfig {
    pub bind: Ipv4Addr,
    pub port: u16,
    /// Largest message accepted; larger ones are dropped.
    pub max_message_bytes: usize,
    /// Longest time spent reading one connection.
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
    /// Connections served at once; more wait in the backlog.
    pub max_connections: usize,
    /// When a connection is too slow to keep.
    pub pace: Pace,
    pub backlog: u32,
    /// The ring's secret, if it has one.
    pub auth: Option<Arc<Authenticator>>,
}

pub struct TcpEndpoint {
    listener: Option<TcpListener>,
    /// Slots for answers and PINGs in flight ([`MAX_REPLIES_IN_FLIGHT`]).
    replies: Arc<Semaphore>,
    config: TcpConfig,
    inbound: Recipient<Inbound>,
}

impl TcpEndpoint {
    /// Bind the listener (must run inside the actor system).
    pub fn bind(config: TcpConfig, inbound: Recipient<Inbound>) -> Result<Self, StartError> {
        let addr = SocketAddrV4::new(config.bind, config.port);
        // Address reuse: a restarted node must not wait for TIME_WAIT.
        let socket = bound_socket(Type::STREAM, addr, |s| s.set_reuse_address(true))?;
        socket.listen(config.backlog as i32).map_err(socket_error("TCP", addr, "listen on"))?;
        let listener = TcpListener::from_std(socket.into()).map_err(socket_error("TCP", addr, "register"))?;
        let replies = Arc::new(Semaphore::new(MAX_REPLIES_IN_FLIGHT));
        Ok(TcpEndpoint { listener: Some(listener), replies, config, inbound })
    }
}

impl Actor for TcpEndpoint {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let server = Server {
            config: self.config.clone(),
            inbound: self.inbound.clone(),
            warnings: Rc::new(RefCell::new(WarnLimiter::new(5))),
            slots: Arc::new(Semaphore::new(self.config.max_connections)),
            waiting: Rc::new(Cell::new(false)),
            buffered: Rc::new(Cell::new(0)),
            budget: inbound_budget(self.config.max_message_bytes),
        };
        ctx.spawn(server.accept_loop(listener).into_actor(self));
    }
}

/// What every connection task shares.
#[derive(Clone)]
struct Server {
    config: TcpConfig,
    inbound: Recipient<Inbound>,
    warnings: Rc<RefCell<WarnLimiter>>,
    slots: Arc<Semaphore>,
    /// An accepted connection waits for a slot: the node is flooded.
    waiting: Rc<Cell<bool>>,
    /// Bytes buffered by all inbound connections together, and the most
    /// allowed ([`inbound_budget`]).
    buffered: Rc<Cell<usize>>,
    budget: usize,
}

/// The most bytes all inbound connections may buffer together: two of the
/// largest messages (a hand-off and a merging one) and some room for small
/// ones. Without it, 256 slow senders of nearly 32 MiB each could take 8 GiB.
pub fn inbound_budget(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(2).saturating_add(16 << 20)
}

/// The share of [`Server::buffered`] one connection holds, given back when
/// it is dropped.
struct Charge {
    buffered: Rc<Cell<usize>>,
    bytes: usize,
}

impl Charge {
    /// Hold `capacity` bytes in all; false if that would exceed `budget`.
    fn hold(&mut self, capacity: usize, budget: usize) -> bool {
        let others = self.buffered.get() - self.bytes;
        self.bytes = capacity;
        self.buffered.set(others + capacity);
        others + capacity <= budget
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.buffered.set(self.buffered.get() - self.bytes);
    }
}

impl Server {
    async fn accept_loop(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, SocketAddr::V4(peer))) => {
                    // One accepted connection at most waits here for a
                    // slot; the rest stay in the kernel's backlog. While it
                    // waits, slow connections give way (see `Pace`).
                    let permit = match Arc::clone(&self.slots).try_acquire_owned() {
                        Ok(permit) => permit,
                        Err(_) => {
                            self.waiting.set(true);
                            let permit = Arc::clone(&self.slots).acquire_owned().await;
                            self.waiting.set(false);
                            let Ok(permit) = permit else { return };
                            permit
                        }
                    };
                    let server = self.clone();
                    actix_rt::spawn(async move {
                        server.serve(stream, peer).await;
                        drop(permit);
                    });
                }
                Ok((_, peer)) => log::debug!("ignoring a non-IPv4 connection from {peer}"),
                Err(e) => {
                    // E.g. out of file descriptors: back off briefly.
                    warn_limited!(self.warnings.borrow_mut(), "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn serve(&self, mut stream: TcpStream, peer: SocketAddrV4) {
        let mut charge = Charge { buffered: Rc::clone(&self.buffered), bytes: 0 };
        let Some(buf) = self.read_message(&mut stream, peer, &mut charge).await else { return };
        drop(stream);
        let from = *peer.ip();
        let Some(message) = self.decode(buf, from).await else {
            return;
        };
        self.inbound.do_send(Inbound { message, from, via: Via::Tcp });
    }

    /// Read one message until end of stream. A connection that sends more
    /// than the size cap, takes longer than the read timeout, or is too slow
    /// by [`Pace`] (idle or byte-a-second clients) is closed with a warning,
    /// so slow clients cannot hold the connection slots.
    async fn read_message(&self, stream: &mut TcpStream, peer: SocketAddrV4, charge: &mut Charge) -> Option<Vec<u8>> {
        let cap = self.config.max_message_bytes;
        let started = tokio::time::Instant::now();
        let mut buf = Vec::new();
        loop {
            let elapsed = started.elapsed();
            let Some(left) = self.config.read_timeout.checked_sub(elapsed).filter(|d| !d.is_zero()) else {
                let timeout = self.config.read_timeout;
                warn_limited!(
                    self.warnings.borrow_mut(),
                    "closed a connection from {peer}: no complete message within {timeout:?} ({} bytes)",
                    buf.len()
                );
                return None;
            };
            // Grow as data comes: an idle connection costs no buffer.
            buf.reserve(if buf.is_empty() { 4096 } else { 64 * 1024 });
            if !charge.hold(buf.capacity(), self.budget) {
                warn_limited!(
                    self.warnings.borrow_mut(),
                    "closed a connection from {peer}: all connections together buffer more than {} bytes \
                     ({} bytes from this one)",
                    self.budget,
                    buf.len()
                );
                return None;
            }
            match tokio::time::timeout(left.min(RATE_CHECK), stream.read_buf(&mut buf)).await {
                Ok(Ok(0)) => return Some(buf),
                Ok(Ok(_)) => {
                    if buf.len() > cap {
                        warn_limited!(
                            self.warnings.borrow_mut(),
                            "closed a connection from {peer}: message over the {cap}-byte limit"
                        );
                        return None;
                    }
                }
                Ok(Err(e)) => {
                    warn_limited!(self.warnings.borrow_mut(), "reading from {peer} failed: {e}");
                    return None;
                }
                Err(_) => {} // nothing within RATE_CHECK; check the rate below
            }
            let elapsed = started.elapsed();
            let others_wait = self.waiting.get();
            if self.config.pace.too_slow(buf.len(), elapsed, others_wait) {
                let why = if others_wait { ", while other connections waited" } else { "" };
                warn_limited!(
                    self.warnings.borrow_mut(),
                    "closed a connection from {peer}: too slow ({} bytes in {:.1} s{why})",
                    buf.len(),
                    elapsed.as_secs_f64()
                );
                return None;
            }
        }
    }

    /// Decode one message (and check its tag, with a secret); `None` (after
    /// a warning) if invalid. A TAKE_TOKEN's data stays as it came: the
    /// node checks it (PROTOCOL section 4).
    async fn decode(&self, buf: Vec<u8>, from: Ipv4Addr) -> Option<RawMessage> {
        let buf_len = buf.len();
        let cap = self.config.max_message_bytes;
        let auth = self.config.auth.clone();
        let here = Scope::To(self.config.bind);
        let decode = move || match auth {
            None => RawMessage::decode(&buf, cap),
            Some(auth) => {
                auth.open(&buf, from, here).map_err(DecodeError::from).and_then(|body| RawMessage::decode(&body, cap))
            }
        };
        let raw =
            if buf_len >= BLOCKING_DECODE_BYTES { tokio::task::spawn_blocking(decode).await.ok()? } else { decode() };
        match raw {
            Ok(raw) => Some(raw),
            Err(e) => {
                warn_limited!(self.warnings.borrow_mut(), "dropped a bad message from {from}: {e}");
                None
            }
        }
    }
}

/// Deliver one message: connect from `bind` with a timeout, write, close.
///
/// Every step is bounded, so a receiver that accepts but does not read (a
/// stopped process, a frozen machine, a hostile member) cannot hold the
/// sender for ever: the connect by `patience`; each write by `patience`
/// without progress; the whole transfer by the time it takes at
/// [`MIN_RATE`] (the rate receivers demand too), plus `patience`, and by
/// `limit` if given (a hand-off: the recovery bound, so a member reading a
/// few KB/s cannot hold the token longer than losing it would cost).
async fn send_message(
    bind: Ipv4Addr,
    to: SocketAddrV4,
    bytes: &[u8],
    patience: Duration,
    limit: Option<Duration>,
    until: Proof,
) -> Result<(), SendError> {
    let started = tokio::time::Instant::now();
    let connect_timeout = patience;
    let connect_error = |e: std::io::Error| SendError::Connect { addr: to, reason: e.to_string() };
    let socket = TcpSocket::new_v4().map_err(connect_error)?;
    allow_port_reuse_at_connect(&socket);
    // The socket buffers stay the kernel's: larger ones would let a
    // member that is stopped (SIGSTOP, a frozen machine) swallow whole
    // expansions with no stalled write to tell, and cost a recovery each
    // time (tests/ring network_faults, stopped member).
    socket.bind(SocketAddrV4::new(bind, 0).into()).map_err(connect_error)?;
    let mut stream = match tokio::time::timeout(connect_timeout, socket.connect(to.into())).await {
        Err(_) => return Err(SendError::ConnectTimeout { addr: to }),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err(SendError::Refused { addr: to }),
        Ok(Err(e)) => return Err(connect_error(e)),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    let write_error = |e: std::io::Error| SendError::Write { addr: to, reason: e.to_string() };
    let stalled = |written: usize| SendError::WriteStalled { addr: to, written, total: bytes.len() };
    let by_size = connect_timeout + Duration::from_secs_f64(bytes.len() as f64 / MIN_RATE);
    let deadline = tokio::time::Instant::now() + by_size;
    let deadline = limit.map_or(deadline, |limit| deadline.min(started + limit));
    let mut written = 0;
    while written < bytes.len() {
        let limit = deadline.min(tokio::time::Instant::now() + connect_timeout);
        match tokio::time::timeout_at(limit, stream.write(&bytes[written..])).await {
            Err(_) => return Err(stalled(written)),
            Ok(Err(e)) => return Err(write_error(e)),
            Ok(Ok(0)) => return Err(write_error(std::io::ErrorKind::WriteZero.into())),
            Ok(Ok(n)) => written += n,
        }
    }
    match tokio::time::timeout(connect_timeout, stream.shutdown()).await {
        Err(_) => return Err(stalled(written)),
        Ok(result) => result.map_err(write_error)?,
    }
    if limit.is_some() {
        // A hand-off is sent when the receiver's kernel has it all: the
        // bytes a member that stopped reading leaves in our send queue are
        // not a delivered token.
        drained(&mut stream, deadline, connect_timeout, until).await.map_err(|left| stalled(bytes.len() - left))?;
    }
    Ok(())
}

/// What proves that a hand-off's receiver has the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proof {
    /// It closed the connection after reading it all (a pi-ring node).
    Closed,
    /// That, or its kernel acknowledged every byte (receivers that may keep
    /// the connection open a while: the older implementation).
    Acknowledged,
}

/// Wait until the receiver has everything, as `until` says. At most until
/// `deadline`, and `patience` without progress; `Err` with the bytes left
/// otherwise (0 when only the close is missing).
async fn drained(
    stream: &mut TcpStream,
    deadline: tokio::time::Instant,
    patience: Duration,
    until: Proof,
) -> Result<(), usize> {
    let mut left = unsent(stream);
    let mut progress_at = tokio::time::Instant::now();
    let mut scratch = [0u8; 64];
    while left > 0 || until == Proof::Closed {
        let now = tokio::time::Instant::now();
        if now >= deadline || now.duration_since(progress_at) >= patience {
            return Err(left);
        }
        tokio::select! {
            read = stream.read(&mut scratch) => match read {
                // The receiver read to the end and closed: it has it all.
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(unsent(stream)),
            },
            _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
        let now_left = unsent(stream);
        if now_left < left {
            progress_at = tokio::time::Instant::now();
        }
        left = now_left;
    }
    Ok(())
}

/// Bytes in the socket's send queue not yet acknowledged (0 where the
/// system cannot tell).
fn unsent(stream: &TcpStream) -> usize {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut queued: libc::c_int = 0;
        // SAFETY: a valid socket descriptor and a c_int out-parameter.
        let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        if rc == 0 {
            return queued.max(0) as usize;
        }
    }
    let _ = stream;
    0
}

/// Let the kernel pick the source port at `connect` rather than at `bind`
/// (IP_BIND_ADDRESS_NO_PORT), so a busy ring's many short connections can
/// reuse ports per destination instead of exhausting them.
fn allow_port_reuse_at_connect(socket: &TcpSocket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a c_int option value.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            log::debug!("IP_BIND_ADDRESS_NO_PORT not available: {}", std::io::Error::last_os_error());
        }
    }
}

impl Handler<SendTo> for TcpEndpoint {
    type Result = ResponseFuture<Result<(), SendError>>;

    fn handle(&mut self, msg: SendTo, _ctx: &mut Context<Self>) -> Self::Result {
        let bind = self.config.bind;
        let to = SocketAddrV4::new(msg.to, self.config.port);
        let connect_timeout = msg.patience.map_or(self.config.connect_timeout, |p| p.min(self.config.connect_timeout));
        let auth = self.config.auth.clone();
        let limit = msg.deadline;
        // What goes on the wire: a delta hand-off sends only its end.
        let message_len = match &msg.message.body {
            crate::protocol::Body::TakeToken { data, data_from, .. } => {
                data.len().saturating_sub(data_from.map_or(0, |f| usize::try_from(f).unwrap_or(usize::MAX)))
            }
            _ => 0,
        };
        // A hand-off with `data_from` goes to a pi-ring node, which closes
        // the connection once it has read the message: only that proves it
        // has the token. (A stopped process's kernel acknowledges a small
        // message all the same, and would swallow the token.)
        let until = match &msg.message.body {
            crate::protocol::Body::TakeToken { data_from: Some(_), .. } => Proof::Closed,
            _ => Proof::Acknowledged,
        };
        // A hand-off (it has its own patience) always goes; answers and
        // PINGs wait for no slot: when all are taken, they are not sent.
        let slot = match msg.patience {
            Some(_) => None,
            None => match Arc::clone(&self.replies).try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => return Box::pin(async move { Err(SendError::Busy { addr: to }) }),
            },
        };
        Box::pin(async move {
            let _slot = slot;
            // A large TAKE_TOKEN is encoded and sealed on a blocking
            // thread: the event loop keeps heart-beating and answering.
            let encode = move || {
                let bytes = msg.message.encode();
                match auth {
                    Some(auth) => auth.seal(bytes, Scope::To(*to.ip())),
                    None => bytes,
                }
            };
            let bytes = if message_len >= BLOCKING_DECODE_BYTES {
                tokio::task::spawn_blocking(encode).await.map_err(|_| SendError::EndpointGone)?
            } else {
                encode()
            };
            send_message(bind, to, &bytes, connect_timeout, limit, until).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_late_short_message_is_kept_unless_others_wait() {
        let pace = Pace::default();
        // A PING that arrives after 0.6 s, or 3 s, on a busy machine.
        assert!(!pace.too_slow(79, ms(600), false));
        assert!(!pace.too_slow(79, ms(3000), false));
        // An idle client is closed after the patient grace, or at once
        // when it holds a slot others wait for.
        assert!(pace.too_slow(0, ms(5100), false));
        assert!(pace.too_slow(0, ms(600), true));
        assert!(!pace.too_slow(0, ms(400), true));
    }

    #[test]
    fn a_large_message_gets_the_time_its_bytes_take_at_the_minimum_rate() {
        let pace = Pace::default();
        let mib = 1 << 20;
        // 1 MiB takes 64 s at 16 KiB/s.
        assert!(!pace.too_slow(mib, ms(60_000), false));
        assert!(!pace.too_slow(mib, ms(60_000), true));
        assert!(pace.too_slow(mib, ms(70_000), false));
        // A byte-a-second client never earns time.
        assert!(pace.too_slow(6, ms(5_100), false));
    }
}
