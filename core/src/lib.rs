//! weir-core: the DAG model, YAML loading and validation, the dependency graph,
//! schedules, the state machine, the scheduler and the state store.
//!
//! Nothing here knows about HTTP or about how tasks execute.

pub mod access;
pub mod backup;
pub mod catalog;
pub mod config;
pub mod dag;
pub mod loader;
pub mod outputs;
pub mod protocol;
pub mod scheduler;
pub mod schema;
pub mod secret_key;
pub mod state;
pub mod store;
pub mod suggest;
pub mod template;
#[doc(hidden)]
pub mod testing;
pub mod workers;
