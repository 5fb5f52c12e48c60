//! Where a try's log is read from: the file under the logs folder when this
//! server's host wrote it (a local pool), else the pieces a remote worker
//! pushed into the database, so any API server serves any try's log.

use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use weir_core::store::Store;

/// A try's log.
#[derive(Debug, Clone)]
pub enum TryLog {
    /// A file this host's workers wrote.
    File(PathBuf),
    /// Pieces pushed by a remote worker.
    Pushed {
        /// The task instance.
        ti_id: String,
        /// The try.
        try_number: i64,
    },
}

/// A log that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] weir_core::store::Error),
}

impl TryLog {
    /// The log of try `try_number` of `ti_id`, kept at `log_path` under
    /// `logs_dir` when it was written on this host.
    pub async fn find(
        logs_dir: &std::path::Path,
        log_path: &str,
        ti_id: &str,
        try_number: i64,
    ) -> Self {
        let path = logs_dir.join(log_path);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            TryLog::File(path)
        } else {
            TryLog::Pushed {
                ti_id: ti_id.to_owned(),
                try_number,
            }
        }
    }

    /// Its size in bytes (0 when nothing was written yet).
    pub async fn len(&self, store: &dyn Store) -> Result<u64, ReadError> {
        match self {
            TryLog::File(path) => match tokio::fs::metadata(path).await {
                Ok(m) => Ok(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(source) => Err(io(path, source)),
            },
            TryLog::Pushed { ti_id, try_number } => Ok(store
                .read_log(ti_id, *try_number, u64::MAX)
                .await?
                .map_or(0, |(_, size)| size)),
        }
    }

    /// Up to `max` bytes from `start`.
    pub async fn read(
        &self,
        store: &dyn Store,
        start: u64,
        max: u64,
    ) -> Result<Vec<u8>, ReadError> {
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        match self {
            TryLog::File(path) => {
                let mut file = match tokio::fs::File::open(path).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(source) => return Err(io(path, source)),
                };
                file.seek(std::io::SeekFrom::Start(start))
                    .await
                    .map_err(|e| io(path, e))?;
                let mut buf = Vec::new();
                file.take(max)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| io(path, e))?;
                Ok(buf)
            }
            TryLog::Pushed { ti_id, try_number } => {
                let mut buf = store
                    .read_log(ti_id, *try_number, start)
                    .await?
                    .map(|(data, _)| data)
                    .unwrap_or_default();
                buf.truncate(limit);
                Ok(buf)
            }
        }
    }
}

fn io(path: &std::path::Path, source: std::io::Error) -> ReadError {
    ReadError::Io {
        path: path.display().to_string(),
        source,
    }
}
