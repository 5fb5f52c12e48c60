//! `GET /metrics`: Prometheus text. Runs, task instances and tries by state
//! and the queue depth are read from the database at each scrape; the
//! scheduling-latency and task-duration histograms are the scheduler's own.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// The gauges filled at each scrape, and the registry that encodes them.
#[derive(Debug)]
pub struct ApiMetrics {
    registry: Registry,
    runs: Family<StateLabel, Gauge>,
    task_instances: Family<StateLabel, Gauge>,
    tries: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
}

impl ApiMetrics {
    /// Registers every metric, with the scheduler's histograms.
    pub fn new(scheduler: &weir_core::scheduler::Scheduler) -> Self {
        let mut registry = Registry::with_prefix("weir");
        let runs = Family::<StateLabel, Gauge>::default();
        let task_instances = Family::<StateLabel, Gauge>::default();
        let tries = Family::<StateLabel, Gauge>::default();
        let queue_depth = Gauge::default();
        registry.register("dag_runs", "DAG runs by state", runs.clone());
        registry.register(
            "task_instances",
            "Task instances by state",
            task_instances.clone(),
        );
        registry.register(
            "task_tries",
            "Tries (all history) by how they ended",
            tries.clone(),
        );
        registry.register(
            "queue_depth",
            "Task instances queued, waiting for a worker",
            queue_depth.clone(),
        );
        let m = scheduler.metrics();
        registry.register(
            "scheduling_latency_seconds",
            "Seconds from queued to claimed by a worker",
            m.scheduling_latency.clone(),
        );
        registry.register(
            "task_duration_seconds",
            "Seconds a try ran",
            m.task_duration.clone(),
        );
        ApiMetrics {
            registry,
            runs,
            task_instances,
            tries,
            queue_depth,
        }
    }
}

fn fill<S: std::fmt::Display>(family: &Family<StateLabel, Gauge>, counts: &[(S, i64)]) {
    family.clear();
    for (state, n) in counts {
        family
            .get_or_create(&StateLabel {
                state: state.to_string(),
            })
            .set(*n);
    }
}

/// Prometheus metrics (any role).
pub async fn metrics(State(state): State<AppState>, _: Viewer) -> ApiResult<Response> {
    let counts = state.scheduler.store().state_counts().await?;
    let m = &state.metrics;
    fill(&m.runs, &counts.runs);
    fill(&m.task_instances, &counts.task_instances);
    fill(&m.tries, &counts.tries);
    m.queue_depth
        .set(counts.task_instances_in(weir_core::state::TaskState::Queued));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &m.registry)
        .map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
