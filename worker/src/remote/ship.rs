//! Shipping a remote try's log: the worker writes the log file as a local
//! pool does, and pushes what was added since the last piece, whole lines
//! at a time, with the byte offset it starts at (a piece sent again after a
//! lost answer adds nothing on the server).

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use weir_core::protocol::{Lease, LogPiece};

use super::client::{CallError, Client};

/// The largest piece pushed at once: well under the server's limit, even
/// when JSON escapes every byte.
const PIECE: u64 = 128 * 1024;

/// Pushes one try's log file to the server.
#[derive(Debug)]
pub struct Shipper {
    /// The server.
    pub client: Client,
    /// The try's lease.
    pub lease: Lease,
    /// The log file.
    pub path: PathBuf,
    /// Bytes the server has.
    pub offset: u64,
}

impl Shipper {
    /// Pushes what the file holds past the server's offset, whole lines only
    /// unless `all` (the try ended). Retries for `give_up` while the server
    /// cannot be reached; a refused lease is [`CallError::Fenced`].
    pub async fn push(&mut self, all: bool, give_up: Duration) -> Result<(), CallError> {
        loop {
            let Some(data) = self.next_piece(all).await else {
                return Ok(());
            };
            let piece = LogPiece {
                lease: self.lease.clone(),
                offset: self.offset,
                data,
            };
            let ack = self.client.push_log(&piece, give_up).await?;
            self.offset = ack.next_offset.max(self.offset);
        }
    }

    async fn next_piece(&self, all: bool) -> Option<String> {
        let mut file = tokio::fs::File::open(&self.path).await.ok()?;
        file.seek(std::io::SeekFrom::Start(self.offset))
            .await
            .ok()?;
        let mut buf = Vec::new();
        file.take(PIECE).read_to_end(&mut buf).await.ok()?;
        if !all || buf.len() as u64 == PIECE {
            match buf.iter().rposition(|b| *b == b'\n') {
                Some(i) => buf.truncate(i + 1),
                None if buf.len() as u64 == PIECE => {}
                None => buf.clear(),
            }
        }
        // Only text goes into the log file; a piece cut inside a long line
        // ends before a character the next piece then starts with.
        if let Err(e) = std::str::from_utf8(&buf) {
            buf.truncate(e.valid_up_to());
        }
        let text = String::from_utf8(buf).ok()?;
        (!text.is_empty()).then_some(text)
    }
}
