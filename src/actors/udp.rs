//! The UDP endpoint: receives the ring's broadcasts and sends ours.
//!
//! Three sockets: one bound to `0.0.0.0:udp_port` with address reuse, so
//! every node on a host hears every broadcast; one bound to the node's own
//! address and the ring port, for the datagrams sent to this node alone
//! (broadcasts that reach it by unicast, PROTOCOL section 10); and one
//! bound to the node's own address for sending, so receivers see the right
//! source host. Which socket a datagram came in on tells broadcast from
//! unicast, so a node learns which members its broadcasts reach. A bad datagram is
//! logged (rate-limited) and dropped; the receive stream never ends because
//! of input.

use super::messages::{Broadcast, Inbound, Port, Via};
use super::sockets::{bound_socket, socket_error};
use crate::auth::{Authenticator, Scope};
use crate::error::StartError;
use crate::protocol::{Body, DecodeError, RawMessage};
use crate::warn_limit::WarnLimiter;
use crate::warn_limited;
use actix::dev::SendError;
use actix::prelude::*;
use bytes::BytesMut;
use socket2::Type;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio_util::codec::Decoder;
use tokio_util::udp::UdpFramed;

/// Largest datagram the protocol allows (PROTOCOL section 5).
pub const MAX_DATAGRAM: usize = 4096;

/// Yields each datagram whole; decoding (and, with a secret, checking the
/// tag, which needs the sender's address) happens in the endpoint.
pub struct DatagramCodec;

impl Decoder for DatagramCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        if buf.is_empty() {
            return Ok(None);
        }
        // Consume the whole datagram whatever happens, or it is decoded again.
        Ok(Some(buf.split()))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        self.decode(buf)
    }
}

/// Decode one datagram from `from` that arrived as `arrived`; with an
/// authenticator, only sealed datagrams sealed by `from` for this place.
pub fn decode_datagram(
    datagram: &[u8],
    auth: Option<&Authenticator>,
    from: Ipv4Addr,
    arrived: Scope,
) -> Result<RawMessage, DecodeError> {
    match auth {
        None => RawMessage::decode(datagram, MAX_DATAGRAM),
        Some(auth) => auth
            .open(datagram, from, arrived)
            .map_err(DecodeError::from)
            .and_then(|body| RawMessage::decode(&body, MAX_DATAGRAM)),
    }
}

/// Where the endpoint listens and sends.
#[derive(Clone, Debug)]
pub struct UdpConfig {
    pub bind: Ipv4Addr,
    pub broadcast: Ipv4Addr,
    pub ring_port: u16,
    pub monitor_port: u16,
    /// The ring's secret, if it has one.
    pub auth: Option<Arc<Authenticator>>,
}

pub struct UdpEndpoint {
    own: Ipv4Addr,
    receiver: Option<UdpSocket>,
    unicast_receiver: Option<UdpSocket>,
    sender: Arc<UdpSocket>,
    ring: SocketAddrV4,
    monitor: SocketAddrV4,
    inbound: Recipient<Inbound>,
    warnings: WarnLimiter,
    auth: Option<Arc<Authenticator>>,
}

/// A socket on `bind:port` (usually `0.0.0.0`) that shares the port with
/// other nodes and monitors on the host.
pub fn shared_listener(bind: Ipv4Addr, port: u16) -> Result<UdpSocket, StartError> {
    let addr = SocketAddrV4::new(bind, port);
    let socket = bound_socket(Type::DGRAM, addr, |s| {
        s.set_reuse_address(true)?;
        // A fast ring sends thousands of datagrams a second: buffer bursts.
        let _ = s.set_recv_buffer_size(4 << 20);
        Ok(())
    })?;
    UdpSocket::from_std(socket.into()).map_err(socket_error("UDP", addr, "register"))
}

impl UdpEndpoint {
    /// Open both sockets (must run inside the actor system).
    pub fn bind(config: &UdpConfig, inbound: Recipient<Inbound>) -> Result<Self, StartError> {
        let receiver = shared_listener(Ipv4Addr::UNSPECIFIED, config.ring_port)?;
        let unicast_receiver = shared_listener(config.bind, config.ring_port)?;
        let addr = SocketAddrV4::new(config.bind, 0);
        let socket = bound_socket(Type::DGRAM, addr, |s| s.set_broadcast(true))?;
        let sender = UdpSocket::from_std(socket.into()).map_err(socket_error("UDP", addr, "register"))?;
        Ok(UdpEndpoint {
            own: config.bind,
            receiver: Some(receiver),
            unicast_receiver: Some(unicast_receiver),
            sender: Arc::new(sender),
            ring: SocketAddrV4::new(config.broadcast, config.ring_port),
            monitor: SocketAddrV4::new(config.broadcast, config.monitor_port),
            inbound,
            warnings: WarnLimiter::new(5),
            auth: config.auth.clone(),
        })
    }
}

impl Actor for UdpEndpoint {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        use futures_util::StreamExt;
        for (socket, via) in [(self.receiver.take(), Via::Udp), (self.unicast_receiver.take(), Via::Unicast)] {
            if let Some(socket) = socket {
                let datagrams = UdpFramed::new(socket, DatagramCodec);
                ctx.add_stream(datagrams.map(move |datagram| (via, datagram)));
            }
        }
    }
}

type Datagram = Result<(BytesMut, SocketAddr), io::Error>;

impl StreamHandler<(Via, Datagram)> for UdpEndpoint {
    fn handle(&mut self, (via, item): (Via, Datagram), _ctx: &mut Context<Self>) {
        let (datagram, from) = match item {
            Ok(datagram) => datagram,
            Err(e) => {
                warn_limited!(self.warnings, "UDP receive error: {e}");
                return;
            }
        };
        let SocketAddr::V4(from) = from else { return };
        let arrived = match via {
            Via::Udp => Scope::Broadcast,
            _ => Scope::To(self.own),
        };
        let raw = match decode_datagram(&datagram, self.auth.as_deref(), *from.ip(), arrived) {
            Ok(raw) => raw,
            Err(e) => {
                warn_limited!(self.warnings, "dropped a bad datagram from {from}: {e}");
                return;
            }
        };
        match &raw.body {
            Body::MyState(_) => {} // monitors' traffic, not the ring's
            Body::TakeToken { .. } => {
                warn_limited!(
                    self.warnings,
                    "dropped a TAKE_TOKEN datagram from {from}: the token travels only by TCP"
                );
            }
            _ => {
                // A full mailbox means the node is flooded: the datagram is
                // dropped (as the network may drop any), so a flood costs
                // no memory beyond the mailbox's bound.
                let inbound = Inbound { message: raw, from: *from.ip(), via };
                if let Err(SendError::Full(_)) = self.inbound.try_send(inbound) {
                    warn_limited!(
                        self.warnings,
                        "dropped a datagram from {from}: the node is flooded (its queue is full)"
                    );
                }
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        // A UDP socket's stream does not end; if it ever does, keep the
        // endpoint alive for sending and say so.
        log::error!("UDP receive stream ended; this node no longer hears broadcasts");
    }
}

impl Handler<Broadcast> for UdpEndpoint {
    type Result = ();

    fn handle(&mut self, msg: Broadcast, ctx: &mut Context<Self>) {
        let bytes = msg.message.encode();
        let dest = match msg.port {
            Port::Ring => self.ring,
            Port::Monitor => self.monitor,
        };
        // With a secret, each copy is sealed for its destination.
        let seal = |to: Scope| match &self.auth {
            Some(auth) => auth.seal(bytes.clone(), to),
            None => bytes.clone(),
        };
        let copies: Vec<(Vec<u8>, SocketAddrV4)> = if msg.unicast.is_empty() {
            vec![(seal(Scope::Broadcast), dest)]
        } else {
            msg.unicast.iter().map(|host| (seal(Scope::To(*host)), SocketAddrV4::new(*host, dest.port()))).collect()
        };
        for (bytes, to) in copies {
            if bytes.len() > MAX_DATAGRAM {
                log::error!(
                    "not broadcasting a {}-byte {} message: over the datagram limit",
                    bytes.len(),
                    msg.message.body.kind()
                );
                return;
            }
            self.send(bytes, to, ctx);
        }
    }
}

impl UdpEndpoint {
    /// Send one datagram, waiting for the socket only if it is full.
    fn send(&mut self, bytes: Vec<u8>, dest: SocketAddrV4, ctx: &mut Context<Self>) {
        match self.sender.try_send_to(&bytes, dest.into()) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let sender = Arc::clone(&self.sender);
                ctx.spawn(
                    async move {
                        if let Err(e) = sender.send_to(&bytes, dest).await {
                            log::warn!("datagram to {dest} failed: {e}");
                        }
                    }
                    .into_actor(self),
                );
            }
            Err(e) => warn_limited!(self.warnings, "datagram to {dest} failed: {e}"),
        }
    }
}
