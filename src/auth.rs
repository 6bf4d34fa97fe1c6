//! Optional ring authentication (`--secret-file`): every message a node
//! sends carries an extra JSON field
//! `"auth": {"ts": .., "n": .., "to": "..", "mac": ".."}` with an
//! HMAC-SHA256 over the timestamp, a nonce, the sender's address, the
//! destination and the message; nodes of such a ring drop messages without
//! a valid tag, outside the time window, or seen before (replays). Nodes
//! without the secret ignore the unknown field, so the wire format stays
//! valid JSON of the same shape.
//!
//! The tag binds *who* and *where*: the sender's address is not on the wire
//! but in the MAC, so a captured message replayed from any other address
//! fails; `to` names the destination address of a unicast datagram or TCP
//! message (`"*"` for a broadcast), and a message is accepted only where it
//! was addressed, so a unicast message replayed to its own sender or to
//! another node fails. The nonce makes every message distinct (three PINGs
//! sealed in one millisecond are three messages). What stays possible is
//! in SECURITY.md.
//!
//! The tag covers the exact bytes sent: the sender appends the field at the
//! end of the encoded object, and the receiver checks the bytes before it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

const FIELD: &[u8] = b",\"auth\":{\"ts\":";

/// Where a message goes, or arrived: by broadcast, or addressed to one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Broadcast,
    To(Ipv4Addr),
}

impl Scope {
    fn wire(self) -> String {
        match self {
            Scope::Broadcast => "*".to_owned(),
            Scope::To(host) => host.to_string(),
        }
    }
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no authentication tag (a node without the ring's secret?)")]
    Missing,
    #[error("malformed authentication tag")]
    Malformed,
    #[error("wrong authentication tag (forged, altered, or sent again from another address)")]
    BadMac,
    #[error("timestamp {skew_ms} ms away from our clock, outside the window of {window_ms} ms")]
    OutOfWindow { skew_ms: i64, window_ms: u64 },
    #[error("replayed message")]
    Replay,
    #[error("addressed to {to}, but it arrived {arrived} (sent again to another place)")]
    WrongPlace { to: String, arrived: String },
}

/// Seals and opens messages with the ring's secret.
pub struct Authenticator {
    key: Vec<u8>,
    /// This node's address: the sender of what it seals, the destination
    /// of what it accepts by unicast and TCP.
    own: Ipv4Addr,
    window: Duration,
    /// Distinct per message sealed.
    nonce: AtomicU64,
    /// Tags accepted within the window, to refuse replays.
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authenticator({}, window {:?}, secret hidden)", self.own, self.window)
    }
}

#[derive(Default)]
struct Seen {
    tags: HashSet<[u8; 32]>,
    order: VecDeque<(u64, [u8; 32])>,
}

/// Most tags remembered; beyond, the oldest are forgotten early.
const MAX_REMEMBERED: usize = 1 << 20;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The parts of a tag on the wire.
struct Tag<'a> {
    ts: u64,
    nonce: u64,
    to: &'a str,
    mac: [u8; 32],
}

impl Authenticator {
    /// A node at `own` that accepts messages stamped within `window` of its
    /// clock.
    pub fn new(secret: &[u8], own: Ipv4Addr, window: Duration) -> Self {
        // Distinct from any earlier run's nonces at the same time stamp.
        let start = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Authenticator {
            key: secret.to_vec(),
            own,
            window,
            nonce: AtomicU64::new(start),
            seen: Mutex::new(Seen::default()),
        }
    }

    fn mac(&self, ts: u64, nonce: u64, from: Ipv4Addr, to: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{ts}\n{nonce}\n{from}\n{to}\n").as_bytes());
        mac.update(body);
        mac
    }

    /// Append the tag to an encoded message (a JSON object) sent `to`.
    pub fn seal(&self, mut json: Vec<u8>, to: Scope) -> Vec<u8> {
        self.seal_at(&mut json, to, now_ms());
        json
    }

    fn seal_at(&self, json: &mut Vec<u8>, to: Scope, ts: u64) {
        let nonce = self.nonce.fetch_add(1, Ordering::Relaxed);
        let to = to.wire();
        let tag: [u8; 32] = self.mac(ts, nonce, self.own, &to, json).finalize().into_bytes().into();
        debug_assert_eq!(json.last(), Some(&b'}'));
        json.pop();
        json.extend_from_slice(FIELD);
        json.extend_from_slice(format!("{ts},\"n\":{nonce},\"to\":\"{to}\",\"mac\":\"{}\"}}}}", hex(&tag)).as_bytes());
    }

    /// Check a message that came from `from` and `arrived` here (by
    /// broadcast, or addressed to this node); returns it without its tag.
    pub fn open(&self, bytes: &[u8], from: Ipv4Addr, arrived: Scope) -> Result<Vec<u8>, AuthError> {
        self.open_at(bytes, from, arrived, now_ms())
    }

    fn parse(bytes: &[u8]) -> Result<(usize, Tag<'_>), AuthError> {
        let start = rfind(bytes, FIELD).ok_or(AuthError::Missing)?;
        let rest = std::str::from_utf8(&bytes[start + FIELD.len()..]).map_err(|_| AuthError::Malformed)?;
        let (ts, rest) = rest.split_once(",\"n\":").ok_or(AuthError::Malformed)?;
        let (nonce, rest) = rest.split_once(",\"to\":\"").ok_or(AuthError::Malformed)?;
        let (to, rest) = rest.split_once("\",\"mac\":\"").ok_or(AuthError::Malformed)?;
        let hex_tag = rest.strip_suffix("\"}}").ok_or(AuthError::Malformed)?;
        let ts = ts.parse().map_err(|_| AuthError::Malformed)?;
        let nonce = nonce.parse().map_err(|_| AuthError::Malformed)?;
        let mac = unhex(hex_tag).ok_or(AuthError::Malformed)?;
        Ok((start, Tag { ts, nonce, to, mac }))
    }

    fn open_at(&self, bytes: &[u8], from: Ipv4Addr, arrived: Scope, now: u64) -> Result<Vec<u8>, AuthError> {
        let (start, tag) = Self::parse(bytes)?;
        let mut body = bytes[..start].to_vec();
        body.push(b'}');
        // Constant-time comparison through the hmac crate.
        self.mac(tag.ts, tag.nonce, from, tag.to, &body).verify_slice(&tag.mac).map_err(|_| AuthError::BadMac)?;
        let here = match arrived {
            Scope::Broadcast => Scope::Broadcast,
            Scope::To(_) => Scope::To(self.own),
        };
        if tag.to != here.wire() {
            let arrived = match arrived {
                Scope::Broadcast => "by broadcast".to_owned(),
                Scope::To(host) => format!("at {host}"),
            };
            return Err(AuthError::WrongPlace { to: tag.to.to_owned(), arrived });
        }
        let skew = now as i64 - tag.ts as i64;
        let window = self.window.as_millis() as u64;
        if skew.unsigned_abs() > window {
            return Err(AuthError::OutOfWindow { skew_ms: skew, window_ms: window });
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((old_ts, old)) = seen.order.front().copied() {
            if old_ts + 2 * window < now || seen.order.len() > MAX_REMEMBERED {
                seen.order.pop_front();
                seen.tags.remove(&old);
            } else {
                break;
            }
        }
        if !seen.tags.insert(tag.mac) {
            return Err(AuthError::Replay);
        }
        seen.order.push_back((tag.ts, tag.mac));
        Ok(body)
    }
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Body, Message, RawMessage};

    const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
    const C: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

    fn node(own: Ipv4Addr) -> Authenticator {
        Authenticator::new(b"ring secret", own, Duration::from_secs(5))
    }

    fn sealed(a: &Authenticator, to: Scope, ts: u64) -> Vec<u8> {
        let mut json = Message::<String>::new("n1", Body::Ping).encode();
        a.seal_at(&mut json, to, ts);
        json
    }

    #[test]
    fn a_sealed_message_opens_once_where_it_was_sent_and_stays_valid_json() {
        let (a, b) = (node(A), node(B));
        let bytes = sealed(&a, Scope::To(B), 1_000_000);
        // Nodes without the secret read it as usual.
        assert_eq!(RawMessage::decode(&bytes, 4096).unwrap().body, Body::Ping);
        let body = b.open_at(&bytes, A, Scope::To(B), 1_000_100).unwrap();
        assert_eq!(RawMessage::decode(&body, 4096).unwrap().author, "n1");
        assert_eq!(b.open_at(&bytes, A, Scope::To(B), 1_000_200), Err(AuthError::Replay));
        let broadcast = sealed(&a, Scope::Broadcast, 1_000_000);
        assert!(b.open_at(&broadcast, A, Scope::Broadcast, 1_000_000).is_ok());
    }

    #[test]
    fn a_message_is_valid_only_from_its_sender_and_at_its_destination() {
        let (a, b, c) = (node(A), node(B), node(C));
        let to_b = sealed(&a, Scope::To(B), 1_000_000);
        // Replayed from another address: the MAC names the sender.
        assert_eq!(b.open_at(&to_b, C, Scope::To(B), 1_000_000), Err(AuthError::BadMac));
        // Replayed to another node, or to its own sender (who never saw it).
        assert!(matches!(c.open_at(&to_b, A, Scope::To(C), 1_000_000), Err(AuthError::WrongPlace { .. })));
        assert!(matches!(a.open_at(&to_b, A, Scope::To(A), 1_000_000), Err(AuthError::WrongPlace { .. })));
        // A unicast message rebroadcast, a broadcast sent by unicast.
        assert!(matches!(c.open_at(&to_b, A, Scope::Broadcast, 1_000_000), Err(AuthError::WrongPlace { .. })));
        let broadcast = sealed(&a, Scope::Broadcast, 1_000_000);
        assert!(matches!(b.open_at(&broadcast, A, Scope::To(B), 1_000_000), Err(AuthError::WrongPlace { .. })));
        // Where it belongs, it opens.
        assert!(b.open_at(&to_b, A, Scope::To(B), 1_000_000).is_ok());
    }

    #[test]
    fn messages_sealed_in_one_millisecond_differ() {
        let a = node(A);
        let (first, second) = (sealed(&a, Scope::Broadcast, 7), sealed(&a, Scope::Broadcast, 7));
        assert_ne!(first, second);
        let b = node(B);
        assert!(b.open_at(&first, A, Scope::Broadcast, 7).is_ok());
        assert!(b.open_at(&second, A, Scope::Broadcast, 7).is_ok(), "not a replay");
    }

    #[test]
    fn forged_altered_stale_and_unsigned_messages_are_refused() {
        let (a, b) = (node(A), node(B));
        let unsigned = Message::<String>::new("n1", Body::Ping).encode();
        assert_eq!(b.open_at(&unsigned, A, Scope::Broadcast, 0), Err(AuthError::Missing));
        let other = Authenticator::new(b"guess", A, Duration::from_secs(5));
        assert_eq!(
            b.open_at(&sealed(&other, Scope::Broadcast, 1_000_000), A, Scope::Broadcast, 1_000_000),
            Err(AuthError::BadMac)
        );
        let mut altered = sealed(&a, Scope::Broadcast, 1_000_000);
        let i = altered.iter().position(|b| *b == b'n').unwrap();
        altered[i] = b'm';
        assert_eq!(b.open_at(&altered, A, Scope::Broadcast, 1_000_000), Err(AuthError::BadMac));
        assert!(matches!(
            b.open_at(&sealed(&a, Scope::Broadcast, 1_000_000), A, Scope::Broadcast, 1_006_000),
            Err(AuthError::OutOfWindow { .. })
        ));
        let mut garbage = sealed(&a, Scope::Broadcast, 1_000_000);
        garbage.truncate(garbage.len() - 3);
        assert_eq!(b.open_at(&garbage, A, Scope::Broadcast, 1_000_000), Err(AuthError::Malformed));
    }
}
