//! Task logs: one file per try, `<logs>/<dag>/<run>/<task>/<try>.log`,
//! written line by line as output arrives, secrets masked.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;

use crate::secrets::Secrets;

/// Past this many bytes waiting to be written, a new line waits for the
/// writes before it (a process that prints faster than the disk takes it
/// is slowed down rather than held in memory).
const MOST_PENDING: usize = 1 << 20;

/// Writes one try's log. Lines never wait for the disk: they gather in
/// memory and one trip to the blocking pool at a time writes all that has
/// gathered (the first one also creates the file and its folders), so a
/// line written while a process runs is in the file moments later and a
/// try's lines cost one trip, not one each.
#[derive(Debug)]
pub struct LogWriter {
    pending: Arc<Mutex<Pending>>,
    /// The trip writing now, or the last one.
    writing: Option<JoinHandle<()>>,
    secrets: Arc<Secrets>,
    path: Arc<Path>,
}

/// What the writing trip and the lines share.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// A trip is writing (it takes what gathers before it ends).
    busy: bool,
    /// The open file between trips.
    file: Option<std::fs::File>,
    /// The first write that failed, until [`LogWriter::flush`] reports it.
    failed: Option<std::io::Error>,
}

impl LogWriter {
    /// A log at `logs_dir/relative`; the file and its folders are made with
    /// its first line.
    pub fn new(logs_dir: &Path, relative: &str, secrets: Arc<Secrets>) -> Self {
        LogWriter {
            pending: Arc::default(),
            writing: None,
            secrets,
            path: Arc::from(logs_dir.join(relative)),
        }
    }

    /// Appends one line, timestamped and masked. It is written in the
    /// background; [`LogWriter::flush`] waits for it.
    pub async fn line(&mut self, text: &str) -> std::io::Result<()> {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let masked = self.secrets.mask(text.trim_end_matches(['\n', '\r']));
        let (start, full) = {
            let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            p.bytes
                .extend_from_slice(format!("[{stamp}] {masked}\n").as_bytes());
            let start = !p.busy;
            p.busy = true;
            (start, p.bytes.len() > MOST_PENDING)
        };
        if start {
            let (pending, path) = (self.pending.clone(), self.path.clone());
            self.writing = Some(tokio::task::spawn_blocking(move || {
                write_pending(&pending, &path);
            }));
        } else if full {
            self.wait().await?;
        }
        Ok(())
    }

    /// Waits until every line written so far is in the file; the error is
    /// the first write that failed since the last flush.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.wait().await?;
        match self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits for the writing trip, which ends only with nothing left
    /// gathered (lines cannot be added meanwhile: they need `&mut self`).
    async fn wait(&mut self) -> std::io::Result<()> {
        match self.writing.take() {
            Some(trip) => trip.await.map_err(std::io::Error::other),
            None => Ok(()),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes what has gathered until nothing has; blocking. A failed write
/// drops what it held (the log cannot take it) and is kept for `flush`.
fn write_pending(pending: &Mutex<Pending>, path: &Path) {
    let lock = || pending.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let (bytes, file) = {
            let mut p = lock();
            if p.bytes.is_empty() {
                p.busy = false;
                return;
            }
            (std::mem::take(&mut p.bytes), p.file.take())
        };
        let written = match file {
            Some(f) => Ok(f),
            None => open(path),
        }
        .and_then(|mut f| f.write_all(&bytes).map(|()| f));
        let mut p = lock();
        match written {
            Ok(f) => p.file = Some(f),
            Err(e) => {
                p.failed.get_or_insert(e);
            }
        }
    }
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn lines_reach_the_file_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::new(dir.path(), "d/r/t/1.log", Arc::default());
        // Enough to pass the pending limit several times over.
        let long = "x".repeat(10_000);
        for i in 0..500 {
            log.line(&format!("{i} {long}")).await.unwrap();
        }
        log.flush().await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("d/r/t/1.log")).unwrap();
        let numbers: Vec<usize> = text
            .lines()
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(numbers, (0..500).collect::<Vec<_>>());
        // A line after a flush goes to the same file.
        log.line("last").await.unwrap();
        log.flush().await.unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.ends_with("] last\n"), "{}", &text[text.len() - 40..]);
    }

    #[tokio::test]
    async fn a_log_that_cannot_be_made_says_so_at_flush() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d"), "a file").unwrap();
        let mut log = LogWriter::new(dir.path(), "d/1.log", Arc::default());
        log.line("lost").await.unwrap();
        assert!(log.flush().await.is_err());
        // Reported once; nothing new failed since.
        log.flush().await.unwrap();
    }
}
