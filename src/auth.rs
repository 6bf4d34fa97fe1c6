//! Optional ring authentication (`--secret-file`): every message a node
//! sends carries an extra JSON field `"auth": {"ts": .., "mac": ".."}` with
//! an HMAC-SHA256 over the timestamp and the message; nodes of such a ring
//! drop messages without a valid tag, outside the time window, or seen
//! before (replays). Nodes without the secret ignore the unknown field, so
//! the wire format stays valid JSON of the same shape.
//!
//! The tag covers the exact bytes sent: the sender appends the field at the
//! end of the encoded object, and the receiver checks the bytes before it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

const FIELD: &[u8] = b",\"auth\":{\"ts\":";

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no authentication tag (a node without the ring's secret?)")]
    Missing,
    #[error("malformed authentication tag")]
    Malformed,
    #[error("wrong authentication tag (forged or altered)")]
    BadMac,
    #[error("timestamp {skew_ms} ms away from our clock, outside the window of {window_ms} ms")]
    OutOfWindow { skew_ms: i64, window_ms: u64 },
    #[error("replayed message")]
    Replay,
}

/// Seals and opens messages with the ring's secret.
pub struct Authenticator {
    key: Vec<u8>,
    window: Duration,
    /// Tags accepted within the window, to refuse replays.
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authenticator(window {:?}, secret hidden)", self.window)
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

impl Authenticator {
    /// Accept messages stamped within `window` of our clock.
    pub fn new(secret: &[u8], window: Duration) -> Self {
        Authenticator { key: secret.to_vec(), window, seen: Mutex::new(Seen::default()) }
    }

    fn mac(&self, ts: u64, body: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(ts.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Append the tag to an encoded message (a JSON object).
    pub fn seal(&self, mut json: Vec<u8>) -> Vec<u8> {
        self.seal_at(&mut json, now_ms());
        json
    }

    fn seal_at(&self, json: &mut Vec<u8>, ts: u64) {
        let tag = self.mac(ts, json);
        debug_assert_eq!(json.last(), Some(&b'}'));
        json.pop();
        json.extend_from_slice(FIELD);
        json.extend_from_slice(ts.to_string().as_bytes());
        json.extend_from_slice(b",\"mac\":\"");
        json.extend_from_slice(hex(&tag).as_bytes());
        json.extend_from_slice(b"\"}}");
    }

    /// Check a received message; returns the message without its tag.
    pub fn open(&self, bytes: &[u8]) -> Result<Vec<u8>, AuthError> {
        self.open_at(bytes, now_ms())
    }

    fn open_at(&self, bytes: &[u8], now: u64) -> Result<Vec<u8>, AuthError> {
        let start = rfind(bytes, FIELD).ok_or(AuthError::Missing)?;
        let rest = std::str::from_utf8(&bytes[start + FIELD.len()..]).map_err(|_| AuthError::Malformed)?;
        let (ts, rest) = rest.split_once(",\"mac\":\"").ok_or(AuthError::Malformed)?;
        let hex_tag = rest.strip_suffix("\"}}").ok_or(AuthError::Malformed)?;
        let ts: u64 = ts.parse().map_err(|_| AuthError::Malformed)?;
        let tag = unhex(hex_tag).ok_or(AuthError::Malformed)?;
        let mut body = bytes[..start].to_vec();
        body.push(b'}');
        // Constant-time comparison through the hmac crate.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(ts.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(&body);
        mac.verify_slice(&tag).map_err(|_| AuthError::BadMac)?;
        let skew = now as i64 - ts as i64;
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
        if !seen.tags.insert(tag) {
            return Err(AuthError::Replay);
        }
        seen.order.push_back((ts, tag));
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

    fn auth() -> Authenticator {
        Authenticator::new(b"ring secret", Duration::from_secs(5))
    }

    fn sealed(a: &Authenticator, ts: u64) -> Vec<u8> {
        let mut json = Message::<String>::new("n1", Body::Ping).encode();
        a.seal_at(&mut json, ts);
        json
    }

    #[test]
    fn a_sealed_message_opens_once_and_stays_valid_json() {
        let a = auth();
        let bytes = sealed(&a, 1_000_000);
        // Nodes without the secret read it as usual.
        assert_eq!(RawMessage::decode(&bytes, 4096).unwrap().body, Body::Ping);
        let body = a.open_at(&bytes, 1_000_100).unwrap();
        assert_eq!(RawMessage::decode(&body, 4096).unwrap().author, "n1");
        assert_eq!(a.open_at(&bytes, 1_000_200), Err(AuthError::Replay));
    }

    #[test]
    fn forged_altered_stale_and_unsigned_messages_are_refused() {
        let a = auth();
        let unsigned = Message::<String>::new("n1", Body::Ping).encode();
        assert_eq!(a.open_at(&unsigned, 0), Err(AuthError::Missing));
        let other = Authenticator::new(b"guess", Duration::from_secs(5));
        assert_eq!(a.open_at(&sealed(&other, 1_000_000), 1_000_000), Err(AuthError::BadMac));
        let mut altered = sealed(&a, 1_000_000);
        let i = altered.iter().position(|b| *b == b'n').unwrap();
        altered[i] = b'm';
        assert_eq!(a.open_at(&altered, 1_000_000), Err(AuthError::BadMac));
        assert!(matches!(a.open_at(&sealed(&a, 1_000_000), 1_006_000), Err(AuthError::OutOfWindow { .. })));
        let mut garbage = sealed(&a, 1_000_000);
        garbage.truncate(garbage.len() - 3);
        assert_eq!(a.open_at(&garbage, 1_000_000), Err(AuthError::Malformed));
    }
}
