//! The protocol node fed arbitrary input sequences (a property test in the
//! normal suite): random messages from random authors and hosts, timers
//! stale and current, computation and hand-off results for any epoch and
//! attempt, planned stops. The node must never panic, never shrink its
//! expansion, reply only to the sender, and never send the token to itself.

use crate::sim::{pi, Rng};
use pi_ring::error::SendError;
use pi_ring::pi::Expansion;
use pi_ring::protocol::machine::{Config, TimerId, TimerKind, Timing};
use pi_ring::protocol::{Action, Body, Input, Message, Node, StateName, Token, Via};
use std::net::{Ipv4Addr, SocketAddrV4};
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
            pacing: Default::default(),
            data_from: None,
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
        let config = Config { id: "me".into(), timing, max_len };
        let mut m = Node::new(config, Ipv4Addr::new(10, 0, 0, 1), Expansion::empty(), 0);
        let mut armed: Vec<TimerId> = Vec::new();
        let mut last_epoch = 0u64;
        let mut last_attempt = 0u64;
        let mut now = Duration::ZERO;
        for step in 0..300 {
            now += Duration::from_millis(rng.below(300));
            let before = m.expansion().len();
            let input = match rng.below(11) {
                0 => Input::Start,
                1..=4 => {
                    let from = Ipv4Addr::new(10, 0, 0, rng.below(4) as u8);
                    let via = if rng.below(2) == 0 { Via::Udp } else { Via::Tcp };
                    Input::Received { message: message(&mut rng).into_raw(), from, via }
                }
                5 | 6 if !armed.is_empty() => Input::Timer(armed[rng.below(armed.len() as u64) as usize]),
                5 | 6 => Input::Timer(TimerId { kind: TimerKind::ALL[rng.below(6) as usize], seq: rng.below(50) }),
                7 => Input::Computed {
                    epoch: last_epoch.saturating_sub(rng.below(2)),
                    expansion: (rng.below(8) > 0).then(|| pi().expansion(rng.below(3000) as usize)),
                    checked: (rng.below(2) > 0).then(|| pi().expansion(rng.below(3000) as usize)),
                },
                8 => Input::Stop,
                _ => {
                    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
                    let result = if rng.below(2) == 0 { Ok(()) } else { Err(SendError::ConnectTimeout { addr }) };
                    Input::TokenSent { attempt: last_attempt.saturating_sub(rng.below(2)), result }
                }
            };
            let reply_to = match &input {
                Input::Received { from, .. } => Some(*from),
                _ => None,
            };
            let actions = m.handle(now, input);
            let ctx = format!("seed {seed} step {step}");
            assert!(m.expansion().len() >= before, "{ctx}: expansion shrank");
            assert!(m.expansion().len() <= max_len.max(before).max(3000), "{ctx}: grew past the target");
            if m.holds_token() {
                assert_eq!(m.state(), StateName::Owner, "{ctx}");
            }
            for a in &actions {
                match a {
                    Action::Send { to, message } => {
                        assert_eq!(Some(*to), reply_to, "{ctx}: a reply to someone else");
                        assert_eq!(message.author, "me", "{ctx}");
                    }
                    Action::SendToken { attempt, to, message, .. } => {
                        assert_ne!(to, "me", "{ctx}: the token sent to ourselves");
                        assert!(matches!(message.body, Body::TakeToken { .. }), "{ctx}");
                        last_attempt = *attempt;
                    }
                    Action::Broadcast(message) => assert_eq!(message.author, "me", "{ctx}"),
                    Action::SetTimer { timer, .. } => armed.push(*timer),
                    Action::Compute { epoch, .. } => last_epoch = *epoch,
                    _ => {}
                }
            }
        }
    }
}
