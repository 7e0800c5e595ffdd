//! NSM's semantic core: every rule of docs/semantics.md, once. No PyO3, no I/O.

pub mod aggregate;
mod buckets;
pub mod codec;
pub mod compute;
pub mod condition;
pub mod decimal;
pub mod dedup;
pub mod engine;
pub mod entities;
pub mod event;
pub mod fault;
pub mod fields;
pub mod filter;
pub mod finish;
pub mod formula;
pub mod history;
pub mod json;
pub mod label;
pub mod legacy;
pub mod number;
pub mod partition;
pub mod spec;
pub mod state;
pub mod summary;
pub mod time;
pub mod traits;
pub mod window;
