//! The TCP endpoint hands a TAKE_TOKEN to the node as soon as it is read,
//! as it came: it computes and checks nothing (which could take seconds at
//! a doubling of the expansion, with no heartbeat meanwhile); the node
//! checks the data (PROTOCOL section 4), while it holds the token. A delta
//! hand-off arrives with its `data_from`.

use crate::common::{fresh_host, Ports};
use actix::prelude::*;
use pi_ring::actors::messages::Inbound;
use pi_ring::actors::{TcpConfig, TcpEndpoint};
use pi_ring::pi::PiDigits;
use pi_ring::protocol::{Body, Message, Nodes, Token};
use std::io::Write;
use std::net::{SocketAddrV4, TcpStream};
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
fn a_take_token_reaches_the_node_as_it_came_without_computing() {
    const LEN: usize = 50_002;
    const FROM: usize = 40_000;
    let data = PiDigits::new(1_000_000).expansion(LEN);
    let pi_digits = data.as_str().to_owned();
    let host = fresh_host();
    let port = Ports::free().tcp;
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
        let _endpoint = TcpEndpoint::bind(config, recorder.recipient()).expect("bind").start();
        let nodes: Nodes = [("n1".to_string(), host.to_string())].into_iter().collect();
        let body = Body::TakeToken {
            token: Token::new(LEN, "n1", 1),
            nodes,
            data,
            pacing: Default::default(),
            data_from: Some(FROM as u64),
        };
        let mut message = Message::new("n1", body);
        message.have = Some(7);
        let bytes = message.encode();
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
    let Body::TakeToken { data, data_from, .. } = &inbound.message.body else { panic!("not TAKE_TOKEN: {inbound:?}") };
    assert_eq!(data.len(), LEN - FROM, "the characters sent, as they came");
    assert_eq!(data.as_str(), &pi_digits[FROM..]);
    assert_eq!(*data_from, Some(FROM as u64));
    assert_eq!(inbound.message.have, Some(7));
}
