//! `weir worker`: a worker that talks only HTTP to an API server. It
//! registers, claims tries by long-poll for the queues it serves, runs each
//! with the same executor as a local pool, ships its log in pieces,
//! heartbeats the leases of everything it runs and reports each end, taking
//! the freed slot's next try in the same answer.
//!
//! Fencing: a heartbeat answer, a log push or a report that refuses a lease
//! means the try moved on without this worker; it kills that try's process
//! group. When no heartbeat got through for as long as a lease, it kills
//! every try whose lease it could not renew, before the server gives them to
//! another worker. SIGTERM drains: no more claims, running tries get a grace
//! period, then are stopped and reported failed (their retry rules apply).

pub mod catalog;
pub mod client;
pub mod ship;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_core::dag::Dag;
use weir_core::protocol::{
    self, ClaimBody, ClaimedTry, Heartbeat, Lease, Register, Registered, TryReport,
};
use weir_core::scheduler::Ended;
use weir_core::workers::NewWorker;

use self::client::{CallError, Client};
use crate::context::{self, TryContext};
use crate::execute::{self, Shared};
use crate::logs::LogWriter;
use crate::secrets::Secrets;

/// Settings of a remote worker.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The API servers, `http://host:port`: one is used, the next when it
    /// cannot be reached.
    pub servers: Vec<String>,
    /// A `worker` API token.
    pub token: String,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// Tries it runs at once.
    pub slots: usize,
    /// The start of its name (made unique to this life).
    pub name: String,
    /// Where its tries' logs are written before they are shipped.
    pub logs_dir: PathBuf,
    /// The site's data folder or bucket, shared with the servers (data tasks).
    pub home: crate::data::home::Home,
    /// Connection URLs by id (lower case), for SQL sensors and data tasks.
    pub connections: HashMap<String, String>,
    /// How long dataset versions are kept.
    pub retention: weir_core::config::RetentionRules,
    /// How long running tries may go on after SIGTERM before they are stopped.
    pub grace: Duration,
    /// Where OpenLineage events go (off by default).
    pub lineage: crate::lineage::Emitter,
}

/// A try this worker runs: how to stop it and until when its lease holds
/// as far as this worker knows.
struct Held {
    stop: CancellationToken,
    renewed: Instant,
}

type Running = Arc<Mutex<HashMap<Lease, Held>>>;

/// A registered remote worker.
#[derive(Debug)]
pub struct RemoteWorker {
    client: Client,
    options: RemoteOptions,
    life: NewWorker,
    registered: Registered,
    secrets: Arc<Secrets>,
    dags: Arc<Mutex<HashMap<i64, Arc<Dag>>>>,
}

impl RemoteWorker {
    /// Registers a new worker life with the server (retrying while it cannot
    /// be reached, until `cancel`). A protocol mismatch or a bad token is
    /// an error at once.
    pub async fn connect(
        options: RemoteOptions,
        secrets: Secrets,
        cancel: &CancellationToken,
    ) -> Result<Self, CallError> {
        let client = Client::new(&options.servers, &options.token)?;
        let life = crate::life::this_process(
            &options.name,
            options.slots,
            Some(options.queues.clone()),
            true,
        );
        let body = register_body(&life);
        let registered = loop {
            tokio::select! {
                r = client.register(&body, Duration::from_secs(30)) => match r {
                    Err(CallError::Unreachable(why)) => tracing::warn!("registering: {why}; trying again"),
                    other => break other?,
                },
                () = cancel.cancelled() => return Err(CallError::Unreachable("stopped before registering".into())),
            }
        };
        tracing::info!(worker = %life.name, servers = ?options.servers, queues = ?options.queues, slots = options.slots,
            "worker {} registered", life.name);
        Ok(RemoteWorker {
            client,
            options,
            life,
            registered,
            secrets: Arc::new(secrets),
            dags: Arc::default(),
        })
    }

    /// This worker life's name.
    pub fn name(&self) -> &str {
        &self.life.name
    }

    fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.registered.lease_seconds.max(1.0))
    }

    /// Runs until `cancel` fires (SIGTERM) or the server asks it to drain;
    /// then drains: running tries get the grace period, the rest are stopped
    /// and reported failed.
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let running: Running = Arc::default();
        let drain = cancel.child_token();
        let beat_stop = CancellationToken::new();
        let beats = tokio::spawn(this.clone().heartbeats(
            running.clone(),
            drain.clone(),
            beat_stop.clone(),
        ));
        let env = Arc::new(context::environment(this.secrets.clone()));
        let mut slots: JoinSet<()> = JoinSet::new();
        while !drain.is_cancelled() {
            let free = this.options.slots.saturating_sub(slots.len());
            if free == 0 {
                tokio::select! {
                    _ = slots.join_next() => {}
                    () = drain.cancelled() => {}
                }
                continue;
            }
            let body = ClaimBody {
                worker: this.life.name.clone(),
                queues: this.options.queues.clone(),
                free_slots: u32::try_from(free).unwrap_or(u32::MAX),
                wait_seconds: Some(20.0),
            };
            let claimed = tokio::select! {
                r = this.client.claim(&body) => r,
                () = drain.cancelled() => break,
                Some(_) = slots.join_next(), if !slots.is_empty() => continue,
            };
            match claimed {
                Ok(c) => {
                    if c.drain {
                        tracing::info!(worker = %this.life.name, "the server asks this worker to drain");
                        drain.cancel();
                    }
                    for t in c.tries {
                        let slot =
                            this.clone()
                                .slot(t, running.clone(), env.clone(), drain.clone());
                        slots.spawn(slot);
                    }
                }
                Err(e) => {
                    tracing::error!("claiming work failed: {e}");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = drain.cancelled() => {}
                    }
                }
            }
        }
        let waiting = running.lock().map(|r| r.len()).unwrap_or(0);
        tracing::info!(worker = %this.life.name, running = waiting, grace_s = this.options.grace.as_secs(),
            "draining: no more claims; running tries may finish within the grace period");
        let grace = tokio::time::sleep(this.options.grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                r = slots.join_next() => if r.is_none() { break },
                () = &mut grace => {
                    tracing::warn!(worker = %this.life.name, "the grace period ended; stopping the tries still running");
                    if let Ok(r) = running.lock() {
                        for held in r.values() {
                            held.stop.cancel();
                        }
                    }
                    while slots.join_next().await.is_some() {}
                    break;
                }
            }
        }
        beat_stop.cancel();
        let _ = beats.await;
        if let Err(e) = this.client.stop(&this.life.name).await {
            tracing::warn!(worker = %this.life.name, "could not record that the worker stopped: {e}");
        }
        tracing::info!(worker = %this.life.name, "worker stopped");
    }

    /// Heartbeats every lease it holds; kills what the server names and
    /// whatever could not be renewed for a whole lease.
    async fn heartbeats(
        self: Arc<Self>,
        running: Running,
        drain: CancellationToken,
        stop: CancellationToken,
    ) {
        let every = Duration::from_secs_f64(self.registered.heartbeat_seconds.max(0.1));
        let lease = self.lease();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let leases: Vec<Lease> = running
                .lock()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default();
            let sent = Instant::now();
            let body = Heartbeat {
                worker: self.life.name.clone(),
                tries: leases.clone(),
            };
            match self.client.heartbeat(&body, every).await {
                Ok(reply) => {
                    if let Ok(mut r) = running.lock() {
                        for l in &leases {
                            let refused = reply.kill.contains(l);
                            if let Some(held) = r.get_mut(l) {
                                if refused {
                                    tracing::warn!(dag = %l.dag_id, task = %l.task_id, try_number = l.try_number,
                                        "the server refused the try's lease; killing it");
                                    held.stop.cancel();
                                } else {
                                    held.renewed = sent;
                                }
                            }
                        }
                    }
                    if reply.drain && !drain.is_cancelled() {
                        tracing::info!(worker = %self.life.name, "the server asks this worker to drain");
                        drain.cancel();
                    }
                    if !reply.registered {
                        tracing::warn!(worker = %self.life.name, "the server took this worker for lost; registering again");
                        if let Err(e) = self
                            .client
                            .register(&register_body(&self.life), every)
                            .await
                        {
                            tracing::error!("registering again failed: {e}");
                        }
                    }
                }
                Err(e) => tracing::error!("heartbeat failed: {e}"),
            }
            // A lease not renewed for a whole lease has lapsed on the server:
            // the try may be running elsewhere already.
            if let Ok(r) = running.lock() {
                for (l, held) in r.iter() {
                    if held.renewed.elapsed() >= lease && !held.stop.is_cancelled() {
                        tracing::error!(dag = %l.dag_id, task = %l.task_id, try_number = l.try_number,
                            "no heartbeat got through for a whole lease; killing the try");
                        held.stop.cancel();
                    }
                }
            }
        }
    }

    /// One slot: runs a claimed try, reports it and runs the next try the
    /// report brings back, until none comes.
    async fn slot(
        self: Arc<Self>,
        first: ClaimedTry,
        running: Running,
        env: Arc<minijinja::Environment<'static>>,
        drain: CancellationToken,
    ) {
        let mut next = Some(first);
        while let Some(t) = next.take() {
            let lease = t.lease();
            let stop = CancellationToken::new();
            if let Ok(mut r) = running.lock() {
                r.insert(
                    lease.clone(),
                    Held {
                        stop: stop.clone(),
                        renewed: Instant::now(),
                    },
                );
            }
            let attempt = self.run_try(&t, &env, &stop);
            let ended = match std::panic::AssertUnwindSafe(attempt).catch_unwind().await {
                Ok(ended) => ended,
                Err(_) => {
                    Ended::failed("weir failed inside the try (a panic; see the worker's log)")
                }
            };
            let claim_next = (!drain.is_cancelled()).then(|| self.options.queues.clone());
            let report = TryReport::of(&self.life.name, lease.clone(), &ended, claim_next);
            match self.client.report(&report, self.lease()).await {
                Ok(reply) => {
                    if !reply.recorded {
                        tracing::info!(dag = %t.claim.dag_id, task = %t.claim.task_id, try_number = t.claim.try_number, "the report was recorded before");
                    }
                    next = reply.next;
                }
                Err(CallError::Fenced(why)) => {
                    tracing::warn!(dag = %t.claim.dag_id, task = %t.claim.task_id, try_number = t.claim.try_number, "the report was refused: {why}");
                }
                Err(e) => {
                    tracing::error!(dag = %t.claim.dag_id, task = %t.claim.task_id, try_number = t.claim.try_number,
                    "reporting the try failed: {e}; its lease will lapse and the scheduler fails it")
                }
            }
            if let Ok(mut r) = running.lock() {
                r.remove(&lease);
            }
        }
    }

    /// Runs one try with its log shipped as it grows.
    async fn run_try(
        &self,
        t: &ClaimedTry,
        env: &minijinja::Environment<'static>,
        stop: &CancellationToken,
    ) -> Ended {
        let dag = match self.dag(t.claim.version_id).await {
            Ok(d) => d,
            Err(e) => {
                return Ended::failed(format!(
                    "cannot read DAG version {}: {e}",
                    t.claim.version_id
                ));
            }
        };
        let ctx = TryContext {
            dag,
            run: t.run.clone(),
            claim: t.claim.clone(),
            variables: Arc::new(t.variables.clone()),
            outputs: Arc::new(t.outputs.clone()),
            connections: Arc::new(t.connections.clone()),
        };
        let lease = t.lease();
        let mut log = LogWriter::new(
            &self.options.logs_dir,
            &t.claim.log_path,
            self.secrets.with_variables(&ctx.variables),
        );
        let mut shipper = ship::Shipper {
            client: self.client.clone(),
            lease: lease.clone(),
            path: log.path().to_path_buf(),
            offset: 0,
        };
        let shared = self.shared(&lease);
        let done = CancellationToken::new();
        let shipping = {
            let (done, stop, give_up) = (done.clone(), stop.clone(), self.lease());
            tokio::spawn(async move {
                loop {
                    let last = tokio::select! {
                        () = done.cancelled() => true,
                        () = tokio::time::sleep(Duration::from_millis(500)) => false,
                    };
                    match shipper.push(last, give_up).await {
                        Err(CallError::Fenced(why)) => {
                            tracing::warn!(
                                "the server refused the try's log: {why}; killing the try"
                            );
                            stop.cancel();
                            return;
                        }
                        Err(e) => tracing::warn!("shipping the log failed: {e}"),
                        Ok(()) => {}
                    }
                    if last {
                        return;
                    }
                }
            })
        };
        let ended = execute::execute(&ctx, env, &mut log, stop, &shared).await;
        done.cancel();
        let _ = shipping.await;
        ended
    }

    /// What the executor needs, with the catalog reached under `lease`.
    fn shared(&self, lease: &Lease) -> Shared {
        let resources = crate::resources::Resources {
            store: Arc::new(catalog::RemoteCatalog {
                client: self.client.clone(),
                lease: lease.clone(),
                give_up: self.lease(),
            }),
            connections: Arc::new(self.options.connections.clone()),
            home: self.options.home.clone(),
            retention: Arc::new(self.options.retention.clone()),
            clock: Arc::new(weir_core::scheduler::SystemClock),
            catalog_id: Some(Arc::from(self.registered.catalog_id.as_str())),
        };
        Shared {
            logs_dir: self.options.logs_dir.clone(),
            secrets: self.secrets.clone(),
            worker: self.life.name.clone(),
            resources,
            lineage: self.options.lineage.clone(),
        }
    }

    /// A DAG version, from the cache or the server.
    async fn dag(&self, version_id: i64) -> Result<Arc<Dag>, String> {
        if let Some(d) = self
            .dags
            .lock()
            .ok()
            .and_then(|m| m.get(&version_id).cloned())
        {
            return Ok(d);
        }
        let v = self
            .client
            .version(version_id, self.lease())
            .await
            .map_err(|e| e.to_string())?;
        let dag = Arc::new(weir_core::dag::convert::from_definition(
            &v.definition,
            &v.fileloc,
        )?);
        if let Ok(mut m) = self.dags.lock() {
            m.insert(version_id, dag.clone());
        }
        Ok(dag)
    }
}

fn register_body(life: &NewWorker) -> Register {
    Register {
        name: life.name.clone(),
        hostname: life.hostname.clone(),
        pid: life.pid,
        process_token: life.process_token.clone(),
        version: life.version.clone(),
        protocol: protocol::PROTOCOL,
        queues: life.queues.clone().unwrap_or_default(),
        slots: u32::try_from(life.slots).unwrap_or(u32::MAX),
    }
}
