//! The wire codec: every message of PROTOCOL section 3 as one JSON object.
//!
//! Decoding is strict about what the protocol needs (type, author, token,
//! nodes, data, exact `serial_code`s) and ignores unknown fields. Anything
//! else is a typed [`DecodeError`]; decoding never panics.
//!
//! A decoded `take token` carries its expansion as raw text
//! ([`RawMessage`]); only after verification against the pi cache does it
//! become a [`Message`] whose data is a correct [`Expansion`].

use super::token::{NodeId, Token};
use crate::pi::{Expansion, PiDigits, Unchecked, Verified};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `serial_code` of each message kind, as the reference implementation
/// checks them.
pub mod serial {
    pub const PING: i64 = 581_831;
    pub const TOKEN_IS_HERE: i64 = 328_067;
    pub const WHERE_IS_TOKEN: i64 = 581_831;
    pub const GENERATING_TOKEN: i64 = 328_067;
    pub const TAKE_TOKEN: i64 = 137_344;
    pub const TOKEN_WAS_HERE_RECENTLY: i64 = 581_831;
    pub const MY_STATE: i64 = 318_467;
    pub const TOKEN: i64 = 407_246;
}

/// The ring's node table as carried by TAKE_TOKEN: id -> IPv4 host as text.
/// Hosts stay text here; the registry parses them and drops bad ones.
pub type Nodes = BTreeMap<NodeId, String>;

/// A message: who sent it and what it says. `D` is the expansion's type:
/// raw text as received, or a verified [`Expansion`].
#[derive(Clone, Debug, PartialEq)]
pub struct Message<D = Expansion> {
    pub author: NodeId,
    pub body: Body<D>,
    /// pi-ring's `have` (PROTOCOL section 10, "Delta hand-offs"): the
    /// length of the sender's checked expansion. A message that carries it
    /// says that its sender takes TAKE_TOKEN with `data_from`.
    pub have: Option<u64>,
}

/// A message as decoded from the wire, before its data is verified.
pub type RawMessage = Message<String>;

#[derive(Clone, Debug, PartialEq)]
pub enum Body<D = Expansion> {
    Ping,
    TokenIsHere {
        token: Token,
    },
    WhereIsToken,
    GeneratingToken {
        token: Token,
    },
    /// `data_from` (pi-ring, to pi-ring nodes that said `have`): `data`
    /// holds the expansion's characters from this index on, not from 0.
    /// Sending, `data` is the whole expansion and the encoder cuts it.
    TakeToken {
        token: Token,
        nodes: Nodes,
        data: D,
        pacing: Pacing,
        data_from: Option<u64>,
    },
    TokenWasHereRecently,
    MyState(Box<MyState>),
}

/// pi-ring's optional fields of TAKE_TOKEN (PROTOCOL section 10): what
/// the next holder needs to keep the ring's heartbeats and monitor reports
/// at a steady pace however fast the token moves. Each is `None` when the
/// sender did not say (the older implementation drops them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pacing {
    /// Microseconds since a holder of this token last broadcast
    /// TOKEN_IS_HERE (`announced_us_ago` on the wire).
    pub announced_us_ago: Option<u64>,
    /// The progress that TOKEN_IS_HERE told (`announced_progress`).
    pub announced_progress: Option<u64>,
    /// Microseconds since a holder of this token last reported MY_STATE
    /// (`reported_us_ago`).
    pub reported_us_ago: Option<u64>,
    /// Hand-offs of this token since it was generated (`hops`).
    pub hops: Option<u64>,
}

/// The state names used by MY_STATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateName {
    None,
    Owner,
    Waiter,
    Looser,
    Generating,
}

impl StateName {
    pub fn as_wire(self) -> &'static str {
        match self {
            StateName::None => "NONE",
            StateName::Owner => "OwnerState",
            StateName::Waiter => "WaiterState",
            StateName::Looser => "LooserState",
            StateName::Generating => "GeneratingState",
        }
    }

    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "NONE" => StateName::None,
            "OwnerState" => StateName::Owner,
            "WaiterState" => StateName::Waiter,
            "LooserState" => StateName::Looser,
            "GeneratingState" => StateName::Generating,
            _ => return None,
        })
    }
}

impl StateName {
    /// The word people read (logs, terminal, page): what the node is
    /// doing, rather than the protocol's state name (README, glossary).
    pub fn for_people(self) -> &'static str {
        match self {
            StateName::None => "starting",
            StateName::Owner => "holding",
            StateName::Waiter => "waiting",
            StateName::Looser => "searching",
            StateName::Generating => "claiming",
        }
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateName::None => "NONE",
            StateName::Owner => "OWNER",
            StateName::Waiter => "WAITER",
            StateName::Looser => "LOOSER",
            StateName::Generating => "GENERATING",
        })
    }
}

/// MY_STATE: a state change, for monitors. Old and new state are required
/// on the wire; the rest are this implementation's optional extensions.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct MyState {
    pub old_state: String,
    pub new_state: String,
    /// Length of the sender's expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u64>,
    /// The sender's current token (or candidate while generating).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_wire_token")]
    pub token: Option<Token>,
    /// Milliseconds since the Unix epoch when the state changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<u64>,
    /// The sender's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The last digits of the sender's expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digits_tail: Option<String>,
    /// Hand-offs of the sender's token since it was generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops: Option<u64>,
    /// Times the sender has held the token since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdings: Option<u64>,
    /// Milliseconds since the Unix epoch when the sender started: a new
    /// value is a restart (its `holdings` count from 0 again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// The digits after the point at which the sender stops extending
    /// (`--target-digits`): monitors tell "target reached" from a stall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_digits: Option<u64>,
    /// Who handed the sender the token (entering OWNER by TAKE_TOKEN):
    /// monitors draw the hand-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_by: Option<String>,
    /// Whom the sender handed the token to (leaving OWNER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_to: Option<String>,
    /// The digits after the point the sender is computing pi to now (its
    /// digit cache grows that far); absent when it computes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computing_to: Option<u64>,
    /// How far that computation is, in percent (an estimate from the
    /// engine's measured speed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computing_done: Option<u8>,
    /// Whether it runs at full priority: the ring would reach the end of
    /// the sender's digits without it (or the sender holds the token and
    /// waits for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computing_urgent: Option<bool>,
}

/// Why a datagram or TCP message was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not a valid message object: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("missing or empty author_node_id")]
    NoAuthor,
    #[error("{kind:?} message without its {field:?} field")]
    MissingField { kind: &'static str, field: &'static str },
    #[error("{what} has serial_code {found:?}, expected {expected}")]
    SerialCode { what: &'static str, expected: i64, found: Option<i64> },
    #[error("token with an empty author_node_id")]
    EmptyTokenAuthor,
    #[error("not accepted: {0}")]
    Unauthenticated(#[from] crate::auth::AuthError),
}

/// The flat shape every message shares on the wire; unknown fields are
/// ignored by serde's default. The expansion is borrowed from the input
/// when it needs no unescaping (always, for digits), so a megabyte of data
/// is not built up character by character.
#[derive(Deserialize)]
struct Frame<'a> {
    serial_code: Option<i64>,
    #[serde(rename = "type")]
    kind: String,
    author_node_id: Option<String>,
    token: Option<WireToken>,
    nodes: Option<Nodes>,
    #[serde(borrow)]
    data: Option<std::borrow::Cow<'a, str>>,
    old_state: Option<String>,
    new_state: Option<String>,
    progress: Option<u64>,
    timestamp_ms: Option<u64>,
    host: Option<String>,
    digits_tail: Option<String>,
    announced_us_ago: Option<u64>,
    announced_progress: Option<u64>,
    reported_us_ago: Option<u64>,
    hops: Option<u64>,
    data_from: Option<u64>,
    have: Option<u64>,
    holdings: Option<u64>,
    started_ms: Option<u64>,
    target_digits: Option<u64>,
    handed_by: Option<String>,
    handed_to: Option<String>,
    computing_to: Option<u64>,
    computing_done: Option<u64>,
    computing_urgent: Option<bool>,
}

#[derive(Serialize, Deserialize)]
struct WireToken {
    serial_code: Option<i64>,
    progress: u64,
    author_node_id: String,
    author_token_revision: u64,
}

impl From<&Token> for WireToken {
    fn from(t: &Token) -> Self {
        WireToken {
            serial_code: Some(serial::TOKEN),
            progress: t.progress,
            author_node_id: t.author_node_id.clone(),
            author_token_revision: t.author_token_revision,
        }
    }
}

impl TryFrom<WireToken> for Token {
    type Error = DecodeError;
    fn try_from(w: WireToken) -> Result<Self, DecodeError> {
        check_serial("token", serial::TOKEN, w.serial_code)?;
        if w.author_node_id.is_empty() {
            return Err(DecodeError::EmptyTokenAuthor);
        }
        Ok(Token {
            progress: w.progress,
            author_node_id: w.author_node_id,
            author_token_revision: w.author_token_revision,
        })
    }
}

mod opt_wire_token {
    use super::*;
    pub fn serialize<S: serde::Serializer>(t: &Option<Token>, s: S) -> Result<S::Ok, S::Error> {
        t.as_ref().map(WireToken::from).serialize(s)
    }
    pub fn deserialize<'de, De: serde::Deserializer<'de>>(d: De) -> Result<Option<Token>, De::Error> {
        Option::<WireToken>::deserialize(d)?.map(|w| Token::try_from(w).map_err(serde::de::Error::custom)).transpose()
    }
}

fn check_serial(what: &'static str, expected: i64, found: Option<i64>) -> Result<(), DecodeError> {
    if found == Some(expected) {
        Ok(())
    } else {
        Err(DecodeError::SerialCode { what, expected, found })
    }
}

impl<D> Body<D> {
    /// The wire `type` string.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Ping => "ping",
            Body::TokenIsHere { .. } => "token is here",
            Body::WhereIsToken => "where is token",
            Body::GeneratingToken { .. } => "generating token",
            Body::TakeToken { .. } => "take token",
            Body::TokenWasHereRecently => "token was here recently",
            Body::MyState(_) => "my state",
        }
    }

    fn serial_code(&self) -> i64 {
        match self {
            Body::Ping => serial::PING,
            Body::TokenIsHere { .. } => serial::TOKEN_IS_HERE,
            Body::WhereIsToken => serial::WHERE_IS_TOKEN,
            Body::GeneratingToken { .. } => serial::GENERATING_TOKEN,
            Body::TakeToken { .. } => serial::TAKE_TOKEN,
            Body::TokenWasHereRecently => serial::TOKEN_WAS_HERE_RECENTLY,
            Body::MyState(_) => serial::MY_STATE,
        }
    }
}

impl<D> Message<D> {
    pub fn new(author: &str, body: Body<D>) -> Self {
        Message { author: author.to_owned(), body, have: None }
    }

    /// Replace the data of a TAKE_TOKEN (other messages carry none).
    pub fn map_data<E>(self, f: impl FnOnce(D) -> E) -> Message<E> {
        let body = match self.body {
            Body::Ping => Body::Ping,
            Body::TokenIsHere { token } => Body::TokenIsHere { token },
            Body::WhereIsToken => Body::WhereIsToken,
            Body::GeneratingToken { token } => Body::GeneratingToken { token },
            Body::TakeToken { token, nodes, data, pacing, data_from } => {
                Body::TakeToken { token, nodes, data: f(data), pacing, data_from }
            }
            Body::TokenWasHereRecently => Body::TokenWasHereRecently,
            Body::MyState(s) => Body::MyState(s),
        };
        Message { author: self.author, body, have: self.have }
    }
}

impl<D: AsRef<str>> Message<D> {
    /// The JSON document for this message.
    pub fn encode(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Out<'a> {
            serial_code: i64,
            #[serde(rename = "type")]
            kind: &'static str,
            author_node_id: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            token: Option<WireToken>,
            #[serde(skip_serializing_if = "Option::is_none")]
            nodes: Option<&'a Nodes>,
            #[serde(skip_serializing_if = "Option::is_none")]
            data: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            announced_us_ago: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            announced_progress: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            reported_us_ago: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            hops: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            data_from: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            have: Option<u64>,
            #[serde(flatten, skip_serializing_if = "Option::is_none")]
            my_state: Option<&'a MyState>,
        }
        // The expansion goes in verbatim when it needs no escaping (digits
        // and a comma always): serialising a megabyte through the JSON
        // string escaper would cost more than the hand-off's copies.
        let data = match &self.body {
            Body::TakeToken { data, data_from, .. } => {
                let data = data.as_ref();
                let from = data_from.map_or(0, |f| usize::try_from(f).unwrap_or(usize::MAX).min(data.len()));
                // Only whole characters: the expansion is ASCII, anything
                // else goes whole.
                Some(data.get(from..).unwrap_or(data))
            }
            _ => None,
        };
        let verbatim = data.filter(|d| needs_no_escaping(d));
        let mut out = Out {
            serial_code: self.body.serial_code(),
            kind: self.body.kind(),
            author_node_id: &self.author,
            token: None,
            nodes: None,
            data: None,
            announced_us_ago: None,
            announced_progress: None,
            reported_us_ago: None,
            hops: None,
            data_from: None,
            have: self.have,
            my_state: None,
        };
        match &self.body {
            Body::TokenIsHere { token } | Body::GeneratingToken { token } => out.token = Some(token.into()),
            Body::TakeToken { token, nodes, pacing, data_from, .. } => {
                out.token = Some(token.into());
                out.nodes = Some(nodes);
                if verbatim.is_none() {
                    out.data = data;
                }
                out.data_from = *data_from;
                out.announced_us_ago = pacing.announced_us_ago;
                out.announced_progress = pacing.announced_progress;
                out.reported_us_ago = pacing.reported_us_ago;
                out.hops = pacing.hops;
            }
            Body::MyState(state) => out.my_state = Some(&**state),
            Body::Ping | Body::WhereIsToken | Body::TokenWasHereRecently => {}
        }
        let mut bytes = serde_json::to_vec(&out).expect("serialising plain data cannot fail");
        if let Some(data) = verbatim {
            // `out` is an object with at least serial_code: replace its
            // closing brace with the data field.
            bytes.pop();
            bytes.reserve(data.len() + 11);
            bytes.extend_from_slice(b",\"data\":\"");
            bytes.extend_from_slice(data.as_bytes());
            bytes.extend_from_slice(b"\"}");
        }
        bytes
    }
}

/// A message whose last field is `"data":"..."` with nothing to unescape
/// (how pi-ring sends TAKE_TOKEN): the object without that field, and the
/// data, found without running the JSON parser over a megabyte of digits.
/// `None` when the bytes do not end so; the caller then parses them whole.
///
/// The bytes `"data":"` with unescaped quotes can only be JSON structure,
/// and a value that reaches the object's final `"}` without a quote or a
/// backslash is the whole string: so this finds the top-level `data` field
/// of any valid object that ends with it, and the parser checks the rest.
fn split_trailing_data(bytes: &[u8]) -> Option<(Vec<u8>, &str)> {
    const KEY: &[u8] = b"\"data\":\"";
    let end = bytes.len() - bytes.iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
    let body = bytes[..end].strip_suffix(b"\"}")?;
    // The value's opening quote is the last quote of `body`; no byte after
    // it may need escaping. One pass from the end, in chunks without a
    // branch per byte (a megabyte in tens of microseconds).
    let needs_escape = |b: u8| (b < 0x20) | (b == b'\\');
    let mut open = None;
    let mut chunk_end = body.len();
    for chunk in body.rchunks(64) {
        let chunk_start = chunk_end - chunk.len();
        let (quote, bad) = chunk.iter().fold((false, false), |(q, bad), &b| (q | (b == b'"'), bad | needs_escape(b)));
        if quote {
            let at = chunk_start + chunk.iter().rposition(|&b| b == b'"')?;
            if body[at + 1..chunk_end].iter().any(|&b| needs_escape(b)) {
                return None;
            }
            open = Some(at);
            break;
        }
        if bad {
            return None;
        }
        chunk_end = chunk_start;
    }
    let open = open?;
    let key = (open + 1).checked_sub(KEY.len())?;
    if &body[key..=open] != KEY {
        return None;
    }
    let value = std::str::from_utf8(&body[open + 1..]).ok()?;
    let mut head = body[..key].to_vec();
    while head.last().is_some_and(u8::is_ascii_whitespace) {
        head.pop();
    }
    if head.last() == Some(&b',') {
        head.pop();
    }
    head.push(b'}');
    Some((head, value))
}

/// Whether `text` can stand in a JSON string as it is.
fn needs_no_escaping(text: &str) -> bool {
    // In chunks without a branch per byte, so that the compiler vectorises
    // it: a megabyte of digits is scanned in tens of microseconds rather
    // than more than a millisecond.
    text.as_bytes()
        .chunks(64)
        .all(|chunk| !chunk.iter().fold(false, |bad, &b| bad | (b < 0x20) | (b == b'"') | (b == b'\\')))
}

impl AsRef<str> for Expansion {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl RawMessage {
    /// Decode one message (a datagram or a TCP message's bytes).
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<RawMessage, DecodeError> {
        if bytes.len() > max_len {
            return Err(DecodeError::TooLarge { len: bytes.len(), max: max_len });
        }
        let frame = match split_trailing_data(bytes) {
            Some((rest, data)) => match serde_json::from_slice::<Frame>(&rest) {
                Ok(frame) if frame.data.is_none() => Frame { data: Some(std::borrow::Cow::Borrowed(data)), ..frame },
                // Not what it seemed (a second `data`, ...): the parser
                // says what is wrong.
                _ => serde_json::from_slice(bytes)?,
            },
            None => serde_json::from_slice(bytes)?,
        };
        let author = frame.author_node_id.filter(|a| !a.is_empty()).ok_or(DecodeError::NoAuthor)?;
        let kind: &'static str = match frame.kind.as_str() {
            "ping" => "ping",
            "token is here" => "token is here",
            "where is token" => "where is token",
            "generating token" => "generating token",
            "take token" => "take token",
            "token was here recently" => "token was here recently",
            "my state" => "my state",
            _ => return Err(DecodeError::UnknownType(frame.kind)),
        };
        let missing = |field| DecodeError::MissingField { kind, field };
        let wire_token = frame.token;
        let token = || -> Result<Token, DecodeError> { wire_token.ok_or(missing("token"))?.try_into() };
        let body = match kind {
            "ping" => Body::Ping,
            "where is token" => Body::WhereIsToken,
            "token was here recently" => Body::TokenWasHereRecently,
            "token is here" => Body::TokenIsHere { token: token()? },
            "generating token" => Body::GeneratingToken { token: token()? },
            "take token" => {
                let nodes = frame.nodes.ok_or(missing("nodes"))?;
                let data = frame.data.ok_or(missing("data"))?.into_owned();
                let pacing = Pacing {
                    announced_us_ago: frame.announced_us_ago,
                    announced_progress: frame.announced_progress,
                    reported_us_ago: frame.reported_us_ago,
                    hops: frame.hops,
                };
                Body::TakeToken { token: token()?, nodes, data, pacing, data_from: frame.data_from }
            }
            _ => Body::MyState(Box::new(MyState {
                token: token().ok(),
                old_state: frame.old_state.ok_or(missing("old_state"))?,
                new_state: frame.new_state.ok_or(missing("new_state"))?,
                progress: frame.progress,
                timestamp_ms: frame.timestamp_ms,
                host: frame.host,
                digits_tail: frame.digits_tail,
                hops: frame.hops,
                holdings: frame.holdings,
                started_ms: frame.started_ms,
                target_digits: frame.target_digits,
                handed_by: frame.handed_by,
                handed_to: frame.handed_to,
                computing_to: frame.computing_to,
                computing_done: frame.computing_done.map(|d| d.min(100) as u8),
                computing_urgent: frame.computing_urgent,
            })),
        };
        let message = Message { author, body, have: frame.have };
        check_serial(kind, message.body.serial_code(), frame.serial_code)?;
        Ok(message)
    }

    /// The message as it is when it carries no expansion; `Err(self)` for
    /// TAKE_TOKEN, whose data must be verified first ([`Self::verify`]).
    pub fn without_data(self) -> Result<Message, Box<RawMessage>> {
        if matches!(self.body, Body::TakeToken { .. }) {
            return Err(Box::new(self));
        }
        Ok(self.map_data(|_| Expansion::empty()))
    }

    /// Verify a TAKE_TOKEN's expansion against the pi cache (blocking if
    /// the cache must grow). Returns the message with a correct expansion
    /// and, when a suffix was wrong, the verification report.
    pub fn verify(self, pi: &PiDigits) -> (Message, Option<Verified>) {
        let mut report = None;
        let message = self.map_data(|data| {
            let verified = pi.verify(&data);
            let expansion = verified.expansion.clone();
            if !verified.is_intact() {
                report = Some(verified);
            }
            expansion
        });
        (message, report)
    }

    /// Verify a TAKE_TOKEN's expansion against the digits the cache
    /// already has, never computing ([`PiDigits::verify_cached`]): the
    /// message with the correct prefix, the report when a suffix was
    /// wrong, and the digits beyond the cache, which the node checks while
    /// it holds the token.
    pub fn verify_cached(self, pi: &PiDigits) -> (Message, Option<Verified>, Option<Unchecked>) {
        let mut report = None;
        let mut rest = None;
        let message = self.map_data(|data| {
            let (verified, unchecked) = pi.verify_cached(&data);
            let expansion = verified.expansion.clone();
            if !verified.is_intact() {
                report = Some(verified);
            }
            rest = unchecked;
            expansion
        });
        (message, report, rest)
    }
}

impl Message {
    /// The message as a receiver decodes it: its expansion as text, from
    /// `data_from` on (what [`Message::encode`] sends).
    pub fn into_raw(self) -> RawMessage {
        let from = match &self.body {
            Body::TakeToken { data_from: Some(from), .. } => usize::try_from(*from).unwrap_or(usize::MAX),
            _ => 0,
        };
        self.map_data(|data| data.as_str().get(from..).unwrap_or_default().to_owned())
    }
}

impl<D> Message<D> {
    /// The message's token, if it carries one.
    pub fn token(&self) -> Option<&Token> {
        match &self.body {
            Body::TokenIsHere { token } | Body::GeneratingToken { token } | Body::TakeToken { token, .. } => {
                Some(token)
            }
            _ => None,
        }
    }
}
