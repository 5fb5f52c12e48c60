//! Delivering notifications: takes due ones from the outbox the state
//! changes write, renders their text, posts the webhook, sends the e-mail or
//! runs the command,
//! and records how it went; a failed attempt is retried with backoff, and
//! none ever changes a run. Every scheduler process runs one (several take
//! turns: a claim leases a notification).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio_util::sync::CancellationToken;
use weir_core::dag::{Channel, Dag, Notify, NotifyEvent};
use weir_core::scheduler::Scheduler;
use weir_core::store::{Delivery, NotificationRecord, RunRecord};

use crate::logs::LogWriter;
use crate::secrets::Secrets;
use crate::shell::{self, ShellEnd, ShellSpec};

/// How the notifier works.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// Where the commands' output is logged (`notifications/<id>-<attempt>.log`).
    pub logs_dir: PathBuf,
    /// The web UI's address, for links.
    pub public_url: String,
    /// The wait after a first failed attempt; it doubles after each.
    pub first_retry: Duration,
    /// Attempts before a notification counts as failed.
    pub attempts: i64,
    /// How often the outbox is looked at.
    pub poll: Duration,
    /// The mail relay, for e-mail.
    pub smtp: crate::smtp::SmtpOptions,
}

impl NotifierOptions {
    /// The defaults: 5 attempts, retried after 5 s, 10 s, 20 s, 40 s; mail
    /// through a relay on `localhost:25`.
    pub fn new(logs_dir: PathBuf, public_url: String) -> Self {
        NotifierOptions {
            logs_dir,
            public_url,
            first_retry: Duration::from_secs(5),
            attempts: 5,
            poll: Duration::from_secs(1),
            smtp: crate::smtp::SmtpOptions::default(),
        }
    }
}

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Delivers notifications.
#[derive(Debug, Clone)]
pub struct Notifier {
    sched: Scheduler,
    http: reqwest::Client,
    options: NotifierOptions,
    secrets: Arc<Secrets>,
}

/// The default text.
const DEFAULT_MESSAGE: &str = "weir: {% if task_id %}task {{ dag_id }}.{{ task_id }}\
{% if map_index is not none %}[{{ map_index }}]{% endif %} {{ event_text }} (try {{ try_number }}) in run {{ run_id }}{% if error %}: {{ error }}{% endif %}\n{{ log_url }}\
{% else %}run {{ run_id }} of {{ dag_id }} {{ event_text }}\n{{ run_url }}{% endif %}";

fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl Notifier {
    /// A notifier for `sched`'s outbox; commands' logs mask `secrets`.
    pub fn new(sched: Scheduler, options: NotifierOptions, secrets: Arc<Secrets>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default();
        Notifier {
            sched,
            http,
            options,
            secrets,
        }
    }

    /// Delivers due notifications until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            self.round().await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.options.poll) => {}
            }
        }
    }

    /// One pass: takes what is due, delivers each, records how it went.
    /// Returns how many were attempted.
    pub async fn round(&self) -> usize {
        let now = self.sched.now();
        let lease = now + chrono::Duration::from_std(ATTEMPT_TIMEOUT * 2).unwrap_or_default();
        let due = match self.sched.store().claim_notifications(now, lease, 16).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("reading the notifications outbox failed: {e}");
                return 0;
            }
        };
        let count = due.len();
        let mut set = tokio::task::JoinSet::new();
        for n in due {
            let me = self.clone();
            set.spawn(async move {
                let outcome = me.deliver(&n).await;
                me.record(&n, outcome).await;
            });
        }
        while set.join_next().await.is_some() {}
        count
    }

    async fn record(&self, n: &NotificationRecord, outcome: Result<(), String>) {
        let now = self.sched.now();
        let delivery = match outcome {
            Ok(()) => Delivery::Sent,
            Err(why) if n.attempts >= self.options.attempts => {
                tracing::warn!(id = n.id, "notification failed for good: {why}");
                Delivery::Failed(why)
            }
            Err(why) => {
                let factor =
                    2u32.saturating_pow(u32::try_from(n.attempts.max(1) - 1).unwrap_or(16));
                let wait = self.options.first_retry.saturating_mul(factor);
                tracing::info!(
                    id = n.id,
                    attempt = n.attempts,
                    "notification failed, retrying in {wait:?}: {why}"
                );
                Delivery::Retry(
                    now + chrono::Duration::from_std(wait).unwrap_or_default(),
                    why,
                )
            }
        };
        if let Err(e) = self
            .sched
            .store()
            .finish_notification(n.id, &delivery, now)
            .await
        {
            tracing::warn!(id = n.id, "recording a notification's delivery failed: {e}");
        }
    }

    /// The rule a notification was fired by.
    fn rule<'a>(dag: &'a Dag, n: &NotificationRecord) -> Option<&'a Notify> {
        let (scope, i) = n.rule.split_once(':')?;
        let i: usize = i.parse().ok()?;
        match scope {
            "dag" => dag.notify.get(i),
            "task" => dag.tasks.get(n.task_id.as_deref()?)?.notify.get(i),
            _ => None,
        }
    }

    async fn deliver(&self, n: &NotificationRecord) -> Result<(), String> {
        let store = self.sched.store();
        let run = store
            .get_run_by_pk(n.run_pk)
            .await
            .map_err(|e| e.to_string())?;
        let dag = self
            .sched
            .dag_version(run.version_id)
            .await
            .map_err(|e| e.to_string())?;
        let rule = Self::rule(&dag, n)
            .ok_or_else(|| format!("rule `{}` is not in the run's DAG version", n.rule))?;
        let values = self.values(n, &run, &dag).await;
        let env = weir_core::template::environment();
        let ctx = minijinja::Value::from(minijinja::value::Serde(&values));
        let message = weir_core::template::render(
            &env,
            rule.message.as_deref().unwrap_or(DEFAULT_MESSAGE),
            &ctx,
        )
        .map_err(|e| format!("message: {e}"))?;
        match &rule.channel {
            Channel::Webhook(url) => {
                let mut body = values.clone();
                body.insert("text".into(), message.into());
                let answer = self
                    .http
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                let status = answer.status();
                if status.is_success() {
                    Ok(())
                } else {
                    let text = answer.text().await.unwrap_or_default();
                    Err(format!(
                        "POST {url}: HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    ))
                }
            }
            Channel::Command(command) => {
                let argv = shell::argv(command, |s| {
                    weir_core::template::render(&env, s, &ctx).map_err(|e| format!("command: {e}"))
                })?;
                let mut vars: Vec<(String, String)> = values
                    .iter()
                    .map(|(k, v)| {
                        let text = match v {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => String::new(),
                            other => other.to_string(),
                        };
                        (format!("WEIR_NOTIFY_{}", k.to_ascii_uppercase()), text)
                    })
                    .collect();
                vars.push(("WEIR_NOTIFY_MESSAGE".into(), message));
                let spec = ShellSpec {
                    argv,
                    env: vars,
                    cwd: shell::dag_folder(Path::new(&dag.fileloc)),
                    timeout: Some(ATTEMPT_TIMEOUT),
                };
                let path = format!("notifications/{}-{}.log", n.id, n.attempts);
                let mut log = LogWriter::new(&self.options.logs_dir, &path, self.secrets.clone());
                let _ = log
                    .line(&format!(
                        "weir: notification {}, attempt {}",
                        n.id, n.attempts
                    ))
                    .await;
                let ran = shell::run(&spec, &mut log, &CancellationToken::new(), |_| {}).await;
                if let Err(e) = log.flush().await {
                    tracing::warn!("cannot write {path}: {e}");
                }
                match ran.end {
                    ShellEnd::Exited(0) => Ok(()),
                    ShellEnd::Exited(code) => {
                        Err(format!("the command exited with code {code} (log: {path})"))
                    }
                    ShellEnd::TimedOut(_) => Err("the command timed out".into()),
                    ShellEnd::Signalled(sig) => {
                        Err(format!("the command was killed by signal {sig}"))
                    }
                    ShellEnd::Stopped => Err("the command was stopped".into()),
                    ShellEnd::SpawnFailed(e) => Err(e),
                }
            }
            Channel::Email(to) => {
                let subject = message.lines().next().unwrap_or("weir");
                crate::smtp::send(&self.options.smtp, to, subject, &message).await
            }
        }
    }

    /// What templates, webhook bodies and commands get.
    async fn values(
        &self,
        n: &NotificationRecord,
        run: &RunRecord,
        dag: &Dag,
    ) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let base = &self.options.public_url;
        let run_url = format!("{base}/dags/{}/runs/{}", seg(&run.dag_id), seg(&run.run_id));
        let (state, error, log_url) = match &n.task_id {
            Some(task) => {
                let ti = self
                    .sched
                    .store()
                    .get_mapped_instance(&run.dag_id, &run.run_id, task, n.map_index)
                    .await
                    .ok();
                let error = match &ti {
                    Some(ti) => self
                        .sched
                        .store()
                        .list_tries(&ti.id)
                        .await
                        .ok()
                        .and_then(|tries| {
                            tries
                                .into_iter()
                                .find(|t| Some(t.try_number) == n.try_number)
                        })
                        .and_then(|t| t.error),
                    None => None,
                };
                let try_n = n.try_number.unwrap_or(1);
                (
                    ti.map(|t| t.state.to_string()),
                    error,
                    format!(
                        "{run_url}/tasks/{}/log?try={try_n}{}",
                        seg(task),
                        if n.map_index < 0 {
                            String::new()
                        } else {
                            format!("&map_index={}", n.map_index)
                        }
                    ),
                )
            }
            None => (Some(run.state.to_string()), None, run_url.clone()),
        };
        let event_text = match (n.event, n.task_id.is_some()) {
            (NotifyEvent::Failure, _) => "failed".to_owned(),
            (NotifyEvent::Retry, _) => "failed and will be retried".to_owned(),
            (NotifyEvent::Success, _) => "succeeded".to_owned(),
            (NotifyEvent::DeadlineMissed, _) => match dag.deadline {
                Some(d) => format!(
                    "missed its deadline ({} after {})",
                    d.within,
                    match d.after {
                        weir_core::dag::DeadlineFrom::Queued => "being queued",
                        weir_core::dag::DeadlineFrom::LogicalDate => "its logical date",
                    }
                ),
                None => "missed its deadline".to_owned(),
            },
        };
        let logical = run.logical_date.unwrap_or(run.run_after);
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("event", json!(n.event.as_str())),
            ("event_text", json!(event_text)),
            ("dag_id", json!(run.dag_id)),
            ("run_id", json!(run.run_id)),
            ("task_id", json!(n.task_id)),
            ("try_number", json!(n.try_number)),
            (
                "map_index",
                json!((n.map_index >= 0).then_some(n.map_index)),
            ),
            ("state", json!(state)),
            ("error", json!(error)),
            ("log_url", json!(log_url)),
            ("run_url", json!(run_url)),
            ("logical_date", json!(logical.to_rfc3339())),
            ("ds", json!(logical.format("%Y-%m-%d").to_string())),
        ] {
            m.insert(k.to_owned(), v);
        }
        m
    }
}
