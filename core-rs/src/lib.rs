//! Utopia's hot path: decode, validate, dedup and join camera detection events in whole batches.
//!
//! Everything here is plain Rust, tested with `cargo test`; `python` (behind the feature of the
//! same name) is the thin PyO3 boundary that builds `utopia._core`.

pub mod copy;
pub mod decode_json;
pub mod decode_msgpack;
pub mod dedup;
pub mod engine;
pub mod error;
pub mod event;
pub mod live;
pub mod locations;

#[cfg(feature = "python")]
mod python;

pub use engine::{BatchOutput, Counts, Engine, Message, Options, Reject, Stats, Tally};
pub use error::CoreError;
pub use locations::Locations;
