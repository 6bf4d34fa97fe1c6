//! The wire as PROTOCOL section 3 writes it, read strictly.
//!
//! A node's own codec accepts what it can (a missing `serial_code` costs a
//! warning); a conformance test must not. This module parses with nothing
//! but `serde_json` and says exactly which rule a message breaks, and builds
//! the messages the scripted peers send.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// `serial_code` of a token object.
pub const TOKEN_SERIAL: u64 = 407246;

/// The seven message types (section 3's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Ping,
    TokenIsHere,
    WhereIsToken,
    GeneratingToken,
    TakeToken,
    TokenWasHereRecently,
    MyState,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Ping,
        Kind::TokenIsHere,
        Kind::WhereIsToken,
        Kind::GeneratingToken,
        Kind::TakeToken,
        Kind::TokenWasHereRecently,
        Kind::MyState,
    ];

    /// The `type` string.
    pub fn wire(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::TokenIsHere => "token is here",
            Kind::WhereIsToken => "where is token",
            Kind::GeneratingToken => "generating token",
            Kind::TakeToken => "take token",
            Kind::TokenWasHereRecently => "token was here recently",
            Kind::MyState => "my state",
        }
    }

    /// The `serial_code` the table gives this type.
    pub fn serial_code(self) -> u64 {
        match self {
            Kind::Ping | Kind::WhereIsToken | Kind::TokenWasHereRecently => 581831,
            Kind::TokenIsHere | Kind::GeneratingToken => 328067,
            Kind::TakeToken => 137344,
            Kind::MyState => 318467,
        }
    }

    fn from_wire(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.wire() == s)
    }

    /// Whether section 3's table lets this type travel by TCP.
    pub fn allowed_on_tcp(self) -> bool {
        !matches!(self, Kind::WhereIsToken | Kind::MyState)
    }

    /// Whether section 3's table lets this type be broadcast on the ring port.
    pub fn allowed_on_ring_udp(self) -> bool {
        matches!(self, Kind::Ping | Kind::TokenIsHere | Kind::WhereIsToken | Kind::GeneratingToken)
    }

    /// The name PROTOCOL.md uses.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ping => "PING",
            Kind::TokenIsHere => "TOKEN_IS_HERE",
            Kind::WhereIsToken => "WHERE_IS_TOKEN",
            Kind::GeneratingToken => "GENERATING_TOKEN",
            Kind::TakeToken => "TAKE_TOKEN",
            Kind::TokenWasHereRecently => "TOKEN_WAS_HERE_RECENTLY",
            Kind::MyState => "MY_STATE",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A token (section 2), ordered as the protocol orders tokens.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token {
    pub progress: u64,
    pub author: String,
    pub revision: u64,
}

impl Token {
    pub fn new(progress: usize, author: &str, revision: u64) -> Self {
        Token { progress: progress as u64, author: author.into(), revision }
    }

    fn to_json(&self) -> Value {
        json!({
            "serial_code": TOKEN_SERIAL,
            "progress": self.progress,
            "author_node_id": self.author,
            "author_token_revision": self.revision,
        })
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {:?}, {})", self.progress, self.author, self.revision)
    }
}

/// A message that keeps every rule of section 3.
#[derive(Clone, Debug)]
pub struct Wire {
    pub kind: Kind,
    pub author: String,
    pub token: Option<Token>,
    /// TAKE_TOKEN's table.
    pub nodes: Option<BTreeMap<String, String>>,
    /// TAKE_TOKEN's expansion (from `data_from` on, when that is given).
    pub data: Option<String>,
    /// The whole object, for optional fields.
    pub value: Value,
}

impl Wire {
    /// An optional unsigned field (`have`, `data_from`, `started_ms` ...).
    pub fn number(&self, field: &str) -> Option<u64> {
        self.value.get(field).and_then(Value::as_u64)
    }

    /// An optional string field (`old_state`, `new_state` ...).
    pub fn text(&self, field: &str) -> Option<&str> {
        self.value.get(field).and_then(Value::as_str)
    }

    /// TAKE_TOKEN's whole expansion, when it is whole (no `data_from`, or 0).
    pub fn whole_data(&self) -> Option<&str> {
        match self.number("data_from") {
            None | Some(0) => self.data.as_deref(),
            Some(_) => None,
        }
    }
}

/// MY_STATE's state names (section 3).
pub const STATE_NAMES: [&str; 5] = ["NONE", "OwnerState", "WaiterState", "LooserState", "GeneratingState"];

/// Parse one message, checking every rule of section 3 that one message can
/// break. The error says which.
pub fn parse(bytes: &[u8]) -> Result<Wire, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(object) = &value else { return Err("not a JSON object".into()) };
    let kind_text = object.get("type").and_then(Value::as_str).ok_or("no string field `type`")?;
    let kind = Kind::from_wire(kind_text).ok_or_else(|| format!("unknown `type` {kind_text:?}"))?;
    match object.get("serial_code") {
        None => return Err(format!("{kind} without `serial_code` (must be {})", kind.serial_code())),
        Some(code) if code.as_u64() != Some(kind.serial_code()) => {
            return Err(format!("{kind} with `serial_code` {code} (must be {})", kind.serial_code()))
        }
        Some(_) => {}
    }
    let author = match object.get("author_node_id").and_then(Value::as_str) {
        Some(a) if !a.is_empty() => a.to_owned(),
        _ => return Err(format!("{kind} without a non-empty string `author_node_id`")),
    };
    let needs_token = matches!(kind, Kind::TokenIsHere | Kind::GeneratingToken | Kind::TakeToken);
    let token = match object.get("token") {
        Some(t) if !t.is_null() => Some(parse_token(t).map_err(|e| format!("{kind}: {e}"))?),
        _ if needs_token => return Err(format!("{kind} without `token`")),
        _ => None,
    };
    let (mut nodes, mut data) = (None, None);
    if kind == Kind::TakeToken {
        nodes = Some(parse_nodes(object).map_err(|e| format!("TAKE_TOKEN: {e}"))?);
        data = Some(object.get("data").and_then(Value::as_str).ok_or("TAKE_TOKEN without a string `data`")?.to_owned());
    }
    if kind == Kind::MyState {
        for field in ["old_state", "new_state"] {
            let state = object.get(field).and_then(Value::as_str).ok_or(format!("MY_STATE without `{field}`"))?;
            if !STATE_NAMES.contains(&state) {
                return Err(format!("MY_STATE `{field}` {state:?} is none of {STATE_NAMES:?}"));
            }
        }
    }
    Ok(Wire { kind, author, token, nodes, data, value })
}

fn parse_token(t: &Value) -> Result<Token, String> {
    let Value::Object(t) = t else { return Err("`token` is not an object".into()) };
    if t.get("serial_code").and_then(Value::as_u64) != Some(TOKEN_SERIAL) {
        return Err(format!("token without `serial_code` {TOKEN_SERIAL}"));
    }
    let number = |f: &str| t.get(f).and_then(Value::as_u64).ok_or(format!("token without an unsigned `{f}`"));
    let author = t.get("author_node_id").and_then(Value::as_str).filter(|a| !a.is_empty());
    Ok(Token {
        progress: number("progress")?,
        author: author.ok_or("token without a non-empty `author_node_id`")?.to_owned(),
        revision: number("author_token_revision")?,
    })
}

fn parse_nodes(object: &Map<String, Value>) -> Result<BTreeMap<String, String>, String> {
    let Some(Value::Object(nodes)) = object.get("nodes") else { return Err("no object `nodes`".into()) };
    nodes
        .iter()
        .map(|(id, host)| match host.as_str() {
            Some(h) if h.parse::<Ipv4Addr>().is_ok() => Ok((id.clone(), h.to_owned())),
            _ => Err(format!("`nodes` maps {id:?} to {host}, not an IPv4 address")),
        })
        .collect()
}

/// Build a message of `kind` from `author`; `extra` fields are appended.
pub fn build(kind: Kind, author: &str, token: Option<&Token>, extra: Value) -> Vec<u8> {
    let mut object = Map::new();
    object.insert("serial_code".into(), json!(kind.serial_code()));
    object.insert("type".into(), json!(kind.wire()));
    object.insert("author_node_id".into(), json!(author));
    if let Some(token) = token {
        object.insert("token".into(), token.to_json());
    }
    if let Value::Object(extra) = extra {
        object.extend(extra);
    }
    serde_json::to_vec(&Value::Object(object)).expect("a JSON object encodes")
}

/// A TAKE_TOKEN with its table and whole expansion.
pub fn take_token(author: &str, token: &Token, nodes: &BTreeMap<String, String>, data: &str) -> Vec<u8> {
    build(Kind::TakeToken, author, Some(token), json!({ "nodes": nodes, "data": data }))
}

/// `3,` and the first `fraction` digits of pi: the expansion a correct node
/// holds after `fraction / 20` holdings.
pub fn pi_expansion(fraction: usize) -> String {
    if fraction == 0 {
        return String::new();
    }
    format!("3,{}", pi_ring::pi::fraction_digits(fraction))
}

/// How many leading characters of `data` are pi's (`3,` and digits).
pub fn correct_prefix(data: &str) -> usize {
    let digits = data.len().saturating_sub(2);
    let pi = pi_expansion(digits.max(1));
    data.bytes().zip(pi.bytes()).take_while(|(a, b)| a == b).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_built_here_parses_back() {
        let token = Token::new(22, "n1", 3);
        let nodes = BTreeMap::from([("n1".to_owned(), "127.0.0.2".to_owned())]);
        let wire = parse(&take_token("n1", &token, &nodes, &pi_expansion(20))).expect("valid");
        assert_eq!((wire.kind, wire.author.as_str(), wire.token.clone()), (Kind::TakeToken, "n1", Some(token)));
        assert_eq!(wire.whole_data(), Some("3,14159265358979323846"));
        assert_eq!(wire.nodes, Some(nodes));
    }

    #[test]
    fn each_broken_rule_of_section_3_is_named() {
        let cases: [(&str, &str); 8] = [
            ("[1]", "not a JSON object"),
            (r#"{"serial_code": 581831, "author_node_id": "a"}"#, "no string field `type`"),
            (r#"{"serial_code": 581831, "type": "pong", "author_node_id": "a"}"#, "unknown `type`"),
            (r#"{"type": "ping", "author_node_id": "a"}"#, "without `serial_code`"),
            (r#"{"serial_code": 328067, "type": "ping", "author_node_id": "a"}"#, "(must be 581831)"),
            (r#"{"serial_code": 581831, "type": "ping", "author_node_id": ""}"#, "non-empty string `author_node_id`"),
            (r#"{"serial_code": 328067, "type": "token is here", "author_node_id": "a"}"#, "without `token`"),
            (
                r#"{"serial_code": 318467, "type": "my state", "author_node_id": "a", "old_state": "NONE", "new_state": "Idle"}"#,
                "`new_state` \"Idle\"",
            ),
        ];
        for (text, said) in cases {
            let error = parse(text.as_bytes()).expect_err(text);
            assert!(error.contains(said), "{text}: {error}");
        }
    }

    #[test]
    fn the_correct_prefix_ends_at_the_first_wrong_character() {
        assert_eq!(correct_prefix("3,1415"), 6);
        assert_eq!(correct_prefix("3,1416"), 5);
        assert_eq!(correct_prefix("4,"), 0);
        assert_eq!(correct_prefix(""), 0);
    }
}
