//! UDP datagram decoding: any bytes, with and without a ring secret.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pi_ring::auth::Authenticator;
use pi_ring::protocol::RawMessage;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    let own = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let auth = AUTH.get_or_init(|| Authenticator::new(b"fuzz", own, std::time::Duration::from_secs(10)));
    if let Ok(raw) = RawMessage::decode(data, 4096) {
        let again = RawMessage::decode(&raw.encode(), 1 << 20).expect("our encoding decodes");
        assert_eq!(again, raw);
    }
    let from = std::net::Ipv4Addr::new(127, 0, 0, 3);
    if let Ok(body) = auth.open(data, from, pi_ring::auth::Scope::To(own)) {
        let _ = RawMessage::decode(&body, 4096);
    }
});
