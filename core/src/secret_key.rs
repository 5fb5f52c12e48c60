//! The site's secret key: it seals the secret parts of stored connections
//! (XChaCha20-Poly1305, a random nonce per value, the value's place as
//! associated data, so a sealed password cannot be moved to another
//! connection or field). It comes from `[core] secret_key` /
//! `WEIR_CORE_SECRET_KEY`, else from the key file (`[core] secret_key_file`,
//! made on first use, readable by its owner only).

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// What sealed text starts with: the format's version.
const PREFIX: &str = "v1:";

/// A problem with the key or a sealed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The configured key is not 32 bytes of base64.
    #[error(
        "the secret key {0}: it must be 32 bytes in base64 (`weir connections new-key` prints one)"
    )]
    Malformed(String),
    /// No key is configured and none may be made here.
    #[error(
        "no secret key: set [core] secret_key or WEIR_CORE_SECRET_KEY, or keep the key file [core] secret_key_file"
    )]
    Missing,
    /// The key file could not be read or written.
    #[error("the secret key file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A sealed value does not open with this key.
    #[error("{0} cannot be read with this secret key (it was saved under another key, or altered)")]
    Wrong(String),
    /// The system's random source failed.
    #[error("no random bytes: {0}")]
    Random(String),
}

/// A 32-byte key.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey(bytes))
    }

    /// A key from its base64 text.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| KeyError::Malformed(format!("is not base64 ({e})")))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyError::Malformed(format!("is {} bytes", b.len())))?;
        Ok(SecretKey(bytes))
    }

    /// The key as base64 text.
    pub fn encode(&self) -> String {
        B64.encode(self.0)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(self.0))
    }

    /// Seals `plain`, bound to `place` (e.g. `connection warehouse password`).
    pub fn seal(&self, place: &str, plain: &str) -> Result<String, KeyError> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Wrong(place.to_owned()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    /// Opens what [`SecretKey::seal`] made for the same `place`.
    pub fn open(&self, place: &str, sealed: &str) -> Result<String, KeyError> {
        let wrong = || KeyError::Wrong(place.to_owned());
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .filter(|b| b.len() > 24)
            .ok_or_else(wrong)?;
        let (nonce, msg) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| wrong())?;
        let plain = self
            .cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }
}

/// Where the key comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeySource {
    /// Nowhere: sealing and opening fail with [`KeyError::Missing`].
    #[default]
    None,
    /// This base64 text.
    Value(String),
    /// This file, made with a new key when first needed.
    File(PathBuf),
}

impl KeySource {
    /// The key; with `make`, a missing key file is created with a new key.
    /// `Ok(None)` when there is no key and none was to be made.
    pub async fn load(&self, make: bool) -> Result<Option<SecretKey>, KeyError> {
        match self {
            KeySource::None => Ok(None),
            KeySource::Value(v) => SecretKey::parse(v).map(Some),
            KeySource::File(path) => {
                let file_error = |e: std::io::Error| KeyError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                };
                match tokio::fs::read_to_string(path).await {
                    Ok(text) => SecretKey::parse(&text)
                        .map(Some)
                        .map_err(|e| KeyError::File {
                            path: path.display().to_string(),
                            message: e.to_string(),
                        }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && make => {
                        let key = SecretKey::generate()?;
                        write_private(path, &key.encode())
                            .await
                            .map_err(file_error)?;
                        tracing::info!(file = %path.display(), "made a new secret key for stored connections: keep this file, or set [core] secret_key on every process");
                        Ok(Some(key))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(file_error(e)),
                }
            }
        }
    }
}

/// Writes a new file only its owner can read; fails if it exists.
async fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let mut file = options.open(path).await?;
    file.write_all(format!("{text}\n").as_bytes()).await?;
    file.sync_all().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_place() {
        let key = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let sealed = key
            .seal("connection wh password", "hunter2")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(sealed.starts_with("v1:") && !sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            key.seal("connection wh password", "hunter2")
                .unwrap_or_default(),
            "a new nonce each time"
        );
        assert_eq!(
            key.open("connection wh password", &sealed).as_deref(),
            Ok("hunter2")
        );
        assert!(matches!(
            key.open("connection other password", &sealed),
            Err(KeyError::Wrong(_))
        ));
        let other = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            other.open("connection wh password", &sealed),
            Err(KeyError::Wrong(_))
        ));
        assert!(key.open("x", "hunter2").is_err());
        let again = SecretKey::parse(&key.encode()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            again.open("connection wh password", &sealed).as_deref(),
            Ok("hunter2")
        );
        assert!(
            matches!(SecretKey::parse("c2hvcnQ="), Err(KeyError::Malformed(m)) if m.contains("5 bytes"))
        );
        assert!(matches!(
            SecretKey::parse("not base64!"),
            Err(KeyError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn a_key_file_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("weir.key");
        let source = KeySource::File(path.clone());
        assert_eq!(source.load(false).await.map(|k| k.is_none()), Ok(true));
        let made = source
            .load(true)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("made"));
        let read = source
            .load(false)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("read"));
        assert_eq!(made.encode(), read.encode());
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
    }
}
