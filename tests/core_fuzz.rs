//! The protocol core fed arbitrary input sequences (a property test in the
//! normal suite): random messages from random authors, timers stale and
//! current, computation and hand-off results for any epoch. The core must
//! never panic, never shrink its expansion, reply only to the sender, and
//! arm timers only for its current state.

mod sim;

use pi_ring::protocol::machine::{Config, Envelope, Input, Machine, Output, TimerId, TimerKind, Timing};
use pi_ring::protocol::{Body, Message, StateName, Token};
use sim::{pi, Rng};
use std::net::Ipv4Addr;
use std::time::Duration;

fn token(rng: &mut Rng) -> Token {
    let author = ["n1", "n5", "n9", "", "\u{0443}"][rng.below(5) as usize];
    Token::new(rng.below(3000) as usize, author, rng.below(4))
}

fn message(rng: &mut Rng) -> Message {
    let author = ["n1", "n5", "n9", "zz", "me"][rng.below(5) as usize];
    let body = match rng.below(8) {
        0 => Body::Ping,
        1 => Body::WhereIsToken,
        2 => Body::TokenWasHereRecently,
        3 | 4 => Body::TokenIsHere { token: token(rng) },
        5 => Body::GeneratingToken { token: token(rng) },
        6 => Body::TakeToken {
            token: token(rng),
            nodes: Default::default(),
            data: pi().expansion(rng.below(2500) as usize),
        },
        _ => Body::MyState(Box::default()),
    };
    Message::new(author, body)
}

#[test]
fn arbitrary_input_sequences_keep_the_core_sane() {
    let seeds: u64 = std::env::var("PI_RING_FUZZ_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    for seed in 0..seeds {
        let mut rng = Rng::new(seed);
        let timing = Timing { hold: Duration::from_millis(rng.below(3) * 10), ..Timing::default() };
        let max_len = 22 + rng.below(3000) as usize;
        let mut m = Machine::new(Config { id: "me".into(), timing, max_len });
        let mut armed: Vec<TimerId> = Vec::new();
        for step in 0..300 {
            let before = m.expansion().len();
            let input = match rng.below(10) {
                0 => Input::Start,
                1..=4 => {
                    let from = Ipv4Addr::new(10, 0, 0, rng.below(4) as u8);
                    Input::Received(Envelope { message: message(&mut rng), from })
                }
                5 | 6 if !armed.is_empty() => Input::Timer(armed[rng.below(armed.len() as u64) as usize]),
                5 | 6 => Input::Timer(TimerId { kind: TimerKind::ALL[rng.below(6) as usize], seq: rng.below(50) }),
                7 => Input::Computed {
                    epoch: m.epoch().saturating_sub(rng.below(2)),
                    expansion: pi().expansion(rng.below(3000) as usize),
                },
                _ => {
                    let to = (rng.below(2) == 0).then(|| "n9".to_string());
                    Input::Passed { epoch: m.epoch().saturating_sub(rng.below(2)), to }
                }
            };
            let reply_to = match &input {
                Input::Received(e) => Some(e.from),
                _ => None,
            };
            let outputs = m.handle(input);
            let ctx = format!("seed {seed} step {step}");
            assert!(m.expansion().len() >= before, "{ctx}: expansion shrank");
            assert!(m.expansion().len() <= max_len.max(before).max(3000), "{ctx}: grew past the target");
            if m.holds_token() {
                assert_eq!(m.state(), StateName::Owner, "{ctx}");
            }
            for o in &outputs {
                match o {
                    Output::Send { to, message } => {
                        assert_eq!(Some(*to), reply_to, "{ctx}: a reply to someone else");
                        assert_eq!(message.author, "me", "{ctx}");
                    }
                    Output::Broadcast(message) => assert_eq!(message.author, "me", "{ctx}"),
                    Output::SetTimer { timer, .. } => armed.push(*timer),
                    _ => {}
                }
            }
        }
    }
}
