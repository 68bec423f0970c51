//! musehub library (module map filled in as modules land).
pub mod cids;
