//! The TCP endpoint hands a TAKE_TOKEN to the node as soon as it is read:
//! digits beyond what the node has computed are not computed there (which
//! can take seconds at a doubling of the expansion, with no heartbeat
//! meanwhile) but passed on unchecked, for the node to check while it holds
//! the token.

use crate::common::{fresh_host, Ports};
use actix::prelude::*;
use pi_ring::actors::messages::Inbound;
use pi_ring::actors::{TcpConfig, TcpEndpoint};
use pi_ring::pi::PiDigits;
use pi_ring::protocol::{Body, Message, Nodes, Token};
use std::io::Write;
use std::net::{SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

struct Recorder(mpsc::UnboundedSender<Inbound>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Inbound> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: Inbound, _ctx: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}

#[test]
fn a_take_token_longer_than_the_cache_reaches_the_node_without_computing() {
    const LEN: usize = 50_002;
    let data = PiDigits::new(1_000_000).expansion(LEN);
    let host = fresh_host();
    let port = Ports::free().tcp;
    let pi = Arc::new(PiDigits::new(1_000_000));
    let endpoint_pi = Arc::clone(&pi);
    let inbound = actix_rt::System::new().block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = TcpConfig {
            bind: host,
            port,
            max_message_bytes: 1 << 20,
            read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
            max_connections: 8,
            pace: Default::default(),
            backlog: 16,
            auth: None,
        };
        let recorder = Recorder(tx).start();
        let _endpoint = TcpEndpoint::bind(config, recorder.recipient(), endpoint_pi).expect("bind").start();
        let nodes: Nodes = [("n1".to_string(), host.to_string())].into_iter().collect();
        let body = Body::TakeToken { token: Token::new(LEN, "n1", 1), nodes, data, pacing: Default::default() };
        let bytes = Message::new("n1", body).encode();
        let sender = fresh_host();
        tokio::task::spawn_blocking(move || {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.bind(&SocketAddrV4::new(sender, 0).into()).unwrap();
            socket.connect_timeout(&SocketAddrV4::new(host, port).into(), Duration::from_secs(5)).unwrap();
            let mut stream: TcpStream = socket.into();
            stream.write_all(&bytes).unwrap();
        })
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("delivered within 10 s")
    });
    let inbound = inbound.expect("the TAKE_TOKEN reached the node");
    assert_eq!(pi.cached_digits(), 0, "the endpoint computed digits before handing the token over");
    let Body::TakeToken { data, .. } = &inbound.message.body else { panic!("not TAKE_TOKEN: {inbound:?}") };
    assert_eq!(data.len(), 2, "checked: only `3,`, all the node had");
    let unchecked = inbound.unchecked.expect("the rest, to check");
    assert_eq!(unchecked.len(), LEN);
    assert_eq!(pi.verify(unchecked.as_str()).expansion.len(), LEN, "what is handed over is the data received");
}
