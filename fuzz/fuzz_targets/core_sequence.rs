//! The protocol core fed a sequence of inputs chosen by the fuzzer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pi_ring::pi::PiDigits;
use pi_ring::protocol::machine::{Config, Envelope, Input, Machine, TimerId, TimerKind, Timing};
use pi_ring::protocol::{Body, Message, Token};
use std::net::Ipv4Addr;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static PI: OnceLock<PiDigits> = OnceLock::new();
    let pi = PI.get_or_init(|| PiDigits::new(20_000));
    let mut m = Machine::new(Config { id: "me".into(), timing: Timing::default(), max_len: 2_000 });
    for chunk in data.chunks(4) {
        let [op, a, b, c] = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0), *chunk.get(3).unwrap_or(&0)];
        let author = ["n1", "n9", "me", "z"][(a % 4) as usize];
        let token = Token::new(usize::from(b) * 20, ["n1", "n9", "me"][(c % 3) as usize], u64::from(c % 5));
        let before = m.expansion().len();
        let input = match op % 10 {
            0 => Input::Start,
            1 => Input::Received(Envelope { message: Message::new(author, Body::Ping), from: Ipv4Addr::LOCALHOST }),
            2 => Input::Received(Envelope { message: Message::new(author, Body::TokenIsHere { token }), from: Ipv4Addr::LOCALHOST }),
            3 => Input::Received(Envelope { message: Message::new(author, Body::GeneratingToken { token }), from: Ipv4Addr::LOCALHOST }),
            4 => Input::Received(Envelope { message: Message::new(author, Body::WhereIsToken), from: Ipv4Addr::LOCALHOST }),
            5 => Input::Received(Envelope { message: Message::new(author, Body::TokenWasHereRecently), from: Ipv4Addr::LOCALHOST }),
            6 => {
                let data = pi.expansion(usize::from(b) * 20);
                let body = Body::TakeToken { token, nodes: Default::default(), data };
                Input::Received(Envelope { message: Message::new(author, body), from: Ipv4Addr::LOCALHOST })
            }
            7 => Input::Timer(TimerId { kind: TimerKind::ALL[(a % 6) as usize], seq: u64::from(b) }),
            8 => Input::Computed { epoch: m.epoch().wrapping_sub(u64::from(a % 2)), expansion: pi.expansion(usize::from(b) * 20) },
            _ => Input::Passed { epoch: m.epoch().wrapping_sub(u64::from(a % 2)), to: (b % 2 == 0).then(|| "n9".into()) },
        };
        let _ = m.handle(input);
        assert!(m.expansion().len() >= before);
    }
});
