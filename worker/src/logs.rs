//! Task logs: one file per try, `<logs>/<dag>/<run>/<task>/<try>.log`,
//! written line by line as output arrives, secrets masked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::secrets::Secrets;

/// Writes one try's log.
#[derive(Debug)]
pub struct LogWriter {
    file: tokio::fs::File,
    secrets: Arc<Secrets>,
    path: PathBuf,
}

impl LogWriter {
    /// Creates the log file (and its folders) at `logs_dir/relative`, in one
    /// trip to the blocking pool.
    pub async fn create(
        logs_dir: &Path,
        relative: &str,
        secrets: Arc<Secrets>,
    ) -> std::io::Result<Self> {
        let path = logs_dir.join(relative);
        let at = path.clone();
        let file = tokio::task::spawn_blocking(move || {
            if let Some(parent) = at.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&at)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(LogWriter {
            file: tokio::fs::File::from_std(file),
            secrets,
            path,
        })
    }

    /// Appends one line, timestamped and masked. The write goes on in the
    /// background; the next line, or [`LogWriter::flush`], waits for it.
    pub async fn line(&mut self, text: &str) -> std::io::Result<()> {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let masked = self.secrets.mask(text.trim_end_matches(['\n', '\r']));
        self.file
            .write_all(format!("[{stamp}] {masked}\n").as_bytes())
            .await
    }

    /// Waits until every line written so far is in the file.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().await
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A chunk of a log read from `offset`: the text and the offset to continue from.
pub async fn read(logs_dir: &Path, relative: &str, offset: u64) -> std::io::Result<(String, u64)> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let path = logs_dir.join(relative);
    let mut file = tokio::fs::File::open(&path).await?;
    let len = file.metadata().await?.len();
    let start = offset.min(len);
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut buf = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    file.read_to_end(&mut buf).await?;
    let next = start + buf.len() as u64;
    Ok((String::from_utf8_lossy(&buf).into_owned(), next))
}
