//! weir-worker: executing task instances. The same executor runs in the
//! in-process pool of `weir standalone` and in remote workers (`weir worker`).

pub mod catalog;
pub mod context;
pub mod data;
pub mod execute;
pub mod life;
pub mod lineage;
pub mod logs;
pub mod mapping;
pub mod notify;
pub mod pool;
pub mod reaper;
pub mod remote;
pub mod resources;
pub mod secrets;
pub mod sensor;
pub mod shell;
pub mod smtp;

pub use pool::{LocalPool, PoolOptions};
