//! The token and its priority (PROTOCOL section 2).

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Node identifiers are non-empty UTF-8 strings, ordered byte-wise.
pub type NodeId = String;

/// The token as it travels on the wire.
///
/// Ordering is the protocol's *priority*: `(progress, author_node_id,
/// author_token_revision)` compared lexicographically, ids byte-wise (which
/// is how Rust compares `String`s). The higher token is the better one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    pub progress: u64,
    pub author_node_id: NodeId,
    pub author_token_revision: u64,
}

impl Token {
    pub fn new(progress: usize, author: &str, revision: u64) -> Self {
        Token { progress: progress as u64, author_node_id: author.to_owned(), author_token_revision: revision }
    }

    /// Whether `self` beats `other` when the two meet.
    pub fn is_better_than(&self, other: &Token) -> bool {
        self > other
    }

    fn key(&self) -> (u64, &[u8], u64) {
        (self.progress, self.author_node_id.as_bytes(), self.author_token_revision)
    }
}

impl Ord for Token {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Token {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// For people: whose token it is, which of theirs, and how far it got,
/// e.g. `n1's token #2 at 400 digits`.
impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}'s token #{} at {} digits",
            self.author_node_id,
            self.author_token_revision,
            self.progress.saturating_sub(2)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_dominates() {
        assert!(Token::new(42, "a", 1).is_better_than(&Token::new(22, "z", 9)));
    }

    #[test]
    fn then_author_byte_wise() {
        assert!(Token::new(22, "n2", 1).is_better_than(&Token::new(22, "n1", 5)));
        // Byte-wise, not numeric or locale: "n10" < "n9", "Z" < "a".
        assert!(Token::new(22, "n9", 1).is_better_than(&Token::new(22, "n10", 1)));
        assert!(Token::new(22, "a", 1).is_better_than(&Token::new(22, "Z", 1)));
        // Multi-byte UTF-8 sorts after ASCII.
        assert!(Token::new(22, "\u{0443}", 1).is_better_than(&Token::new(22, "z", 1)));
    }

    #[test]
    fn then_revision() {
        assert!(Token::new(22, "n1", 3).is_better_than(&Token::new(22, "n1", 2)));
        assert!(!Token::new(22, "n1", 2).is_better_than(&Token::new(22, "n1", 2)));
    }
}
