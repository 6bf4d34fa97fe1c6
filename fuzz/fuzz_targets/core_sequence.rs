//! The protocol node fed a sequence of inputs chosen by the fuzzer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pi_ring::error::SendError;
use pi_ring::pi::{Expansion, PiDigits};
use pi_ring::protocol::machine::{Config, TimerId, TimerKind, Timing};
use pi_ring::protocol::{Action, Body, Input, Message, Node, Token, Via};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    static PI: OnceLock<PiDigits> = OnceLock::new();
    let pi = PI.get_or_init(|| PiDigits::new(20_000));
    let config = Config { id: "me".into(), timing: Timing::default(), max_len: 2_000 };
    let mut m = Node::new(config, Ipv4Addr::LOCALHOST, Expansion::empty(), 0);
    let (mut epoch, mut attempt, mut now) = (0, 0, Duration::ZERO);
    for chunk in data.chunks(4) {
        let [op, a, b, c] = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0), *chunk.get(3).unwrap_or(&0)];
        now += Duration::from_millis(u64::from(c) * 10);
        let author = ["n1", "n9", "me", "z"][(a % 4) as usize];
        let from = Ipv4Addr::new(127, 0, 0, 1 + c % 3);
        let via = if c % 2 == 0 { Via::Udp } else { Via::Tcp };
        let token = Token::new(usize::from(b) * 20, ["n1", "n9", "me"][(c % 3) as usize], u64::from(c % 5));
        let before = m.expansion().len();
        let received = |body| Input::Received { message: Message::new(author, body).into_raw(), from, via };
        let input = match op % 11 {
            0 => Input::Start,
            1 => received(Body::Ping),
            2 => received(Body::TokenIsHere { token }),
            3 => received(Body::GeneratingToken { token }),
            4 => received(Body::WhereIsToken),
            5 => received(Body::TokenWasHereRecently),
            6 => {
                let data = pi.expansion(usize::from(b) * 20);
                // Whole, or a delta from anywhere (also past the end).
                let data_from = (a % 3 == 0).then(|| u64::from(c) * 37);
                received(Body::TakeToken { token, nodes: Default::default(), data, pacing: Default::default(), data_from })
            }
            7 => Input::Timer(TimerId { kind: TimerKind::ALL[(a % 6) as usize], seq: u64::from(b) }),
            8 => Input::Computed {
                epoch: epoch - u64::from(a % 2).min(epoch),
                expansion: (b % 7 != 0).then(|| pi.expansion(usize::from(b) * 20)),
                checked: (b % 3 == 0).then(|| pi.expansion(usize::from(a) * 20)),
            },
            9 => Input::Stop,
            _ => {
                let addr = SocketAddrV4::new(from, 1);
                let result = if b % 2 == 0 { Ok(()) } else { Err(SendError::ConnectTimeout { addr }) };
                Input::TokenSent { attempt: attempt - u64::from(a % 2).min(attempt), result }
            }
        };
        for action in m.handle(now, input) {
            match action {
                Action::Compute { epoch: e, .. } => epoch = e,
                Action::SendToken { attempt: a, .. } => attempt = a,
                _ => {}
            }
        }
        assert!(m.expansion().len() >= before);
    }
});
