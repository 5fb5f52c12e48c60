//! The HTTP side of a remote worker: one call per protocol message, with
//! network failures and server errors retried with backoff, and a refusal
//! of a lease (409/410) reported as [`CallError::Fenced`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use weir_core::protocol::{
    CatalogCall, CatalogRequest, ClaimBody, Claimed, Heartbeat, HeartbeatReply, Lease, LogAck,
    LogPiece, Register, Registered, ReportReply, TryReport, VersionReply,
};

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The server refused the try's lease: kill the try.
    #[error("{0}")]
    Fenced(String),
    /// The server refused the request for good (a 4xx other than 409/410).
    #[error("the server refused: {status} {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What it said.
        detail: String,
    },
    /// The server could not be reached or failed, until the call gave up.
    #[error("the server could not be reached: {0}")]
    Unreachable(String),
}

/// A client of the API servers: it talks to one, and moves on to the next
/// when that one cannot be reached.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    bases: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    token: String,
}

impl Client {
    /// A client of the servers at `bases` (`http://host:port`, tried in
    /// turn) with a worker token.
    pub fn new(bases: &[String], token: &str) -> Result<Self, CallError> {
        if bases.is_empty() {
            return Err(CallError::Unreachable("no server given".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        Ok(Client {
            http,
            bases: Arc::new(
                bases
                    .iter()
                    .map(|b| b.trim_end_matches('/').to_owned())
                    .collect(),
            ),
            current: Arc::default(),
            token: token.to_owned(),
        })
    }

    /// One request, answered or failed, without retries.
    async fn once<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let at = self.current.load(Ordering::Relaxed);
        let base = &self.bases[at % self.bases.len()];
        let url = format!("{base}/api/worker/v1/{path}");
        let request = match body {
            Some(b) => self.http.post(&url).json(b),
            None => self.http.get(&url),
        };
        let response = request
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                // Try the next server next time.
                let _ = self.current.compare_exchange(
                    at,
                    at.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                CallError::Unreachable(format!("{url}: {e}"))
            })?;
        let status = response.status();
        if status.is_success() {
            if status == reqwest::StatusCode::NO_CONTENT {
                return serde_json::from_value(serde_json::Value::Null)
                    .map_err(|e| CallError::Unreachable(format!("{url}: {e}")));
            }
            return response
                .json::<R>()
                .await
                .map_err(|e| CallError::Unreachable(format!("{url}: unreadable answer: {e}")));
        }
        let detail = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
            .unwrap_or_default();
        match status.as_u16() {
            409 | 410 => Err(CallError::Fenced(detail)),
            s if s >= 500 || s == 429 || s == 408 => {
                Err(CallError::Unreachable(format!("{url}: {status} {detail}")))
            }
            s => Err(CallError::Refused { status: s, detail }),
        }
    }

    /// A request retried with backoff while the server is unreachable, until
    /// `give_up` has passed (the last failure is returned then).
    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
        give_up: Duration,
    ) -> Result<R, CallError> {
        let deadline = tokio::time::Instant::now() + give_up;
        let mut wait = Duration::from_millis(100);
        loop {
            match self.once(path, body, timeout).await {
                Err(CallError::Unreachable(why)) => {
                    if tokio::time::Instant::now() + wait >= deadline {
                        return Err(CallError::Unreachable(why));
                    }
                    tracing::warn!("{why}; trying again in {} ms", wait.as_millis());
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// Registers this worker life (retried for `give_up`).
    pub async fn register(
        &self,
        body: &Register,
        give_up: Duration,
    ) -> Result<Registered, CallError> {
        self.call("register", Some(body), Duration::from_secs(10), give_up)
            .await
    }

    /// Claims tries, waiting on the server up to `body.wait_seconds`.
    pub async fn claim(&self, body: &ClaimBody) -> Result<Claimed, CallError> {
        let wait = Duration::from_secs_f64(body.wait_seconds.unwrap_or(20.0).max(0.0));
        self.call(
            "claim",
            Some(body),
            wait + Duration::from_secs(10),
            wait + Duration::from_secs(10),
        )
        .await
    }

    /// Renews leases; retried until `give_up`.
    pub async fn heartbeat(
        &self,
        body: &Heartbeat,
        give_up: Duration,
    ) -> Result<HeartbeatReply, CallError> {
        self.call("heartbeat", Some(body), Duration::from_secs(10), give_up)
            .await
    }

    /// Pushes a log piece; retried until `give_up`.
    pub async fn push_log(&self, body: &LogPiece, give_up: Duration) -> Result<LogAck, CallError> {
        self.call("logs", Some(body), Duration::from_secs(10), give_up)
            .await
    }

    /// Reports a try's end; retried until `give_up`.
    pub async fn report(
        &self,
        body: &TryReport,
        give_up: Duration,
    ) -> Result<ReportReply, CallError> {
        self.call("report", Some(body), Duration::from_secs(30), give_up)
            .await
    }

    /// A catalog call under a try's lease.
    pub async fn catalog<R: DeserializeOwned>(
        &self,
        lease: &Lease,
        call: CatalogCall,
        give_up: Duration,
    ) -> Result<R, CallError> {
        let body = CatalogRequest {
            lease: lease.clone(),
            call,
        };
        self.call("catalog", Some(&body), Duration::from_secs(60), give_up)
            .await
    }

    /// A DAG version's definition.
    pub async fn version(
        &self,
        version_id: i64,
        give_up: Duration,
    ) -> Result<VersionReply, CallError> {
        self.call::<(), _>(
            &format!("versions/{version_id}"),
            None,
            Duration::from_secs(10),
            give_up,
        )
        .await
    }

    /// Says this worker stopped.
    pub async fn stop(&self, worker: &str) -> Result<(), CallError> {
        self.call::<_, serde_json::Value>(
            "stop",
            Some(&serde_json::json!({ "worker": worker })),
            Duration::from_secs(10),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }
}
