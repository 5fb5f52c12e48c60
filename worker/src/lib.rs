//! weir-worker
