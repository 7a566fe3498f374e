//! SQL text tools with no Python or network dependency.
pub mod classify;
pub mod colnames;
pub mod fingerprint;
pub mod literal;
pub mod placeholders;
pub mod untyped;
