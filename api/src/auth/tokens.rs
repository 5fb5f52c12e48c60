//! Long-lived API tokens: `weir_<id>_<secret>`. The id is public (it names
//! the token in lists and audit entries); only the SHA-256 of the secret is
//! stored, so a database copy cannot be used to call the API.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use weir_core::access::{Role, TokenRecord};

const PREFIX: &str = "weir_";

/// A token just made: the full text (shown once) and its stored record.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token to hand to the client.
    pub token: String,
    /// What is stored.
    pub record: TokenRecord,
}

/// Makes a new token.
pub fn generate(
    role: Role,
    description: Option<String>,
    created_by: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<NewToken, getrandom::Error> {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 24];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let (id, secret) = (hex(&id), hex(&secret));
    Ok(NewToken {
        token: format!("{PREFIX}{id}_{secret}"),
        record: TokenRecord {
            secret_hash: hash_secret(&secret),
            id,
            description,
            role,
            created_by: created_by.to_owned(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        },
    })
}

/// Splits a token into id and secret, if it has the API-token form.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id) && hexish(secret)).then_some((id, secret))
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Compares two strings in time that depends only on their length.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parses_back_and_matches_only_its_hash() {
        let t = generate(Role::Viewer, None, "admin", None, Utc::now()).unwrap();
        let (id, secret) = parse(&t.token).unwrap();
        assert_eq!(id, t.record.id);
        assert!(same(&hash_secret(secret), &t.record.secret_hash));
        assert!(!same(&hash_secret("00"), &t.record.secret_hash));
        assert!(!t.token.contains(&t.record.secret_hash));
        assert_eq!(parse("weir_zz_00"), None);
        assert_eq!(parse("eyJhbGciOi"), None);
    }
}
