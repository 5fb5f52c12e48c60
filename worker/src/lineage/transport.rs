//! Sending one OpenLineage event: POSTed to a lineage service, appended to
//! a file, or printed.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use weir_core::config::{LineageTransport, OpenLineageConfig};

use super::LineageError;

/// How long one POST may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per event while running (one while stopping).
const ATTEMPTS: u32 = 4;

/// An open transport.
#[derive(Debug)]
pub(super) enum Transport {
    Http {
        client: reqwest::Client,
        url: String,
        api_key: Option<String>,
    },
    File {
        path: std::path::PathBuf,
        file: tokio::fs::File,
    },
    Console,
}

impl Transport {
    /// Opens the configured transport (the file is created if missing).
    pub(super) fn open(config: &OpenLineageConfig) -> Result<Transport, LineageError> {
        match config.transport {
            LineageTransport::Http => {
                let base = config
                    .url
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/');
                let endpoint = config.endpoint.trim_start_matches('/');
                let url = format!("{base}/{endpoint}");
                reqwest::Url::parse(&url).map_err(|e| LineageError::Http(format!("{url}: {e}")))?;
                let client = reqwest::Client::builder()
                    .timeout(TIMEOUT)
                    .build()
                    .map_err(|e| LineageError::Http(e.to_string()))?;
                Ok(Transport::Http {
                    client,
                    url,
                    api_key: config.api_key.clone(),
                })
            }
            LineageTransport::File => {
                let path = config.path.clone().unwrap_or_default();
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| LineageError::File {
                        path: path.clone(),
                        source,
                    })?;
                Ok(Transport::File {
                    path,
                    file: tokio::fs::File::from_std(file),
                })
            }
            LineageTransport::Console | LineageTransport::None => Ok(Transport::Console),
        }
    }

    /// Sends `event`, retrying a service that fails with backoff until
    /// `stop` (then once); a failure is logged and the event dropped.
    pub(super) async fn send(&mut self, event: &serde_json::Value, stop: &CancellationToken) {
        let mut line = event.to_string();
        line.push('\n');
        match self {
            Transport::Http {
                client,
                url,
                api_key,
            } => {
                let mut wait = Duration::from_millis(250);
                for attempt in 1..=ATTEMPTS {
                    let mut request = client
                        .post(url.as_str())
                        .header("content-type", "application/json")
                        .body(line.clone());
                    if let Some(key) = api_key {
                        request = request.bearer_auth(key);
                    }
                    let error = match request.send().await {
                        Ok(r) if r.status().is_success() => return,
                        Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                            tracing::warn!(
                                "OpenLineage: {url} refused an event ({}); it is dropped",
                                r.status()
                            );
                            return;
                        }
                        Ok(r) => format!("{}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    if attempt == ATTEMPTS || stop.is_cancelled() {
                        tracing::warn!(
                            "OpenLineage: sending an event to {url} failed ({error}); it is dropped"
                        );
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => {}
                    }
                    wait *= 2;
                }
            }
            Transport::File { path, file } => {
                let written = async {
                    file.write_all(line.as_bytes()).await?;
                    file.flush().await
                };
                if let Err(e) = written.await {
                    tracing::warn!("OpenLineage: appending to {} failed: {e}", path.display());
                }
            }
            Transport::Console => {
                let mut out = tokio::io::stdout();
                let _ = out.write_all(line.as_bytes()).await;
                let _ = out.flush().await;
            }
        }
    }
}
