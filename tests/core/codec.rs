//! The wire codec against the project's wire samples in
//! `tests/core/wire-samples/` (PROTOCOL section 3, docs/PROTOCOL.md).

use pi_ring::pi::PiDigits;
use pi_ring::protocol::{Body, DecodeError, Message, MyState, RawMessage, Token};
use serde_json::Value;
use std::path::{Path, PathBuf};

const MAX: usize = 1 << 20;

fn samples(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/core/wire-samples").join(kind)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn valid(name: &str) -> (Vec<u8>, RawMessage) {
    let bytes = read(&samples("valid").join(name));
    let message = RawMessage::decode(&bytes, MAX).unwrap_or_else(|e| panic!("{name}: {e}"));
    (bytes, message)
}

fn token(progress: u64, author: &str, revision: u64) -> Token {
    Token { progress, author_node_id: author.into(), author_token_revision: revision }
}

#[test]
fn every_valid_sample_decodes_to_the_expected_message() {
    let nodes = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let expect: Vec<(&str, &str, Body<String>)> = vec![
        ("ping.json", "alpha", Body::Ping),
        ("where_is_token.json", "bravo", Body::WhereIsToken),
        ("token_was_here_recently.json", "charlie", Body::TokenWasHereRecently),
        ("token_is_here.json", "delta", Body::TokenIsHere { token: token(62, "alpha", 2) }),
        ("token_is_here_extra_fields.json", "echo", Body::TokenIsHere { token: token(102, "bravo", 4) }),
        ("generating_token.json", "foxtrot", Body::GeneratingToken { token: token(42, "foxtrot", 3) }),
        (
            "take_token.json",
            "alpha",
            Body::TakeToken {
                token: token(42, "charlie", 2),
                nodes: nodes(&[("alpha", "192.0.2.10"), ("bravo", "192.0.2.11"), ("charlie", "192.0.2.12")]),
                data: "3,1415926535897932384626433832795028841971".into(),
                pacing: Default::default(),
                data_from: None,
            },
        ),
        (
            "take_token_unicode_id.json",
            "nöd-π",
            Body::TakeToken {
                token: token(0, "nöd-π", 5),
                nodes: nodes(&[("nöd-π", "127.0.0.7")]),
                data: String::new(),
                pacing: Default::default(),
                data_from: None,
            },
        ),
        (
            "my_state.json",
            "golf",
            Body::MyState(Box::new(MyState {
                old_state: "WaiterState".into(),
                new_state: "OwnerState".into(),
                ..Default::default()
            })),
        ),
    ];
    let mut files: Vec<String> =
        std::fs::read_dir(samples("valid")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    let mut covered: Vec<String> = expect.iter().map(|(f, _, _)| f.to_string()).collect();
    covered.sort();
    assert_eq!(files, covered, "every valid sample has an expectation");
    for (file, author, body) in expect {
        let (_, message) = valid(file);
        assert_eq!(message, Message { author: author.into(), body, have: None }, "{file}");
    }
}

#[test]
fn encoding_then_decoding_gives_the_same_message() {
    for entry in std::fs::read_dir(samples("valid")).unwrap() {
        let path = entry.unwrap().path();
        let message = RawMessage::decode(&read(&path), MAX).unwrap();
        let again = RawMessage::decode(&message.encode(), MAX).unwrap();
        assert_eq!(again, message, "{}", path.display());
    }
}

#[test]
fn encoding_matches_the_reference_json_field_for_field() {
    for entry in std::fs::read_dir(samples("valid")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = read(&path);
        let mut reference: Value = serde_json::from_slice(&bytes).unwrap();
        reference.as_object_mut().unwrap().remove("added_later");
        let ours: Value = serde_json::from_slice(&RawMessage::decode(&bytes, MAX).unwrap().encode()).unwrap();
        assert_eq!(ours, reference, "{}", path.display());
    }
}

#[test]
fn serial_codes_are_exact() {
    let expected = [
        ("ping.json", 581831),
        ("token_is_here.json", 328067),
        ("where_is_token.json", 581831),
        ("generating_token.json", 328067),
        ("take_token.json", 137344),
        ("token_was_here_recently.json", 581831),
        ("my_state.json", 318467),
    ];
    for (file, code) in expected {
        let (_, message) = valid(file);
        let encoded: Value = serde_json::from_slice(&message.encode()).unwrap();
        assert_eq!(encoded["serial_code"], code, "{file}");
        if let Some(token) = encoded.get("token") {
            assert_eq!(token["serial_code"], 407246, "{file} token");
        }
    }
}

#[test]
fn every_invalid_sample_is_rejected_with_a_typed_error() {
    let mut seen = 0;
    for entry in std::fs::read_dir(samples("invalid")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let result = RawMessage::decode(&read(&path), MAX);
        let error = result.expect_err(&name);
        let fits = match name.as_str() {
            "empty_author.json" | "missing_author.json" => matches!(error, DecodeError::NoAuthor),
            "unknown_type.json" => matches!(error, DecodeError::UnknownType(ref t) if t == "token please"),
            "token_missing.json" => matches!(error, DecodeError::MissingField { field: "token", .. }),
            // Syntax, truncation, nesting depth and wrong field types.
            _ => matches!(error, DecodeError::Malformed(_)),
        };
        assert!(fits, "{name}: unexpected error {error:?}");
        seen += 1;
    }
    assert_eq!(seen, 11);
}

#[test]
fn wrong_or_missing_serial_codes_are_rejected() {
    let wrong = br#"{"serial_code": 1, "type": "ping", "author_node_id": "n2"}"#;
    assert!(matches!(RawMessage::decode(wrong, MAX), Err(DecodeError::SerialCode { found: Some(1), .. })));
    let missing = br#"{"type": "ping", "author_node_id": "n2"}"#;
    assert!(matches!(RawMessage::decode(missing, MAX), Err(DecodeError::SerialCode { found: None, .. })));
    let token = br#"{"serial_code": 328067, "type": "token is here", "author_node_id": "n3",
        "token": {"serial_code": 5, "progress": 1, "author_node_id": "n3", "author_token_revision": 1}}"#;
    assert!(matches!(RawMessage::decode(token, MAX), Err(DecodeError::SerialCode { what: "token", .. })));
}

#[test]
fn oversized_input_is_rejected_before_parsing() {
    let (bytes, _) = valid("ping.json");
    assert!(matches!(RawMessage::decode(&bytes, 10), Err(DecodeError::TooLarge { .. })));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz: every prefix and byte-flips of every sample.
    for kind in ["valid", "invalid"] {
        for entry in std::fs::read_dir(samples(kind)).unwrap() {
            let bytes = read(&entry.unwrap().path());
            for cut in 0..bytes.len().min(400) {
                let _ = RawMessage::decode(&bytes[..cut], MAX);
            }
            for i in 0..bytes.len().min(200) {
                let mut flipped = bytes.clone();
                flipped[i] ^= 0x5a;
                let _ = RawMessage::decode(&flipped, MAX);
            }
        }
    }
}

#[test]
fn take_token_data_is_verified_keeping_the_longest_correct_prefix() {
    let pi = PiDigits::new(100_000);
    let (_, sample) = valid("take_token.json");
    let (message, report) = sample.clone().verify(&pi);
    assert!(report.is_none());
    match &message.body {
        Body::TakeToken { data, .. } => assert_eq!(data.as_str(), "3,1415926535897932384626433832795028841971"),
        other => panic!("{other:?}"),
    }
    let wrong = sample.map_data(|_| "3,14159265358979323999".to_string());
    let (message, report) = wrong.verify(&pi);
    let report = report.expect("a wrong suffix is reported");
    assert_eq!(report.received_len, 22);
    match &message.body {
        Body::TakeToken { data, .. } => assert_eq!(data.as_str(), "3,14159265358979323"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn take_token_data_round_trips_verbatim_or_escaped() {
    use pi_ring::protocol::message::Pacing;
    for data in ["3,14159265358979323846", "3,14\"15\\92\u{1}", ""] {
        let body: Body<String> = Body::TakeToken {
            token: token(22, "a", 1),
            nodes: [("a".to_string(), "127.0.0.2".to_string())].into_iter().collect(),
            data: data.into(),
            pacing: Pacing {
                announced_us_ago: Some(5),
                announced_progress: Some(2),
                reported_us_ago: None,
                hops: Some(9),
            },
            data_from: None,
        };
        let message = Message::new("a", body);
        let bytes = message.encode();
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(parsed["data"], data, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(RawMessage::decode(&bytes, 1 << 20).unwrap(), message);
    }
}

/// pi-ring finds a TAKE_TOKEN's trailing `"data":"..."` without running the
/// JSON parser over it. Whatever the bytes, the result is the parser's: the
/// same message where the field is found, the same error where the bytes
/// are not valid or not what they seem.
#[test]
fn the_data_found_at_the_end_is_what_the_json_parser_would_find() {
    let data = PiDigits::new(100_000).expansion(50_002);
    let nodes = [("a".to_string(), "127.0.0.2".to_string())].into_iter().collect();
    let mut message = Message::new(
        "a",
        Body::TakeToken { token: token(50_002, "a", 1), nodes, data, pacing: Default::default(), data_from: Some(7) },
    );
    message.have = Some(3);
    let sent = message.encode();
    let text = String::from_utf8(sent.clone()).unwrap();
    assert!(text.ends_with("\"}") && text.contains(",\"data\":\""), "pi-ring puts data last, verbatim");
    let expected = RawMessage::decode(&sent, 1 << 20).unwrap();
    // The same object with its keys in another order, or with whitespace
    // after it: the same message.
    let reordered = serde_json::to_vec(&serde_json::from_slice::<Value>(&sent).unwrap()).unwrap();
    for variant in [reordered, [sent.as_slice(), b" \n"].concat()] {
        assert_eq!(RawMessage::decode(&variant, 1 << 20).unwrap(), expected);
    }
    // What only looks like a trailing data field.
    let cut = &text[..text.len() - 2];
    let looks_like = [
        // A second `data` field: the parser refuses duplicates.
        format!("{cut}\",\"data\":\"3,14\"}}"),
        // `data` inside an object that ends the message.
        format!("{},\"x\":{{\"data\":\"3,14\"}}}}", &cut[..cut.find(",\"data\"").unwrap()]),
        // An escaped quote in an id that reads `"data":"` without its backslashes.
        text.replacen("\"author_node_id\":\"a\"", "\"author_node_id\":\"a\\\\\"data\\\":\\\"\"", 1),
        // A backslash in the data: an escape, which the parser decodes.
        format!("{cut}\\u0031\"}}"),
        // Not UTF-8 in the data.
        format!("{cut}\u{fffd}\"}}").replace('\u{fffd}', "\u{e9}"),
    ];
    for variant in looks_like {
        let ours = RawMessage::decode(variant.as_bytes(), 1 << 20);
        let parser: Result<Value, _> = serde_json::from_str(&variant);
        match (&ours, parser) {
            (Ok(m), Ok(v)) => {
                let Body::TakeToken { data, .. } = &m.body else { panic!("{m:?}") };
                assert_eq!(Some(data.as_str()), v["data"].as_str(), "{variant:.80}");
                assert_eq!(Some(m.author.as_str()), v["author_node_id"].as_str());
            }
            (Err(_), _) => {}
            (Ok(m), Err(e)) => panic!("decoded {m:?} from bytes the parser refuses ({e}): {variant:.80}"),
        }
    }
}
