//! TCP message decoding and verification of a TAKE_TOKEN's digits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pi_ring::pi::PiDigits;
use pi_ring::protocol::RawMessage;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static PI: OnceLock<PiDigits> = OnceLock::new();
    let pi = PI.get_or_init(|| PiDigits::new(20_000));
    if let Ok(raw) = RawMessage::decode(data, 1 << 20) {
        let (message, _) = raw.verify(pi);
        if let pi_ring::protocol::Body::TakeToken { data, .. } = &message.body {
            assert!(pi.expansion(data.len()).as_str() == data.as_str());
        }
    }
});
