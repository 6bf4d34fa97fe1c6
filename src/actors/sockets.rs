//! Socket set-up shared by the endpoints, with errors that name the address.

use crate::error::StartError;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddrV4;

/// A non-blocking IPv4 socket, configured by `configure` and bound to `addr`.
pub fn bound_socket(
    kind: Type,
    addr: SocketAddrV4,
    configure: impl FnOnce(&Socket) -> std::io::Result<()>,
) -> Result<Socket, StartError> {
    let (protocol, name) = if kind == Type::STREAM { (Protocol::TCP, "TCP") } else { (Protocol::UDP, "UDP") };
    let error = |what| move |source| StartError::Socket { what, protocol: name, addr: addr.to_string(), source };
    let socket = Socket::new(Domain::IPV4, kind, Some(protocol)).map_err(error("create a socket for"))?;
    configure(&socket).map_err(error("set socket options for"))?;
    socket.set_nonblocking(true).map_err(error("make non-blocking"))?;
    socket.bind(&addr.into()).map_err(error("bind"))?;
    Ok(socket)
}

/// The error for a failed step on a `protocol` ("TCP", "UDP") socket bound
/// to `addr`.
pub fn socket_error(
    protocol: &'static str,
    addr: SocketAddrV4,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> StartError {
    move |source| StartError::Socket { what, protocol, addr: addr.to_string(), source }
}
