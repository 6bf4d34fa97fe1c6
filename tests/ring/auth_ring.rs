//! A ring with a secret (`--secret-file`) on loopback, and an attacker
//! without it: forged TAKE_TOKEN, TOKEN_IS_HERE, GENERATING_TOKEN and
//! WHERE_IS_TOKEN, and replays of the ring's own captured messages (its
//! broadcasts, and the TCP PINGs it sent a newcomer) to every node, from
//! the attacker's address, from a lower one and from the original sender's
//! own (spoofed), by broadcast, by unicast and by TCP. None of them may
//! change the ring's state: no holder yields, no token is lost or
//! regenerated, the expansion never jumps to the forger's, and no node
//! hears "its own id" from elsewhere.

use crate::common::{fresh_host, start_node, Observer, Ports};
use pi_ring::actors::udp::MAX_DATAGRAM;
use pi_ring::auth::{Authenticator, Scope};
use pi_ring::pi::PiDigits;
use pi_ring::protocol::{Body, Message, StateName, Token};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

#[test]
fn forged_and_replayed_messages_do_not_change_the_ring() {
    let ports = Ports::free();
    let secret = std::env::temp_dir().join(format!("pi-ring-secret-{}", std::process::id()));
    std::fs::write(&secret, "correct horse battery staple\n").unwrap();
    let observer = Observer::start(ports);
    let secret_arg = secret.display().to_string();
    let mut args = vec!["--secret-file", secret_arg.as_str(), "--hold-ms", "100"];
    args.extend_from_slice(pi_ring_harness::QUICK_TIMING);
    let hosts: Vec<Ipv4Addr> = (1..=3).map(|_| fresh_host()).collect();
    let nodes: Vec<_> =
        hosts.iter().enumerate().map(|(i, h)| start_node(&format!("node{}", i + 1), *h, ports, &args)).collect();
    let t0 = Instant::now();
    let formed = observer.wait_for(t0, Duration::from_secs(10), |s| s.progress >= 102);
    assert!(formed.is_some(), "the authenticated ring did not form");

    // Capture some of the ring's own (sealed) broadcasts to replay them.
    let listener = pi_ring_harness::udp_listener(ports.udp);
    let mut captured = Vec::new(); // (sender's host, sealed bytes)
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    while captured.len() < 20 && t0.elapsed() < Duration::from_secs(15) {
        if let Ok((n, std::net::SocketAddr::V4(from))) = listener.recv_from(&mut buf) {
            captured.push((*from.ip(), buf[..n].to_vec()));
        }
    }
    assert!(captured.len() >= 20, "captured only {} datagrams", captured.len());
    assert!(
        captured.iter().all(|(_, d)| String::from_utf8_lossy(d).contains("\"auth\":{\"ts\":")),
        "the ring's messages carry the tag"
    );

    // A newcomer that has the secret (the test does) makes the ring PING
    // it by TCP: those sealed PINGs, captured, are what an attacker on the
    // path would replay (a node never sees its own unicast messages).
    let newcomer = fresh_host();
    let newcomer_tcp = std::net::TcpListener::bind(SocketAddrV4::new(newcomer, ports.tcp)).unwrap();
    newcomer_tcp.set_nonblocking(true).unwrap();
    let sealer = Authenticator::new(b"correct horse battery staple", newcomer, Duration::from_secs(10));
    let hello = sealer.seal(Message::<String>::new("newcomer", Body::Ping).encode(), Scope::Broadcast);
    let newcomer_udp = UdpSocket::bind((newcomer, 0)).unwrap();
    newcomer_udp.set_broadcast(true).unwrap();
    newcomer_udp.send_to(&hello, ("127.255.255.255", ports.udp)).unwrap();
    let mut pings = Vec::new(); // (sender's host, sealed bytes)
    let deadline = Instant::now() + Duration::from_secs(5);
    while pings.len() < 3 && Instant::now() < deadline {
        match newcomer_tcp.accept() {
            Ok((mut stream, peer)) => {
                stream.set_nonblocking(false).unwrap();
                let mut bytes = Vec::new();
                let _ = std::io::Read::read_to_end(&mut stream, &mut bytes);
                let std::net::SocketAddr::V4(peer) = peer else { continue };
                pings.push((*peer.ip(), bytes));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // The newcomer leaves at once: a hand-off to it is refused, not lost.
    drop(newcomer_tcp);
    assert_eq!(pings.len(), 3, "every node PINGs a newcomer back by TCP");
    let with_origin: Vec<(Option<Ipv4Addr>, Vec<u8>)> = captured
        .iter()
        .map(|(from, d)| (Some(*from), d.clone()))
        .chain(pings.iter().map(|(from, d)| (Some(*from), d.clone())))
        .collect();

    let attack_started = Instant::now();
    let progress_before = observer.seen().iter().map(|s| s.progress).max().unwrap();
    let attacker = UdpSocket::bind("127.0.0.99:0").unwrap();
    attacker.set_broadcast(true).unwrap();
    let ring = ("127.255.255.255", ports.udp);
    let pi = PiDigits::new(20_000);
    let big = 10_000usize; // far beyond the ring's progress
    for round in 0..20 {
        // Forged broadcasts, claiming to be the attacker and to be node1.
        for author in ["evil", "node1"] {
            for body in [
                Body::TokenIsHere { token: Token::new(big, author, 99) },
                Body::GeneratingToken { token: Token::new(big, author, 99) },
                Body::WhereIsToken,
            ] {
                attacker.send_to(&Message::<String>::new(author, body).encode(), ring).unwrap();
            }
        }
        // Forged TAKE_TOKEN to every node, with real digits.
        for host in &hosts {
            let body = Body::TakeToken {
                token: Token::new(big, "evil", 99),
                nodes: [("evil".to_string(), "127.0.0.99".to_string())].into_iter().collect(),
                data: pi.expansion(big),
                pacing: Default::default(),
                data_from: None,
            };
            if let Ok(mut s) = TcpStream::connect(SocketAddrV4::new(*host, ports.tcp)) {
                let _ = s.write_all(&Message::new("evil", body).encode());
            }
        }
        if round % 5 == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Replays of the ring's own messages, within the window: from the
    // attacker's address, from one lower than every node's, and from the
    // original sender's own; by broadcast, to each node by unicast and by
    // TCP.
    let lower = Ipv4Addr::new(127, 0, 0, 98);
    for (origin, datagram) in &with_origin {
        for from in [Ipv4Addr::new(127, 0, 0, 99), lower].into_iter().chain(*origin) {
            let Ok(socket) = UdpSocket::bind((from, 0)) else { continue };
            socket.set_broadcast(true).unwrap();
            let _ = socket.send_to(datagram, ring);
            for host in &hosts {
                let _ = socket.send_to(datagram, SocketAddrV4::new(*host, ports.udp));
                let _ = pi_ring_harness::send_from(
                    from,
                    SocketAddrV4::new(*host, ports.tcp),
                    datagram,
                    Duration::from_secs(1),
                );
            }
        }
    }
    std::thread::sleep(Duration::from_secs(2));

    let after: Vec<_> = observer.seen().into_iter().filter(|s| s.at >= attack_started).collect();
    assert!(after.iter().any(|s| s.new == StateName::Owner), "the ring stopped passing the token");
    let disturbed: Vec<_> =
        after.iter().filter(|s| matches!(s.new, StateName::Looser | StateName::Generating)).collect();
    assert!(disturbed.is_empty(), "the attack changed the ring's state: {disturbed:?}");
    let max_after = after.iter().map(|s| s.progress).max().unwrap();
    assert!(max_after < big as u64, "the forged expansion was taken ({max_after} characters)");
    assert!(max_after > progress_before, "no progress during the attack");
    assert!(observer.wrong().is_empty());
    // Nodes said why they dropped the attacker's messages.
    let logs: String = nodes.iter().map(|n| n.log_tail()).collect();
    let _ = std::fs::remove_file(&secret);
    let said = ["replayed message", "no authentication tag", "sent again"];
    assert!(said.iter().any(|w| logs.contains(w)), "no node logged the rejections:\n{logs}");
    let full_logs: String = nodes.iter().map(|n| n.log_text()).collect();
    assert!(!full_logs.contains("uses this node's id"), "a replay reached a node as its own id:\n{full_logs}");
}
